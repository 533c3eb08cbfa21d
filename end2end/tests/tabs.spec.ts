import { test, expect } from "./fixtures";
import { snap } from "./helpers";

const tabs = [
  { name: "Chat", path: "/chat", testid: "tab-chat" },
  { name: "Characters", path: "/characters", testid: "tab-characters" },
  { name: "Viewer", path: "/viewer", testid: "tab-viewer" },
  { name: "Setup", path: "/setup", testid: "tab-setup" },
  { name: "System", path: "/system", testid: "tab-system" },
];

for (const tab of tabs) {
  test(`${tab.name} tab renders on the server and is marked current`, async ({ page }) => {
    const res = await page.goto(tab.path);
    expect(res?.status()).toBe(200);
    await expect(page.getByTestId(tab.testid)).toBeVisible();
    await expect(page.locator(`nav a[href="${tab.path}"]`)).toHaveAttribute("aria-current", "page");
    await expect(page).toHaveTitle("waifu-rt3d");
    await snap(page, `tab-${tab.name.toLowerCase()}`);
  });
}

test("the server-rendered HTML already has the tab's content (usable before the WASM loads)", async ({ request }) => {
  const html = await (await request.get("/setup")).text();
  expect(html).toContain('data-testid="tab-setup"');
  expect(html).toContain('name="llm.provider"');
});

test("tabs are links: clicking navigates, back and reload keep the tab", async ({ page }) => {
  await page.goto("/chat");
  await page.getByRole("link", { name: "System" }).click();
  await expect(page).toHaveURL(/\/system$/);
  await expect(page.getByTestId("tab-system")).toBeVisible();
  await page.getByRole("link", { name: "Setup" }).click();
  await expect(page.getByTestId("tab-setup")).toBeVisible();
  await page.goBack();
  await expect(page).toHaveURL(/\/system$/);
  await expect(page.getByTestId("tab-system")).toBeVisible();
  await page.reload();
  await expect(page.getByTestId("tab-system")).toBeVisible();
});

test("an unknown page is a 404 with a way back", async ({ page }) => {
  const res = await page.goto("/no-such-page");
  expect(res?.status()).toBe(404);
  await expect(page.getByTestId("not-found")).toBeVisible();
});

test("keyboard focus is visible", async ({ page }) => {
  await page.goto("/chat");
  await page.keyboard.press("Tab");
  await page.keyboard.press("Tab");
  const shadow = await page.evaluate(() => getComputedStyle(document.activeElement as Element).boxShadow);
  expect(shadow).not.toBe("none");
});

test("the layout fits a phone screen without sideways scrolling", async ({ page }) => {
  await page.setViewportSize({ width: 375, height: 760 });
  for (const tab of tabs) {
    await page.goto(tab.path);
    await expect(page.getByTestId(tab.testid)).toBeVisible();
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    expect(overflow, `${tab.name} scrolls sideways`).toBeLessThanOrEqual(0);
  }
  await page.goto("/setup");
  await snap(page, "phone-setup");
});
