import { test, expect } from "./fixtures";
import { hydrated, snap } from "./helpers";

test("settings edits survive a reload", async ({ page }) => {
  await page.goto("/setup");
  await hydrated(page);
  await page.selectOption('select[name="llm.provider"]', "ollama");
  // The endpoint follows the provider's usual address.
  await expect(page.locator('input[name="llm.endpoint"]')).toHaveValue("http://127.0.0.1:11434/v1");
  await page.fill('input[name="llm.model"]', "llama3.2:1b");
  await page.fill('input[name="memory.max_history"]', "24");
  await page.selectOption('select[name="tts.provider"]', "espeak");
  await page.getByRole("button", { name: "Save settings" }).click();
  await expect(page.getByTestId("save-status")).toHaveAttribute("data-state", "saved");

  await page.reload();
  await hydrated(page);
  await expect(page.locator('select[name="llm.provider"]')).toHaveValue("ollama");
  await expect(page.locator('input[name="llm.model"]')).toHaveValue("llama3.2:1b");
  await expect(page.locator('input[name="memory.max_history"]')).toHaveValue("24");
  await expect(page.locator('select[name="tts.provider"]')).toHaveValue("espeak");

  // The REST API sees the same settings.
  const cfg = await (await page.request.get("/api/config")).json();
  expect(cfg.llm.provider).toBe("ollama");
  expect(cfg.memory.max_history).toBe(24);
});

test("an API key is write-only: saved, shown as set, never shown back", async ({ page }) => {
  const key = "sk-e2e-secret-4242";
  await page.goto("/setup");
  await hydrated(page);
  await page.selectOption('select[name="llm.provider"]', "openai");
  await page.fill('input[name="llm.endpoint"]', "https://api.openai.com/v1");
  await page.fill('input[name="llm.api_key"]', key);
  await page.getByRole("button", { name: "Save settings" }).click();
  await expect(page.getByTestId("save-status")).toHaveAttribute("data-state", "saved");
  await expect(page.getByTestId("key-state-llm.api_key")).toHaveText("set");
  await expect(page.locator('input[name="llm.api_key"]')).toHaveValue("");

  await page.reload();
  await hydrated(page);
  await expect(page.getByTestId("key-state-llm.api_key")).toHaveText("set");
  await expect(page.locator('input[name="llm.api_key"]')).toHaveValue("");
  expect(await page.content()).not.toContain(key);
  const api = await (await page.request.get("/api/config")).text();
  expect(api).not.toContain(key);
  expect(JSON.parse(api).llm.api_key_set).toBe(true);
  await snap(page, "setup-key-set");

  // Saving again without typing keeps the key; ticking "remove" clears it.
  await page.getByRole("button", { name: "Save settings" }).click();
  await expect(page.getByTestId("save-status")).toHaveAttribute("data-state", "saved");
  await expect(page.getByTestId("key-state-llm.api_key")).toHaveText("set");
  await page.getByLabel("Remove the saved key").first().check();
  await page.getByRole("button", { name: "Save settings" }).click();
  await expect(page.getByTestId("key-state-llm.api_key")).toHaveText("not set");
});

test("invalid settings show an inline error and are not saved", async ({ page }) => {
  await page.goto("/setup");
  await hydrated(page);
  await page.selectOption('select[name="llm.provider"]', "lmstudio");
  await page.fill('input[name="llm.endpoint"]', "not a url");
  await page.fill('input[name="memory.max_history"]', "5000");
  await page.getByRole("button", { name: "Save settings" }).click();
  await expect(page.getByTestId("save-status")).toHaveAttribute("data-state", "error");
  await expect(page.locator('[data-error-for="llm.endpoint"]')).toBeVisible();
  await expect(page.locator('[data-error-for="memory.max_history"]')).toContainText("between 0 and 200");
  await snap(page, "setup-errors");
  const cfg = await (await page.request.get("/api/config")).json();
  expect(cfg.memory.max_history).not.toBe(5000);
});
