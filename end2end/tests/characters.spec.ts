import type { Locator, Page } from "@playwright/test";
import { test, expect } from "./fixtures";
import * as fs from "node:fs";
import * as path from "node:path";
import { hydrated, snap } from "./helpers";
import { startMockLlm } from "./mock-llm";

// A cold WASM piece for the tab and the avatar beside the chat make the first steps slow.
test.describe.configure({ timeout: 90_000 });

/** A real SillyTavern card: a PNG portrait with the card in its `chara`/`ccv3` chunks. */
const seraphina = path.resolve(__dirname, "..", "..", "tests", "fixtures", "cards", "seraphina.png");

/** A SillyTavern World Info file (a lorebook of four entries). */
const eldoria = path.resolve(__dirname, "..", "..", "tests", "fixtures", "cards", "eldoria_world_info.json");

/** The VRM 0.x twin of the default avatar: `data-vrm` tells it from the default (VRM 1.0). */
const twin = path.resolve(__dirname, "..", "..", "assets", "avatars", "default-vrm0.vrm");

/** A valid 1×1 PNG with no card in it. */
const plainPng = Buffer.from(
  "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==",
  "base64",
);

/** Drops a file on `target` the way a browser does: dragenter, dragover, drop with its DataTransfer. */
async function dropFile(target: Locator, bytes: Buffer, name: string, type: string) {
  await target.evaluate(
    (el, { b64, name, type }) => {
      const bin = atob(b64);
      const data = new Uint8Array(bin.length);
      for (let i = 0; i < bin.length; i++) data[i] = bin.charCodeAt(i);
      const transfer = new DataTransfer();
      transfer.items.add(new File([data], name, { type }));
      for (const kind of ["dragenter", "dragover", "drop"]) {
        el.dispatchEvent(new DragEvent(kind, { bubbles: true, cancelable: true, dataTransfer: transfer }));
      }
    },
    { b64: bytes.toString("base64"), name, type },
  );
}

function tile(page: Page, name: string): Locator {
  return page.getByTestId("character-grid").locator(`li[data-name="${name}"]`);
}

async function openTab(page: Page, url = "/characters") {
  await page.goto(url);
  await hydrated(page);
  await expect(page.getByTestId("tab-characters")).toBeVisible();
}

test("a dropped card is imported with its portrait, starts a chat with its greeting, and exports as PNG", async ({ page }) => {
  await openTab(page);
  const drop = page.getByTestId("card-drop");
  await dropFile(drop, fs.readFileSync(seraphina), "seraphina.png", "image/png");
  await expect(page.getByTestId("import-done")).toContainText("Seraphina");
  await expect(drop).toHaveAttribute("data-state", "done");

  // The new character is selected, its form filled from the card.
  await expect(page).toHaveURL(/\/characters\?id=\d+$/);
  const form = page.getByTestId("character-form");
  await expect(page.getByTestId("character-title")).toHaveText("Seraphina");
  await expect(form.locator("[data-field=name]")).toHaveValue("Seraphina");
  const greeting = await form.locator("[data-field=first_mes]").inputValue();
  expect(greeting.length).toBeGreaterThan(20);

  // In the grid with a portrait that really loaded.
  const portrait = tile(page, "Seraphina").locator("img");
  await expect(portrait).toBeVisible();
  await expect
    .poll(() => portrait.evaluate((img: HTMLImageElement) => (img.complete ? img.naturalWidth : 0)))
    .toBeGreaterThan(0);
  await snap(page, "characters-seraphina");

  // Export as PNG: a PNG with the V3 card in its `ccv3` chunk.
  const [download] = await Promise.all([page.waitForEvent("download"), page.getByTestId("export-png").click()]);
  const file = await download.path();
  const bytes = fs.readFileSync(file!);
  expect(bytes.subarray(0, 8)).toEqual(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));
  expect(bytes.includes(Buffer.from("ccv3"))).toBeTruthy();

  // A new chat with her opens on her greeting, and the sidebar says who it is with.
  await page.getByTestId("new-chat").click();
  await expect(page).toHaveURL(/\/chat\?session=\d+/);
  await expect(page.getByTestId("tab-chat")).toBeVisible();
  // The chat shows the greeting with {{char}} and {{user}} filled in: look for a stretch without them.
  const stretch = greeting
    .split(/\{\{[^}]*\}\}|\n/)
    .map((s) => s.trim())
    .sort((a, b) => b.length - a.length)[0]
    .slice(0, 30);
  await expect(page.getByTestId("messages").locator("article.msg").first()).toContainText(stretch);
  const active = page.locator("li.session.active");
  await expect(active.getByTestId("session-character")).toContainText("Seraphina");
  await snap(page, "characters-new-chat");
  // Also when the page is rendered on the server.
  await page.reload();
  await hydrated(page);
  await expect(page.locator("li.session.active").getByTestId("session-character")).toContainText("Seraphina");
  await expect(page.locator("li.session.active").getByTestId("session-character").locator("img")).toBeVisible();
});

test("a PNG without a card is refused in plain words", async ({ page }) => {
  await openTab(page);
  await dropFile(page.getByTestId("card-drop"), plainPng, "photo.png", "image/png");
  const error = page.getByTestId("import-error");
  await expect(error).toBeVisible();
  await expect(error).toHaveText("This image has no character card.");
  await expect(error).toHaveAttribute("role", "alert");
  await expect(page).toHaveURL(/\/characters$/);
  await snap(page, "characters-import-error");
});

test("a new character is created from the form, and HTML in a card shows as text", async ({ page }) => {
  await openTab(page);
  await page.getByTestId("new-character").click();
  await expect(page).toHaveURL(/id=new$/);
  const form = page.getByTestId("character-form");
  const name = "<b>Bold</b> Bea <img src=x>";
  await form.locator("[data-field=name]").fill(name);
  await form.locator("[data-field=description]").fill("Writes <script>alert(1)</script> in her notes.");
  await form.locator("[data-field=first_mes]").fill("Hello <i>there</i>!");
  await page.getByTestId("add-greeting").click();
  await form.locator("#greeting-0").fill("A second <u>greeting</u>.");
  await page.getByTestId("greeting-choice").selectOption("1");
  await page.getByTestId("add-lorebook").click();
  await page.getByTestId("add-entry").click();
  await form.locator("#lore-0-name").fill("Harbour");
  await form.locator("#lore-0-keys").fill("harbour, docks");
  await form.locator("#lore-0-content").fill("The harbour is <em>busy</em> at dawn.");
  await page.getByTestId("save-character").click();

  // Created: the address names it, and the form shows what was stored.
  await expect(page).toHaveURL(/\/characters\?id=\d+$/);
  await expect(page.getByTestId("character-title")).toHaveText(name);
  await expect(form.locator("[data-field=description]")).toHaveValue("Writes <script>alert(1)</script> in her notes.");
  await expect(form.locator("#lore-0-keys")).toHaveValue("harbour, docks");
  await expect(page.getByTestId("greeting-choice")).toHaveValue("1");
  await expect(page.getByTestId("greeting-choice").locator("option").nth(1)).toHaveText("Alternate 1: A second <u>greeting</u>.");

  // A lorebook file's entries join the book.
  await page.getByTestId("lorebook-file").setInputFiles(eldoria);
  await expect(page.getByTestId("lorebook-done")).toHaveText(/^Added \d+ entr/);
  expect(await page.getByTestId("lore-entry").count()).toBeGreaterThan(1);
  await expect(form.locator("#lore-0-name")).toHaveValue("Harbour");

  // Literal text in the grid and the heading: no element was made from it.
  const item = page.getByTestId("character-grid").locator("li").filter({ hasText: "Bold" });
  await expect(item.locator(".character-name")).toHaveText(name);
  await expect(item.locator("b, img")).toHaveCount(0);
  await expect(page.getByTestId("character-title").locator("b, img")).toHaveCount(0);
  // No portrait: the initials stand in.
  await expect(item.locator(".initials")).toHaveText("BB");
  await page.setViewportSize({ width: 375, height: 760 });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  expect(overflow, "the form scrolls sideways on a phone").toBeLessThanOrEqual(0);
  await snap(page, "characters-form-phone");
  await page.setViewportSize({ width: 1280, height: 860 });

  // Deleted after a confirm; the default character cannot be.
  page.once("dialog", (d) => d.accept());
  await page.getByTestId("delete-character").click();
  await expect(page).toHaveURL(/\/characters$/);
  await expect(page.getByTestId("character-grid").locator("li").filter({ hasText: "Bold" })).toHaveCount(0);
  await openTab(page, "/characters?id=1");
  await expect(page.getByTestId("character-form")).toBeVisible();
  await expect(page.getByTestId("delete-character")).toHaveCount(0);
});

test("a conversation with a character who has an avatar of their own shows it", async ({ page, request }) => {
  const upload = await request.post("/api/avatars/upload", {
    multipart: { file: { name: "default-vrm0.vrm", mimeType: "model/gltf-binary", buffer: fs.readFileSync(twin) } },
  });
  expect(upload.ok()).toBeTruthy();
  await openTab(page, "/characters?id=new");
  const form = page.getByTestId("character-form");
  await form.locator("[data-field=name]").fill("Vee");
  await form.locator("[data-field=first_mes]").fill("Hi, it is me in my other dress.");
  const choice = page.getByTestId("avatar-choice");
  await expect(choice.locator("option[value='/files/avatars/default-vrm0.vrm']")).toHaveCount(1);
  await choice.selectOption("/files/avatars/default-vrm0.vrm");
  await page.getByTestId("save-character").click();
  await expect(page).toHaveURL(/\/characters\?id=\d+$/);
  const id = new URL(page.url()).searchParams.get("id");
  await expect(page.getByTestId("avatar-choice")).toHaveValue("/files/avatars/default-vrm0.vrm");

  await page.getByTestId("new-chat").click();
  await expect(page).toHaveURL(/\/chat\?session=\d+/);
  await expect(page.getByTestId("messages")).toContainText("in my other dress");
  // The configured avatar is the default (VRM 1.0); this conversation shows the character's.
  await expect(page.getByTestId("avatar")).toHaveAttribute("data-vrm", "0", { timeout: 45_000 });
  await expect(page.getByTestId("avatar")).toHaveAttribute("data-state", "ready");

  // Leave the data folder as the other specs expect it.
  expect((await request.delete(`/api/characters/${id}`)).ok()).toBeTruthy();
  expect((await request.delete("/api/avatars/default-vrm0.vrm")).ok()).toBeTruthy();
});

test("a reply whose prompt had lorebook entries names them", async ({ page, request }) => {
  const llm = await startMockLlm("[happy] The harbour ", ["is", "busy."], 20);
  try {
    const r = await request.put("/api/config", {
      data: { output_mode: "text", llm: { provider: "lmstudio", endpoint: llm.base, model: "mock" } },
    });
    expect(r.ok()).toBeTruthy();
    await openTab(page, "/characters?id=new");
    const form = page.getByTestId("character-form");
    await form.locator("[data-field=name]").fill("Lore Keeper");
    await form.locator("[data-field=first_mes]").fill("Welcome to the port town.");
    await page.getByTestId("add-lorebook").click();
    await page.getByTestId("add-entry").click();
    await form.locator("#lore-0-name").fill("Harbour");
    await form.locator("#lore-0-keys").fill("harbour");
    await form.locator("#lore-0-content").fill("The harbour is busy at dawn.");
    await page.getByTestId("lore-entry").first().locator("input[data-field=constant]").check();
    await page.getByTestId("save-character").click();
    await expect(page).toHaveURL(/\/characters\?id=\d+$/);
    const id = new URL(page.url()).searchParams.get("id");

    await page.getByTestId("new-chat").click();
    await expect(page).toHaveURL(/\/chat\?session=\d+/);
    await hydrated(page);
    await page.getByTestId("composer").fill("Tell me about the harbour.");
    await page.getByTestId("composer").press("Enter");
    const reply = page.locator('.msg[data-role="assistant"]').last();
    await expect(reply).toContainText("busy.", { timeout: 20_000 });
    await expect(page.getByTestId("live-reply")).toHaveCount(0);
    const lore = reply.getByTestId("lore-used");
    await expect(lore.locator("summary")).toHaveText("Lorebook: Harbour");
    // The greeting was not a reply to a prompt: it names no entries.
    await expect(page.locator('.msg[data-role="assistant"]').first().getByTestId("lore-used")).toHaveCount(0);
    await snap(page, "characters-lore-used");
    expect((await request.delete(`/api/characters/${id}`)).ok()).toBeTruthy();
  } finally {
    await request.put("/api/config", { data: { llm: null, output_mode: null } });
    await llm.close();
  }
});
