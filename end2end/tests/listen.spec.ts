import type { Page, Locator } from "@playwright/test";
import { test, expect } from "./fixtures";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { hydrated, snap } from "./helpers";
import { MockLlm, startMockLlm } from "./mock-llm";

// Talking to the companion, end to end: Chromium's fake microphone plays a question spoken by
// eSpeak NG, the real speech recogniser (whisper_local) writes it down, a mock LLM answers, the
// real Piper voice speaks, and the avatar's mouth moves.

const QUESTION = "What is the capital of France?";
// Whisper tiny.en hears eSpeak NG's "of" as "on" at times: the words around it are what count.
const HEARD = /capital\b.{0,6}\bfrance/i;
const LEAD_S = 1.0;

/** The question as Chromium's fake microphone plays it: eSpeak NG's 16-bit mono PCM WAV with a
 * second of silence before it (the detector is still connecting when the capture starts) and a
 * little after. Chromium reads 16-bit PCM WAV at any rate; `%noloop` (below) plays it once per
 * capture, from the start, then silence. */
function spokenQuestion(): { file: string; seconds: number } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "waifu-voice-"));
  const raw = path.join(dir, "raw.wav");
  execFileSync("espeak-ng", ["-s", "150", "-w", raw, QUESTION]);
  const wav = fs.readFileSync(raw);
  // The chunks after "RIFF....WAVE": fmt gives the format, data the samples.
  let fmt: Buffer | undefined;
  let data: Buffer | undefined;
  for (let at = 12; at + 8 <= wav.length; ) {
    const id = wav.toString("ascii", at, at + 4);
    const size = Math.min(wav.readUInt32LE(at + 4), wav.length - at - 8);
    const body = wav.subarray(at + 8, at + 8 + size);
    if (id === "fmt ") fmt = body;
    if (id === "data") data = body;
    at += 8 + size + (size % 2);
  }
  if (!fmt || !data || fmt.readUInt16LE(0) !== 1 || fmt.readUInt16LE(14) !== 16) {
    throw new Error("espeak-ng did not write 16-bit PCM");
  }
  const rate = fmt.readUInt32LE(4);
  const blockAlign = fmt.readUInt16LE(12);
  const pad = (s: number) => Buffer.alloc(Math.round(rate * s) * blockAlign);
  const samples = Buffer.concat([pad(LEAD_S), data, pad(0.4)]);
  const header = Buffer.alloc(44);
  header.write("RIFF", 0);
  header.writeUInt32LE(36 + samples.length, 4);
  header.write("WAVEfmt ", 8);
  header.writeUInt32LE(16, 16);
  fmt.copy(header, 20, 0, 16);
  header.write("data", 36);
  header.writeUInt32LE(samples.length, 40);
  const file = path.join(dir, "question.wav");
  fs.writeFileSync(file, Buffer.concat([header, samples]));
  return { file, seconds: samples.length / blockAlign / rate };
}

const question = spokenQuestion();

// The microphone is a launch option, so this file has its own browser: the suite's usual flags
// plus Chromium's fake microphone (granted without a prompt) playing the question. Sound may
// start without a gesture here: other specs cover the voice's unlock button.
test.use({
  launchOptions: {
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--use-angle=swiftshader",
      "--enable-unsafe-swiftshader",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
      "--disable-quic",
      "--autoplay-policy=no-user-gesture-required",
      "--use-fake-ui-for-media-stream",
      "--use-fake-device-for-media-stream",
      `--use-file-for-fake-audio-capture=${question.file}%noloop`,
    ],
  },
});

const REPLY =
  "Paris is the capital of France. It is a lovely city by the river, with old bridges and " +
  "bright cafes, and the tower shines at night.";
const LONG = Array.from({ length: 30 }, (_, i) => `This is sentence number ${i + 1} of a long story.`).join(" ");

let llm: MockLlm;
let longLlm: MockLlm;

test.beforeAll(async () => {
  llm = await startMockLlm("[happy] ", REPLY.split(" "), (i) => (i < 8 ? 33 : 120));
  longLlm = await startMockLlm("[relaxed] ", LONG.split(" "), (i) => (i < 9 ? 33 : 150));
});

test.afterAll(async ({ request }) => {
  await request.put("/api/config", {
    data: { llm: null, tts: null, asr: null, output_mode: null, input_mode: null },
  });
  await llm.close();
  await longLlm.close();
});

async function configure(page: Page, m: MockLlm, extra: object) {
  const r = await page.request.put("/api/config", {
    data: {
      output_mode: "text+voice",
      llm: { provider: "lmstudio", endpoint: m.base, model: "mock" },
      tts: { provider: "piper_local", fallback_chain: ["espeak"] },
      asr: { provider: "whisper_local", barge_in: false },
      ...extra,
    },
  });
  expect(r.ok(), await r.text()).toBeTruthy();
}

/** Starts the recogniser's and the voice's workers, so the tests time a warm pipeline. The
 * recogniser hears the same question the microphone plays. */
async function warmUp(page: Page) {
  const asr = await page.request.post("/api/asr", {
    headers: { "content-type": "audio/wav" },
    data: fs.readFileSync(question.file),
    timeout: 60_000,
  });
  expect(asr.ok(), await asr.text()).toBeTruthy();
  expect((await asr.json()).text).toMatch(HEARD);
  expect((await page.request.post("/api/tts", { data: { text: "Warming up the voice." } })).ok()).toBeTruthy();
}

async function openChat(page: Page): Promise<Locator> {
  await page.goto("/chat");
  await hydrated(page);
  const avatar = page.getByTestId("avatar");
  await expect(avatar).toHaveAttribute("data-state", "ready", { timeout: 20_000 });
  return avatar;
}

/** The largest viseme weight the avatar shows now. */
async function mouthOpen(avatar: Locator): Promise<number> {
  const raw = (await avatar.getAttribute("data-mouth")) ?? "{}";
  const m = JSON.parse(raw) as Record<string, number>;
  return Math.max(0, ...Object.values(m));
}

/** The level meter's fill, in percent. */
async function meterFill(page: Page): Promise<number> {
  const width = await page.locator(".mic-level-fill").evaluate((e: HTMLElement) => e.style.width);
  return parseFloat(width) || 0;
}

/** Holds the microphone button with the mouse for the whole question, then lets go. */
async function holdToTalk(page: Page, shot?: string) {
  const mic = page.getByTestId("mic");
  const box = await mic.boundingBox();
  if (!box) throw new Error("the microphone button is not on screen");
  await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
  await page.mouse.down();
  await expect(mic).toHaveAttribute("data-state", "recording");
  await expect(page.getByTestId("mic-level")).toBeVisible();
  // The meter moves once the spoken words start.
  await expect.poll(() => meterFill(page), { timeout: 5_000, intervals: [50] }).toBeGreaterThan(20);
  if (shot) await snap(page, shot);
  const held = Date.now();
  await page.waitForTimeout(Math.max(0, question.seconds * 1000 + 300 - (Date.now() - held)));
  await page.mouse.up();
}

/** The last chat request the LLM received, as its messages' last user text. */
function lastUserText(m: MockLlm): string {
  const bodies = m.bodies();
  const body = JSON.parse(bodies[bodies.length - 1] ?? "{}");
  const users = (body.messages ?? []).filter((x: { role: string }) => x.role === "user");
  return users.length ? String(users[users.length - 1].content) : "";
}

test("push-to-talk: a spoken question becomes the message, and the reply is spoken with the mouth moving", async ({ page }) => {
  test.setTimeout(120_000);
  await configure(page, llm, { input_mode: "push_to_talk" });
  await warmUp(page);
  const avatar = await openChat(page);
  const mic = page.getByTestId("mic");
  await expect(mic).toBeVisible();
  await expect(mic).toHaveAttribute("data-state", "off");
  await expect(page.getByTestId("input-mode")).toHaveValue("push_to_talk");
  const before = llm.requests();

  await holdToTalk(page, "chat-mic-recording");
  // The transcript stands in the message box while it is sent and answered.
  await expect(page.getByTestId("composer")).toHaveValue(HEARD, { timeout: 30_000 });
  await expect(page.getByTestId("live-reply")).toContainText("Paris", { timeout: 30_000 });
  expect(llm.requests()).toBe(before + 1);
  expect(lastUserText(llm)).toMatch(HEARD);
  // The reply is spoken: the mouth follows the audio that plays.
  await expect.poll(() => mouthOpen(avatar), { timeout: 30_000, intervals: [50] }).toBeGreaterThan(0.05);
  await expect(page.getByTestId("turn-status")).toHaveText("Speaking…");
  await snap(page, "chat-voice-reply");
  // When the turn is over the box is empty again and the message is stored as spoken.
  await expect(page.getByTestId("send")).toBeVisible({ timeout: 60_000 });
  await expect(page.getByTestId("composer")).toHaveValue("");
  await expect(page.getByTestId("messages")).toContainText(HEARD);
});

test("hands-free: one spoken utterance is sent without a click", async ({ page }) => {
  test.setTimeout(120_000);
  // No spoken reply: this is about listening (half-duplex pausing is the next test's business).
  await configure(page, llm, { input_mode: "text", output_mode: "text" });
  await warmUp(page);
  await openChat(page);
  const mic = page.getByTestId("mic");
  await expect(mic).toBeHidden();
  const before = llm.requests();

  // Switching to hands-free loads the detector (lazily: it was not part of the page) and listens.
  const vadRequests: string[] = [];
  page.on("request", (r) => {
    if (r.url().includes("/vad/")) vadRequests.push(new URL(r.url()).pathname);
  });
  await page.getByTestId("input-mode").selectOption("hands_free");
  await expect(mic).toHaveAttribute("data-state", /^(listening|recording|transcribing)$/, { timeout: 30_000 });
  await expect.poll(() => meterFill(page), { timeout: 15_000, intervals: [50] }).toBeGreaterThan(20);
  await snap(page, "chat-hands-free-listening");
  const messages = page.getByTestId("messages");
  await expect(messages).toContainText(HEARD, { timeout: 30_000 });
  await expect(messages).toContainText("Paris", { timeout: 30_000 });
  expect(lastUserText(llm)).toMatch(HEARD);
  // Exactly one utterance: the microphone went quiet after the question.
  await page.waitForTimeout(3_000);
  expect(llm.requests()).toBe(before + 1);
  await expect(mic).toHaveAttribute("data-state", "listening");
  // Everything the detector needs came from the app itself (the audio worklet too, which the
  // page's request events do not show).
  expect(vadRequests).toEqual(
    expect.arrayContaining([
      "/vad/vad-bridge.js",
      "/vad/silero_vad_v5.onnx",
      "/vad/ort-wasm-simd-threaded.wasm",
    ]),
  );
  // The setting was saved.
  const cfg = await (await page.request.get("/api/config")).json();
  expect(cfg.input_mode).toBe("hands_free");
  await snap(page, "chat-hands-free-sent");
  // Back to typing: the microphone is released.
  await page.getByTestId("input-mode").selectOption("text");
  await expect(mic).toBeHidden();
});

test("pressing to talk while the avatar speaks silences it at once (barge-in)", async ({ page }) => {
  test.setTimeout(120_000);
  await configure(page, longLlm, { input_mode: "push_to_talk" });
  await warmUp(page);
  const avatar = await openChat(page);
  await page.getByTestId("composer").fill("Tell me a long story.");
  await page.getByTestId("composer").press("Enter");
  await expect.poll(() => mouthOpen(avatar), { timeout: 30_000, intervals: [50] }).toBeGreaterThan(0.05);
  const before = longLlm.requests();

  const mic = page.getByTestId("mic");
  const box = await mic.boundingBox();
  if (!box) throw new Error("the microphone button is not on screen");
  await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
  await page.mouse.down();
  // The voice stops as Stop would: the mouth closes and the reply is cut short.
  await expect.poll(() => mouthOpen(avatar), { timeout: 2_000 }).toBe(0);
  await expect(page.getByTestId("turn-status")).not.toHaveText("Speaking…");
  await expect(mic).toHaveAttribute("data-state", "recording");
  await snap(page, "chat-barge-in");
  await page.waitForTimeout(question.seconds * 1000 + 300);
  await page.mouse.up();
  // What was said is the next message.
  await expect(page.getByTestId("messages")).toContainText(HEARD, { timeout: 30_000 });
  expect(longLlm.requests()).toBe(before + 1);
  expect(lastUserText(longLlm)).toMatch(HEARD);
  await page.getByTestId("stop").click();
  await page.reload();
  await hydrated(page);
  await expect(page.locator('.msg[data-role="assistant"] .badge').first()).toHaveText("cut short");
});

test("a recogniser that is off is told plainly under the message box", async ({ page }) => {
  test.setTimeout(60_000);
  await configure(page, llm, { input_mode: "push_to_talk", asr: { provider: "disabled" } });
  await openChat(page);
  const mic = page.getByTestId("mic");
  const box = await mic.boundingBox();
  if (!box) throw new Error("the microphone button is not on screen");
  await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
  await page.mouse.down();
  await expect(mic).toHaveAttribute("data-state", "recording");
  await page.waitForTimeout(1_500);
  await page.mouse.up();
  const notice = page.getByTestId("mic-notice");
  await expect(notice).toHaveAttribute("data-code", "asr_disabled", { timeout: 10_000 });
  await expect(notice).toBeVisible();
  await expect(mic).toHaveAttribute("data-state", "off");
  await snap(page, "chat-mic-error");
});

test("Setup saves the recogniser and barge-in; System shows the recogniser's card", async ({ page }) => {
  test.setTimeout(90_000);
  await configure(page, llm, { input_mode: "text" });
  await warmUp(page);
  await page.goto("/setup");
  await hydrated(page);
  const card = page.getByTestId("asr-settings");
  await expect(card).toBeVisible();
  const provider = card.locator('select[name="asr.provider"]');
  await expect(provider).toHaveValue("whisper_local");
  const endpoint = card.locator('input[name="asr.providers.openai_compatible.endpoint"]');
  await expect(endpoint).toBeHidden();
  await provider.selectOption("openai_compatible");
  await expect(endpoint).toBeVisible();
  await snap(page, "setup-asr-server");
  await provider.selectOption("whisper_local");
  await card.getByTestId("asr-barge-in").check();
  await card.locator('input[name="asr.language"]').fill("en");
  await page.getByRole("button", { name: "Save settings" }).click();
  await expect(page.getByTestId("save-status")).toHaveAttribute("data-state", "saved");
  const cfg = await (await page.request.get("/api/config")).json();
  expect(cfg.asr.barge_in).toBe(true);
  expect(cfg.asr.provider).toBe("whisper_local");
  // Unticking saves false (the hidden entry before the box).
  await card.getByTestId("asr-barge-in").uncheck();
  await page.getByRole("button", { name: "Save settings" }).click();
  await expect
    .poll(async () => (await (await page.request.get("/api/config")).json()).asr.barge_in)
    .toBe(false);

  await page.goto("/system");
  await hydrated(page);
  const asr = page.locator('[data-testid="health-card"][data-kind="asr"]');
  await expect(asr).toHaveAttribute("data-provider", "whisper_local");
  await expect(asr.locator(".provider-name")).toHaveText("Whisper (offline)");
  await expect(asr).toHaveAttribute("data-state", "ok");
  await expect(page.getByTestId("installed-whisper-model")).not.toHaveAttribute("data-source", "missing");
  await snap(page, "system-asr-card");
});
