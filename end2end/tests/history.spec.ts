import type { APIRequestContext } from "@playwright/test";
import { test, expect } from "./fixtures";
import { hydrated, snap } from "./helpers";

async function addMessages(request: APIRequestContext, sessionId: number, texts: string[]) {
  for (const [i, text] of texts.entries()) {
    const res = await request.post(`/api/sessions/${sessionId}/messages`, {
      data: { role: i % 2 === 0 ? "user" : "assistant", text },
    });
    expect(res.ok()).toBeTruthy();
  }
}

function sessionIdFromUrl(url: string): number {
  const id = new URL(url).searchParams.get("session");
  expect(id).not.toBeNull();
  return Number(id);
}

test("create, rename, search, jump to a message, page in older ones, delete", async ({ page, request }) => {
  // Sixty stored messages and every step of the sidebar, beside a software-rendered avatar.
  test.setTimeout(60_000);
  await page.goto("/chat");
  await hydrated(page);
  await page.getByTestId("new-session").click();
  await expect(page).toHaveURL(/session=\d+/);
  const sid = sessionIdFromUrl(page.url());
  const item = page.locator(`li.session[data-session-id="${sid}"]`);
  await expect(item).toHaveClass(/active/);
  await expect(item).toContainText("New conversation");

  // Rename inline.
  await item.getByTestId("rename").click();
  await item.getByTestId("rename-input").fill("Weekend plans");
  await item.getByRole("button", { name: "Save" }).click();
  await expect(item).toContainText("Weekend plans");

  // Sixty messages; the one we will look for is old enough not to be on the first page.
  const texts = Array.from({ length: 60 }, (_, i) => `Message number ${i} about the weekend.`);
  texts[5] = "Let us visit the planetarium on Saturday <b>not bold</b>.";
  await addMessages(request, sid, texts);

  await page.reload();
  await hydrated(page);
  await expect(item).toContainText("Weekend plans");
  await expect(item).toContainText("60 messages");
  const messages = page.getByTestId("messages");
  await expect(messages.locator("article.msg")).toHaveCount(40);

  // Older messages page in when scrolled to the top.
  await messages.evaluate((el) => (el.scrollTop = 0));
  await messages.evaluate((el) => el.dispatchEvent(new Event("scroll")));
  await expect(messages.locator("article.msg")).toHaveCount(60);
  // Text is shown as text, never as HTML.
  await expect(messages.locator("article.msg b")).toHaveCount(0);
  await expect(messages).toContainText("<b>not bold</b>");

  // "/" focuses search; results highlight the match.
  await page.locator("body").click({ position: { x: 5, y: 300 } });
  await page.keyboard.press("/");
  await expect(page.getByTestId("history-search")).toBeFocused();
  await page.keyboard.type("planetarium");
  const hit = page.getByTestId("search-results").locator("a.hit").first();
  await expect(hit).toContainText("Weekend plans");
  await expect(hit.locator("mark")).toHaveText("planetarium");
  await snap(page, "chat-search");

  // A hit opens the session scrolled to the message, highlighted.
  await hit.click();
  await expect(page).toHaveURL(/message=\d+/);
  const target = page.locator("article.msg-highlight");
  await expect(target).toHaveCount(1);
  await expect(target).toContainText("planetarium");
  await expect(target).toBeInViewport();

  // Esc clears the search and brings the list back.
  await page.getByTestId("history-search").focus();
  await page.keyboard.press("Escape");
  await expect(page.getByTestId("history-search")).toHaveValue("");
  await expect(page.getByTestId("session-list")).toBeVisible();
  await snap(page, "chat-history");

  // Delete asks first.
  await item.getByTestId("delete").click();
  await expect(item.getByRole("alertdialog")).toContainText("Weekend plans");
  await item.getByRole("button", { name: "Keep" }).click();
  await expect(item).toContainText("Weekend plans");
  await item.getByTestId("delete").click();
  await item.getByTestId("confirm-delete").click();
  await expect(page.locator(`li.session[data-session-id="${sid}"]`)).toHaveCount(0);
  await expect(page).toHaveURL(/\/chat$/);
  expect((await request.get(`/api/sessions/${sid}/messages`)).status()).toBe(404);
  const search = await (await request.get("/api/search?q=planetarium")).json();
  expect(search.results).toEqual([]);
});
