import type { Page, Locator } from "@playwright/test";
import { test, expect } from "./fixtures";
import * as http from "node:http";
import { AddressInfo } from "node:net";
import { hydrated, snap } from "./helpers";
import { MockLlm, startMockLlm } from "./mock-llm";

// The talking companion, end to end: a mock LLM streams at about 30 tokens a second, the real
// Piper voice speaks, the browser plays the sentences and moves the avatar's mouth and face.

const REPLY =
  "Hello there, it is so good to see you again today! I was just thinking about the stars. " +
  "The night sky is clear and bright, and the moon is almost full. There is a soft wind from the " +
  "sea, and the whole town is quiet. Shall we look at it together?";
const LONG = Array.from({ length: 30 }, (_, i) => `This is sentence number ${i + 1} of a long story.`).join(" ");

let llm: MockLlm;
let longLlm: MockLlm;

async function useLlm(page: Page, m: MockLlm) {
  const r = await page.request.put("/api/config", {
    data: {
      output_mode: "text+voice",
      llm: { provider: "lmstudio", endpoint: m.base, model: "mock" },
      tts: { provider: "piper_local", fallback_chain: ["espeak"] },
    },
  });
  expect(r.ok()).toBeTruthy();
}

/** The largest viseme weight the avatar shows now. */
async function mouthOpen(avatar: Locator): Promise<number> {
  const raw = (await avatar.getAttribute("data-mouth")) ?? "{}";
  const m = JSON.parse(raw) as Record<string, number>;
  return Math.max(0, ...Object.values(m));
}

async function openChat(page: Page): Promise<Locator> {
  await page.goto("/chat");
  await hydrated(page);
  const avatar = page.getByTestId("avatar");
  await expect(avatar).toHaveAttribute("data-state", "ready", { timeout: 20_000 });
  return avatar;
}

/** The mock's pace: the first sentence (`firstWords` words) at 30 words a second, the rest at
 * about 7, so the text takes many seconds. The first audio must be on its way long before the
 * text is complete and Stop must come while it is still arriving, even when a busy machine makes
 * Piper slow (a whole-reply-then-speak server could not start before the text is complete). */
const paced = (firstWords: number) => (i: number) => (i < firstWords ? 33 : 150);

test.beforeAll(async () => {
  llm = await startMockLlm("[happy] ", REPLY.split(" "), paced(11));
  longLlm = await startMockLlm("[relaxed] ", LONG.split(" "), paced(9));
});

test.afterAll(async ({ request }) => {
  await request.put("/api/config", { data: { llm: null, tts: null, output_mode: null } });
  await llm.close();
  await longLlm.close();
});

test("a spoken reply starts before the text is complete, moves the mouth, shows the emotion, then rests", async ({ page }) => {
  test.setTimeout(90_000);
  await useLlm(page, llm);
  // The voice's first sentence after the server starts also starts Piper's worker (one to three
  // seconds on a busy machine); this test is about a warm voice.
  expect((await page.request.post("/api/tts", { data: { text: "Warming up the voice." } })).ok()).toBeTruthy();
  const avatar = await openChat(page);
  await page.getByTestId("composer").fill("Hi! What are you doing?");
  await page.getByTestId("composer").press("Enter");

  await expect(page.getByTestId("live-reply")).toContainText("Hello there");
  await expect(avatar).toHaveAttribute("data-expression", "happy", { timeout: 10_000 });
  // The mouth follows the audio that plays.
  await expect.poll(() => mouthOpen(avatar), { timeout: 30_000, intervals: [50] }).toBeGreaterThan(0.05);
  await expect(page.getByTestId("turn-status")).toHaveText("Speaking…");
  await snap(page, "chat-speaking");

  // When the last sentence has played, the mouth is at rest and Send is back.
  await expect(page.getByTestId("send")).toBeVisible({ timeout: 60_000 });
  await expect.poll(() => mouthOpen(avatar), { timeout: 5_000 }).toBe(0);
  const reply = page.locator('.msg[data-role="assistant"]').last();
  await expect(reply).toContainText("Shall we look at it together?");
  await expect(reply).not.toContainText("[happy]");
  // The face goes back to neutral a moment later.
  await expect(avatar).toHaveAttribute("data-expression", "", { timeout: 15_000 });

  // The first audio was on its way before the reply was complete; the browser reported playback.
  const latency = await (await page.request.get("/api/latency?limit=1")).json();
  const stage = (name: string) => latency.stages.find((s: { stage: string }) => s.stage === name);
  expect(stage("first_audio_sent").p50).toBeLessThan(stage("response_complete").p50);
  await expect
    .poll(async () => (await (await page.request.get("/api/latency?limit=1")).json()).first_audio.count)
    .toBe(1);
  const again = await (await page.request.get("/api/latency?limit=1")).json();
  expect(again.stages.find((s: { stage: string }) => s.stage === "playback_started").count).toBe(1);
});

test("Stop while speaking silences the avatar at once and keeps the partial reply", async ({ page }) => {
  test.setTimeout(90_000);
  await useLlm(page, longLlm);
  const avatar = await openChat(page);
  await page.getByTestId("composer").fill("Tell me a long story.");
  await page.getByTestId("composer").press("Enter");
  await expect.poll(() => mouthOpen(avatar), { timeout: 30_000, intervals: [50] }).toBeGreaterThan(0.05);
  await expect(page.getByTestId("live-reply")).not.toContainText("number 30");
  await page.getByTestId("stop").click();

  await expect.poll(() => mouthOpen(avatar), { timeout: 2_000 }).toBe(0);
  // Nothing starts playing afterwards (late audio of the stopped turn is dropped).
  await page.waitForTimeout(1500);
  expect(await mouthOpen(avatar)).toBe(0);
  await expect(page.getByTestId("send")).toBeVisible();
  await page.reload();
  await hydrated(page);
  const stored = page.locator('.msg[data-role="assistant"]').last();
  await expect(stored.locator(".badge")).toHaveText("cut short");
  await expect(stored).toContainText("sentence number 1 ");
  await expect(stored).not.toContainText("number 30 of a long story");
});

/** A mock xtts-api-server (`POST /tts_to_audio/`, JSON in, WAV out) that answers the first
 * request and fails every later one, like a GPU server running out of memory. */
async function flakyXtts(): Promise<{ endpoint: string; calls: () => number; close: () => Promise<void> }> {
  let calls = 0;
  const server = http.createServer((req, res) => {
    const body: Buffer[] = [];
    req.on("data", (c) => body.push(c));
    req.on("end", () => {
      if (req.method !== "POST" || !req.url?.startsWith("/tts_to_audio")) {
        res.writeHead(404).end();
        return;
      }
      calls++;
      if (calls > 1) {
        res.writeHead(500, { "content-type": "application/json" });
        res.end(JSON.stringify({ detail: "Error: CUDA out of memory" }));
        return;
      }
      res.writeHead(200, { "content-type": "audio/wav" });
      res.end(tone(0.6));
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  return {
    endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    calls: () => calls,
    close: () => new Promise((r) => server.close(() => r())),
  };
}

/** A WAV file: `seconds` of a 220 Hz tone, 16-bit mono at 22050 Hz. */
function tone(seconds: number): Buffer {
  const rate = 22050;
  const n = Math.round(rate * seconds);
  const b = Buffer.alloc(44 + n * 2);
  b.write("RIFF", 0);
  b.writeUInt32LE(36 + n * 2, 4);
  b.write("WAVEfmt ", 8);
  b.writeUInt32LE(16, 16);
  b.writeUInt16LE(1, 20);
  b.writeUInt16LE(1, 22);
  b.writeUInt32LE(rate, 24);
  b.writeUInt32LE(rate * 2, 28);
  b.writeUInt16LE(2, 32);
  b.writeUInt16LE(16, 34);
  b.write("data", 36);
  b.writeUInt32LE(n * 2, 40);
  for (let i = 0; i < n; i++) b.writeInt16LE(Math.round(Math.sin((2 * Math.PI * 220 * i) / rate) * 8000), 44 + i * 2);
  return b;
}

test("a voice that fails mid-reply hands over to the next one, and System says why", async ({ page }) => {
  test.setTimeout(90_000);
  const xtts = await flakyXtts();
  try {
    const r = await page.request.put("/api/config", {
      data: {
        output_mode: "text+voice",
        llm: { provider: "lmstudio", endpoint: llm.base, model: "mock" },
        tts: {
          provider: "xtts_server",
          fallback_chain: ["piper_local"],
          providers: { xtts_server: { endpoint: xtts.endpoint, flavor: "xtts_api_server", language: "en" } },
        },
      },
    });
    expect(r.ok()).toBeTruthy();
    const avatar = await openChat(page);
    await page.getByTestId("composer").fill("Say something, please.");
    await page.getByTestId("composer").press("Enter");
    // The reply is spoken to the end: Piper takes over after the first sentence.
    await expect.poll(() => mouthOpen(avatar), { timeout: 30_000, intervals: [50] }).toBeGreaterThan(0.05);
    await expect(page.getByTestId("send")).toBeVisible({ timeout: 60_000 });
    expect(xtts.calls()).toBeGreaterThan(1);

    await page.goto("/system");
    await hydrated(page);
    const card = page.getByTestId("tts-card-xtts_server");
    await expect(card).toContainText(/500|out of memory|server/i);
    await expect(page.getByTestId("latency-panel")).toBeVisible();
    await expect(page.getByTestId("latency-first-audio")).toContainText(/\d+ ms/);
    // The reply's own row: its prompt was read (the mock counts nothing as cached on a first
    // request).
    const trace = page.getByTestId("latency-trace").first();
    await expect(trace).toBeVisible();
    await expect(trace).toHaveAttribute("data-read", /^[1-9]\d*$/);
    await expect(trace).toHaveAttribute("data-cached", /^\d+$/);
    await snap(page, "system-latency");
  } finally {
    await xtts.close();
  }
});
