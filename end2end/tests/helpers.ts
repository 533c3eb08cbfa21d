import { expect, Page } from "@playwright/test";
import * as fs from "node:fs";
import * as path from "node:path";

export const screenshotDir = path.resolve(__dirname, "..", "test-results", "screenshots");

/** Saves a full-page screenshot a person can open: test-results/screenshots/<name>.png. */
export async function snap(page: Page, name: string) {
  fs.mkdirSync(screenshotDir, { recursive: true });
  // Sticky parts (the tab bar) would otherwise be drawn where the page was scrolled to.
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: path.join(screenshotDir, `${name}.png`), fullPage: true });
}

/** Waits until the WASM has taken over the server-rendered page. */
export async function hydrated(page: Page) {
  await expect(page.locator("main#content")).toHaveAttribute("data-hydrated", "true");
}
