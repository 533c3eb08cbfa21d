import { test, expect } from "@playwright/test";
import * as http from "node:http";
import { AddressInfo } from "node:net";
import { hydrated, snap } from "./helpers";

// A mock OpenAI-compatible server that streams 40 words, one every 60 ms, like LM Studio.
let server: http.Server;
let base = "";
const WORDS = 40;

function chunk(delta: object, finish: string | null = null) {
  const c = { id: "chatcmpl-e2e", object: "chat.completion.chunk", created: 1700000000, model: "mock",
    choices: [{ index: 0, delta, finish_reason: finish }] };
  return `data: ${JSON.stringify(c)}\n\n`;
}

test.beforeAll(async ({ request }) => {
  server = http.createServer((req, res) => {
    if (req.url?.endsWith("/models")) {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ object: "list", data: [{ id: "mock", object: "model", owned_by: "library" }] }));
      return;
    }
    req.resume();
    req.on("end", async () => {
      res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
      let closed = false;
      res.on("close", () => (closed = true));
      res.write(chunk({ role: "assistant", content: "" }));
      res.write(chunk({ content: "[happy] Hello! " }));
      for (let i = 0; i < WORDS && !closed; i++) {
        await new Promise((r) => setTimeout(r, 60));
        res.write(chunk({ content: `word${i} ` }));
      }
      if (closed) return;
      res.write(chunk({}, "stop"));
      res.write("data: [DONE]\n\n");
      res.end();
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
  const r = await request.put("/api/config", { data: { llm: { provider: "lmstudio", endpoint: base, model: "mock" } } });
  expect(r.ok()).toBeTruthy();
});

test.afterAll(async ({ request }) => {
  await request.put("/api/config", { data: { llm: null } });
  server.close();
});

test("a message streams in word by word and is stored without its emotion tag", async ({ page }) => {
  await page.goto("/chat");
  await hydrated(page);
  await page.getByTestId("composer").fill("Hello Aiko, how are you?");
  await page.getByTestId("composer").press("Enter");

  const live = page.getByTestId("live-reply");
  await expect(page.locator(".msg-user").filter({ hasText: "Hello Aiko, how are you?" }).filter({ visible: true })).toHaveCount(1);
  await expect(live).toContainText("word3");
  await expect(live).not.toContainText(`word${WORDS - 1}`);
  await expect(page.getByTestId("stop")).toBeVisible();
  await snap(page, "chat-mid-reply");

  // Complete: the stored reply replaces the live one, without the tag.
  const reply = page.locator('.msg[data-role="assistant"]').last();
  await expect(reply).toContainText(`word${WORDS - 1}`, { timeout: 15_000 });
  await expect(live).toHaveCount(0);
  await expect(reply).not.toContainText("[happy]");
  await expect(reply.locator(".text")).toHaveText(/^Hello! word0 word1/);
  await expect(page).toHaveURL(/session=\d+/);
  await expect(page.getByTestId("send")).toBeVisible();
  await snap(page, "chat-complete");
});

test("Stop ends the reply and the partial reply is there after a reload", async ({ page }) => {
  await page.goto("/chat");
  await hydrated(page);
  await page.getByTestId("composer").fill("Tell me a long story");
  await page.getByTestId("composer").press("Enter");
  await expect(page.getByTestId("live-reply")).toContainText("word4");
  await page.getByTestId("stop").click();

  const reply = page.locator('.msg[data-role="assistant"]').last();
  await expect(reply.locator(".badge")).toHaveText("cut short");
  await page.reload();
  await hydrated(page);
  const stored = page.locator('.msg[data-role="assistant"]').last();
  await expect(stored).toContainText("word4");
  await expect(stored).not.toContainText(`word${WORDS - 1}`);
  await expect(stored.locator(".badge")).toHaveText("cut short");
});

test("Setup's Test connection lists the server's models", async ({ page }) => {
  await page.goto("/setup");
  await hydrated(page);
  await page.getByTestId("llm-test").click();
  const result = page.getByTestId("llm-test-result");
  await expect(result).toHaveAttribute("data-state", "ok");
  await expect(result).toContainText("1 model(s)");
  await expect(page.locator("#llm-models option")).toHaveCount(1);
});
