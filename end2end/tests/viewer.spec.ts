import { expect, test } from "./fixtures";
import * as path from "node:path";
import { canvasVariance, hydrated, snap } from "./helpers";

// Software WebGL and a cold WASM make the first load slow; the steps below have their own waits.
test.describe.configure({ timeout: 90_000 });

const twin = path.resolve(__dirname, "..", "..", "assets", "avatars", "default-vrm0.vrm");

test("the default avatar reaches ready as VRM 1.0 and is drawn", async ({ page }) => {
  await page.goto("/viewer");
  await hydrated(page);
  const avatar = page.getByTestId("avatar");
  await expect(avatar).toHaveAttribute("data-state", "ready", { timeout: 30_000 });
  await expect(avatar).toHaveAttribute("data-vrm", "1");
  await expect(avatar).toHaveAttribute("data-mouth", /"aa":0/);
  // The first frames after "ready" may still be blank: wait for a drawn one, not for a fixed time.
  await expect
    .poll(() => canvasVariance(page, "[data-testid=avatar] canvas"), { message: "the canvas is not blank", timeout: 10_000 })
    .toBeGreaterThan(100);
  await snap(page, "viewer-default");
  await expect(page.getByTestId("avatar-list").locator("li[data-name='default.vrm']")).toContainText("VRM 1.0");
});

test("the VRM 0.x twin uploads with the form, loads when chosen, and can be deleted", async ({ page }) => {
  await page.goto("/viewer");
  await hydrated(page);
  await page.getByTestId("avatar-file").setInputFiles(twin);
  await page.getByTestId("upload-avatar").click();
  await expect(page.getByTestId("upload-done")).toContainText("default-vrm0.vrm");
  const row = page.getByTestId("avatar-list").locator("li[data-name='default-vrm0.vrm']");
  await expect(row).toContainText("VRM 0.x");
  await row.getByTestId("use-avatar").click();
  const avatar = page.getByTestId("avatar");
  await expect(avatar).toHaveAttribute("data-vrm", "0", { timeout: 30_000 });
  await expect(avatar).toHaveAttribute("data-state", "ready");
  await expect.poll(() => canvasVariance(page, "[data-testid=avatar] canvas"), { timeout: 10_000 }).toBeGreaterThan(100);
  await snap(page, "viewer-vrm0");
  // The choice is saved: a reload shows the same avatar.
  await page.reload();
  await hydrated(page);
  await expect(page.getByTestId("avatar")).toHaveAttribute("data-vrm", "0", { timeout: 30_000 });
  page.once("dialog", (d) => d.accept());
  await page
    .getByTestId("avatar-list")
    .locator("li[data-name='default-vrm0.vrm']")
    .getByTestId("delete-avatar")
    .click();
  await expect(page.getByTestId("avatar-list").locator("li[data-name='default-vrm0.vrm']")).toHaveCount(0);
  await expect(page.getByTestId("avatar")).toHaveAttribute("data-vrm", "1", { timeout: 30_000 });
});

test("a broken avatar URL shows the reason and falls back to the default", async ({ page }) => {
  await page.goto("/viewer?url=/files/avatars/missing.vrm");
  await hydrated(page);
  const avatar = page.getByTestId("avatar");
  await expect(avatar).toHaveAttribute("data-state", "error", { timeout: 30_000 });
  await expect(page.getByTestId("avatar-error")).toContainText("not found");
  await expect(page.getByTestId("avatar-error")).toContainText("default avatar");
  await expect(avatar).toHaveAttribute("data-vrm", "1", { timeout: 30_000 });
  await expect.poll(() => canvasVariance(page, "[data-testid=avatar] canvas"), { timeout: 10_000 }).toBeGreaterThan(100);
  await snap(page, "viewer-fallback");
});

test("a file that is not a model is refused with the reason", async ({ page }) => {
  await page.goto("/viewer");
  await hydrated(page);
  await page.getByTestId("avatar-file").setInputFiles({
    name: "fake.vrm",
    mimeType: "application/octet-stream",
    buffer: Buffer.from("this is not a glTF file"),
  });
  await page.getByTestId("upload-avatar").click();
  await expect(page.getByTestId("upload-error")).toContainText("not a glTF model");
});

test("the chat tab shows the avatar beside the conversation", async ({ page }) => {
  await page.goto("/chat");
  await hydrated(page);
  const avatar = page.getByTestId("avatar");
  await expect(avatar).toHaveAttribute("data-state", "ready", { timeout: 30_000 });
  await snap(page, "chat-with-avatar");
  // Switching tabs disposes the viewer: the new tab gets its own.
  await page.getByRole("link", { name: "Viewer" }).click();
  await expect(page.getByTestId("avatar")).toHaveAttribute("data-state", "ready", { timeout: 30_000 });
});
