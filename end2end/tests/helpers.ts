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

/** Spread of the canvas's pixel values (0 for a blank canvas), computed in the page. */
export async function canvasVariance(page: Page, selector: string): Promise<number> {
  return page.evaluate((sel) => {
    const src = document.querySelector(sel) as HTMLCanvasElement | null;
    if (!src || src.width === 0) return 0;
    const c = document.createElement("canvas");
    c.width = src.width;
    c.height = src.height;
    const ctx = c.getContext("2d")!;
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, c.width, c.height);
    ctx.drawImage(src, 0, 0);
    const d = ctx.getImageData(0, 0, c.width, c.height).data;
    let n = 0, sum = 0, sq = 0;
    for (let i = 0; i < d.length; i += 16) {
      const v = (d[i] + d[i + 1] + d[i + 2]) / 3;
      sum += v;
      sq += v * v;
      n++;
    }
    const mean = sum / n;
    return sq / n - mean * mean;
  }, selector);
}
