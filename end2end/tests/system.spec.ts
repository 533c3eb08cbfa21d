import { test, expect } from "@playwright/test";
import { snap } from "./helpers";

test("System shows health cards and refreshes on demand", async ({ page }) => {
  await page.goto("/system");
  const db = page.locator('[data-testid="health-card"][data-kind="db"]');
  await expect(db).toHaveAttribute("data-state", "ok");
  await expect(db).toContainText("wal");
  await expect(page.locator('[data-testid="health-card"][data-kind="llm"]')).toHaveCount(1);
  expect(await page.locator('[data-testid="health-card"][data-kind="tts"]').count()).toBeGreaterThan(0);
  const version = await page.getByTestId("version").textContent();
  const api = await (await page.request.get("/api/healthcheck")).json();
  expect(version).toBe(api.version);
  await page.getByTestId("refresh-health").click();
  await expect(db).toHaveAttribute("data-state", "ok");
});
