import { test, expect } from "./fixtures";
import { hydrated, snap } from "./helpers";
import { MockLlm, startMockLlm } from "./mock-llm";

// A mock OpenAI-compatible server that streams 40 words like LM Studio: the first eight every
// 100 ms, the rest every 250 ms (about 9 s in all), so that the mid-reply checks and Stop land
// while it still streams even when the server's first start-up work and the avatar's software
// rendering keep both cores busy for a few seconds. The replies here are text
// only; talk.spec.ts covers the spoken ones.
let llm: MockLlm;
const WORDS = 40;

test.beforeAll(async ({ request }) => {
  llm = await startMockLlm("[happy] Hello! ", Array.from({ length: WORDS }, (_, i) => `word${i}`), (i) => (i < 8 ? 100 : 250));
  const r = await request.put("/api/config", {
    data: { output_mode: "text", llm: { provider: "lmstudio", endpoint: llm.base, model: "mock" } },
  });
  expect(r.ok()).toBeTruthy();
});

test.afterAll(async ({ request }) => {
  await request.put("/api/config", { data: { llm: null, output_mode: null } });
  await llm.close();
});

test("a message streams in word by word and is stored without its emotion tag", async ({ page }) => {
  await page.goto("/chat");
  await hydrated(page);
  // The avatar's first load keeps both cores busy in software rendering; the mid-reply checks
  // below must not share the stream's few seconds with it.
  await expect(page.getByTestId("avatar")).toHaveAttribute("data-state", "ready", { timeout: 30_000 });
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
  await expect(page.getByTestId("avatar")).toHaveAttribute("data-state", "ready", { timeout: 30_000 });
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
