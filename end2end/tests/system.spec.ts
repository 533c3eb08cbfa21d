import { test, expect } from "./fixtures";
import { snap } from "./helpers";

const PROVIDER_LABELS: Record<string, string> = {
  embedded: "Built-in model (offline)",
  lmstudio: "LM Studio",
  ollama: "Ollama",
  openai: "OpenAI",
  openai_compatible: "Other OpenAI-compatible server",
  piper_local: "Piper (offline, neural)",
  fish_audio: "Fish Audio",
  elevenlabs: "ElevenLabs",
  xtts_server: "XTTS server",
  espeak: "eSpeak NG (offline, robotic)",
};

test("System shows health cards and refreshes on demand", async ({ page }) => {
  await page.goto("/system");
  const db = page.locator('[data-testid="health-card"][data-kind="db"]');
  await expect(db).toHaveAttribute("data-state", "ok");
  await expect(db).toContainText("wal");
  await expect(page.locator('[data-testid="health-card"][data-kind="llm"]')).toHaveCount(1);
  expect(await page.locator('[data-testid="health-card"][data-kind="tts"]').count()).toBeGreaterThan(0);
  // Each provider card names its provider in plain words, as the Setup tab's pickers do.
  for (const card of await page.locator('[data-testid="health-card"][data-kind="llm"], [data-testid="health-card"][data-kind="tts"]').all()) {
    const id = (await card.getAttribute("data-provider")) ?? "";
    await expect(card.locator(".provider-name")).toHaveText(PROVIDER_LABELS[id] ?? `unknown provider ${id}`);
  }
  const version = await page.getByTestId("version").textContent();
  const api = await (await page.request.get("/api/healthcheck")).json();
  expect(version).toBe(api.version);
  await page.getByTestId("refresh-health").click();
  await expect(db).toHaveAttribute("data-state", "ok");
});
