import { test, expect } from "./fixtures";
import { hydrated, snap } from "./helpers";

test("Speak test sentence plays Piper's voice and says who spoke", async ({ page }) => {
  // Other specs change the voice; this one is about the default, Piper.
  const put = await page.request.put("/api/config", {
    data: { tts: { provider: "piper_local", fallback_chain: ["espeak"] } },
  });
  expect(put.ok()).toBeTruthy();

  await page.goto("/setup");
  await hydrated(page);
  await page.getByTestId("speak-button").click();
  const panel = page.getByTestId("speak-test");
  // The first sentence may start Piper's worker (about a second, more on a busy machine).
  await expect(panel).toHaveAttribute("data-state", /^(ready|playing|played)$/, { timeout: 25_000 });
  await expect(page.getByTestId("speak-provider")).toHaveText("piper_local");
  await expect(page.getByTestId("speak-cached")).toHaveText("no");
  await expect(page.getByTestId("speak-latency")).toHaveText(/^\d+ ms$/);
  const src = await page.getByTestId("speak-audio").getAttribute("src");
  expect(src).toMatch(/^\/files\/audio\/[0-9a-f]{64}\.wav$/);
  const duration = await page.getByTestId("speak-audio").evaluate((a: HTMLAudioElement) => a.duration);
  expect(duration).toBeGreaterThan(1);
  await snap(page, "setup-speak-test");

  // The same sentence again comes from the cache.
  await page.getByTestId("speak-button").click();
  await expect(page.getByTestId("speak-cached")).toHaveText("yes");
});
