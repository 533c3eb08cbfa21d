import type { APIRequestContext } from "@playwright/test";
import { test, expect } from "./fixtures";
import { ChildProcess, spawn } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { canvasVariance, hydrated, snap } from "./helpers";
import { MockLlm, startMockLlm } from "./mock-llm";

// Three instances of the release binary sharing one PostgreSQL, one S3 bucket and the settings,
// behind nginx (tools/cluster/run.sh): what one instance stores, another must serve. Each test
// works on a different instance than the one that wrote, so a state kept in one process fails it.
// The last test kills an instance mid-reply; the tests run in this order (workers: 1).

const repo = path.resolve(__dirname, "..", "..");
const bin = process.env.WAIFU_BIN ?? path.join(os.homedir(), ".cache/waifu-rt3d/target/release/waifu-rt3d");
const PORT = Number(process.env.WAIFU_E2E_CLUSTER_PORT ?? 3300);
const PROXY = `http://127.0.0.1:${PORT}`;
const A = `http://127.0.0.1:${PORT + 1}`;
const B = `http://127.0.0.1:${PORT + 2}`;
const C = `http://127.0.0.1:${PORT + 3}`;
const twin = path.resolve(repo, "assets", "avatars", "default-vrm0.vrm");

// Starting PostgreSQL, moto and three servers, and the viewer's software rendering, take time.
test.describe.configure({ timeout: 120_000 });

let cluster: ChildProcess | undefined;
let clusterLog: string[] = [];
/** Instance number (1 = A, 2 = B, 3 = C) to the server's pid, as run.sh reports them. */
const pids = new Map<number, number>();
let fast: MockLlm;
let slow: MockLlm;
const SLOW_WORDS = 100;

function startCluster(): Promise<void> {
  const child = spawn("bash", [path.join(repo, "tools", "cluster", "run.sh")], {
    cwd: repo,
    env: {
      ...process.env,
      CLUSTER_PORT: String(PORT),
      WAIFU_BIN: bin,
      WAIFU_INSTALL_DIR: path.join(repo, "data"),
      CLUSTER_APP_ENV: "WAIFU_LOG=warn",
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  cluster = child;
  return new Promise((resolve, reject) => {
    let ready = false;
    const onLines = (buf: { rest: string }) => (chunk: Buffer) => {
      buf.rest += chunk.toString("utf8");
      const lines = buf.rest.split("\n");
      buf.rest = lines.pop() ?? "";
      for (const line of lines) {
        clusterLog.push(line);
        const pid = /^cluster: instance (\d+) is process (\d+)$/.exec(line);
        if (pid) pids.set(Number(pid[1]), Number(pid[2]));
        if (!ready && line.startsWith("cluster ready:")) {
          ready = true;
          resolve();
        }
      }
    };
    child.stdout!.on("data", onLines({ rest: "" }));
    child.stderr!.on("data", onLines({ rest: "" }));
    child.on("exit", (code, signal) => {
      cluster = undefined;
      if (!ready) reject(new Error(`the cluster exited during its start (${code ?? signal}):\n${clusterLog.slice(-40).join("\n")}`));
    });
  });
}

async function stopCluster() {
  const child = cluster;
  if (!child) return;
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  child.kill("SIGTERM");
  // run.sh stops every child (up to 15 s each) and deletes its folder before it exits.
  const timer = setTimeout(() => child.kill("SIGKILL"), 90_000);
  await exited;
  clearTimeout(timer);
}

async function useLlm(request: APIRequestContext, base: string, m: MockLlm) {
  const r = await request.put(`${base}/api/config`, {
    data: { output_mode: "text", llm: { provider: "lmstudio", endpoint: m.base, model: "mock" } },
  });
  expect(r.ok(), await r.text()).toBeTruthy();
}

async function json(request: APIRequestContext, url: string) {
  const r = await request.get(url);
  expect(r.status(), `GET ${url}: ${await r.text()}`).toBe(200);
  return r.json();
}

test.beforeAll(async () => {
  test.setTimeout(180_000);
  fast = await startMockLlm("[happy] ", ["The", "lanternmoss", "glows", "softly."], 5);
  slow = await startMockLlm("[relaxed] ", Array.from({ length: SLOW_WORDS }, (_, i) => `slow${i}`), 100);
  await startCluster();
  expect([...pids.keys()].sort(), "run.sh names each instance's pid").toEqual([1, 2, 3]);
});

test.afterAll(async () => {
  test.setTimeout(120_000);
  await stopCluster();
  await fast?.close();
  await slow?.close();
});

test.afterEach(async ({}, testInfo) => {
  if (testInfo.status !== testInfo.expectedStatus) {
    await testInfo.attach("cluster.log", { body: clusterLog.join("\n"), contentType: "text/plain" });
  }
});

test("a conversation started on A and continued on B is found on C with both turns", async ({ request }) => {
  // Set once, on A: the settings are shared, so B answers with the same model.
  await useLlm(request, A, fast);
  await expect.poll(async () => (await json(request, `${B}/api/config`)).llm.endpoint, { timeout: 5_000 }).toBe(fast.base);

  const created = await request.post(`${A}/api/sessions`, { data: { title: "Cluster trip" } });
  expect(created.ok()).toBeTruthy();
  const sid: number = (await created.json()).id;

  const first = await request.post(`${A}/api/chat?session_id=${sid}`, { data: { text: "Shall we visit the zephyrquartz caves?" } });
  expect(first.status(), await first.text()).toBe(200);
  expect((await first.json()).reply).toBe("The lanternmoss glows softly.");

  const before = fast.requests();
  const second = await request.post(`${B}/api/chat?session_id=${sid}`, { data: { text: "Then the marblefinch lake after that." } });
  expect(second.status(), await second.text()).toBe(200);
  const secondBody = await second.json();
  expect(secondBody.session_id).toBe(sid);
  // B's prompt carries the turn A stored: it read the session's history from the shared database.
  expect(fast.requests()).toBe(before + 1);
  const prompt = fast.bodies().at(-1)!;
  expect(prompt).toContain("zephyrquartz");
  expect(prompt).toContain("lanternmoss");

  // C finds both turns: each person's message and both replies.
  const hits = async (q: string) =>
    ((await json(request, `${C}/api/search?q=${q}&session_id=${sid}`)).results as { role: string; session_title: string }[]);
  expect((await hits("zephyrquartz")).map((r) => r.role)).toEqual(["user"]);
  expect((await hits("marblefinch")).map((r) => r.role)).toEqual(["user"]);
  const replies = await hits("lanternmoss");
  expect(replies.map((r) => r.role)).toEqual(["assistant", "assistant"]);
  expect(replies[0].session_title).toBe("Cluster trip");

  const messages = (await json(request, `${C}/api/sessions/${sid}/messages`)).messages as { role: string; text: string; partial: boolean }[];
  expect(messages.map((m) => [m.role, m.text, m.partial])).toEqual([
    ["user", "Shall we visit the zephyrquartz caves?", false],
    ["assistant", "The lanternmoss glows softly.", false],
    ["user", "Then the marblefinch lake after that.", false],
    ["assistant", "The lanternmoss glows softly.", false],
  ]);
});

test("an avatar uploaded on B loads in the viewer through A", async ({ page, request }) => {
  const bytes = fs.readFileSync(twin);
  const up = await request.post(`${B}/api/avatars/upload`, {
    multipart: { file: { name: "default-vrm0.vrm", mimeType: "application/octet-stream", buffer: bytes } },
  });
  expect(up.status(), await up.text()).toBe(200);
  expect(await up.json()).toMatchObject({ name: "default-vrm0.vrm", kind: "vrm0" });

  await page.goto(`${A}/viewer`);
  await hydrated(page);
  const row = page.getByTestId("avatar-list").locator("li[data-name='default-vrm0.vrm']");
  await expect(row).toContainText("VRM 0.x");
  await row.getByTestId("use-avatar").click();
  const avatar = page.getByTestId("avatar");
  await expect(avatar).toHaveAttribute("data-vrm", "0", { timeout: 60_000 });
  await expect(avatar).toHaveAttribute("data-state", "ready");
  await expect
    .poll(() => canvasVariance(page, "[data-testid=avatar] canvas"), { message: "the canvas is not blank", timeout: 15_000 })
    .toBeGreaterThan(100);
  await snap(page, "cluster-viewer-through-a");

  // The choice made on A is C's too, and C serves the same file B received.
  await expect.poll(async () => (await json(request, `${C}/api/avatars`)).active, { timeout: 5_000 }).toBe("default-vrm0.vrm");
  const file = await request.get(`${C}/files/avatars/default-vrm0.vrm`);
  expect(file.status()).toBe(200);
  expect(Buffer.compare(await file.body(), bytes)).toBe(0);
});

test("speech synthesised on A is served by C, whole and in ranges", async ({ request }) => {
  const text = "Hello from the first instance of the cluster.";
  // The first sentence may start Piper's worker; the default chain falls back to eSpeak.
  const said = await request.post(`${A}/api/tts`, { data: { text }, timeout: 60_000 });
  expect(said.status(), await said.text()).toBe(200);
  const body = await said.json();
  const url: string = body.url;
  expect(url).toMatch(/^\/files\/audio\/[0-9a-f]{64}\.(wav|mp3|ogg|opus)$/);
  expect(body.meta.cached).toBe(false);

  const onA = await request.get(`${A}${url}`);
  expect(onA.status()).toBe(200);
  const audio = await onA.body();
  expect(audio.length).toBeGreaterThan(1000);

  const onC = await request.get(`${C}${url}`);
  expect(onC.status()).toBe(200);
  expect(Buffer.compare(await onC.body(), audio)).toBe(0);

  const part = await request.get(`${C}${url}`, { headers: { Range: "bytes=100-199" } });
  expect(part.status()).toBe(206);
  expect(part.headers()["content-range"]).toBe(`bytes 100-199/${audio.length}`);
  expect(Buffer.compare(await part.body(), audio.subarray(100, 200))).toBe(0);

  // The audio cache is the shared store: C says the same sentence without synthesising it.
  const again = await request.post(`${C}/api/tts`, { data: { text }, timeout: 60_000 });
  expect(again.status(), await again.text()).toBe(200);
  expect(await again.json()).toMatchObject({ url, meta: { cached: true } });
});

test("a setting changed on A is in effect on B within a couple of seconds", async ({ request }) => {
  const name = `Mika ${Date.now() % 100000}`;
  const put = await request.put(`${A}/api/config`, { data: { user: { name } } });
  expect(put.ok(), await put.text()).toBeTruthy();
  await expect
    .poll(async () => (await json(request, `${B}/api/config`)).user.name, { timeout: 2_500, intervals: [100] })
    .toBe(name);
});

test("B killed mid-reply: the proxy keeps answering and A reads the reply as far as it was saved", async ({ request }) => {
  await useLlm(request, A, slow);
  await expect.poll(async () => (await json(request, `${B}/api/config`)).llm.endpoint, { timeout: 5_000 }).toBe(slow.base);
  const created = await request.post(`${A}/api/sessions`, { data: { title: "Interrupted" } });
  const sid: number = (await created.json()).id;

  // Straight to B, not through nginx: the reply must be streaming on the instance that dies.
  const ctl = new AbortController();
  const res = await fetch(`${B}/api/chat/stream?session_id=${sid}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ text: "Tell me the longest story you know." }),
    signal: ctl.signal,
  });
  expect(res.status).toBe(200);
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let raw = "";
  let streamed = "";
  const events: string[] = [];
  // Reads events until `enough` says stop; false when the stream ended (or broke) first.
  const readUntil = async (enough: () => boolean): Promise<boolean> => {
    while (!enough()) {
      const chunk = await reader.read().catch(() => null);
      if (!chunk || chunk.done) return false;
      raw += decoder.decode(chunk.value, { stream: true });
      let end: number;
      while ((end = raw.indexOf("\n\n")) >= 0) {
        const block = raw.slice(0, end);
        raw = raw.slice(end + 2);
        const name = /^event: (.*)$/m.exec(block)?.[1];
        const data = /^data: (.*)$/m.exec(block)?.[1];
        if (!name) continue;
        events.push(name);
        if (name === "token" && data) streamed += JSON.parse(data).text;
      }
    }
    return true;
  };
  // Some 20 words in (two seconds): the reply's row has been written and rewritten by then.
  expect(await readUntil(() => events.filter((e) => e === "token").length >= 20)).toBe(true);
  expect(events[0]).toBe("accepted");

  const pid = pids.get(2)!;
  process.kill(pid, "SIGKILL");
  // Nothing more comes, and no `done`: the stream breaks with the process.
  expect(await readUntil(() => false)).toBe(false);
  ctl.abort();
  expect(events).not.toContain("done");
  await expect
    .poll(async () => fetch(`${B}/api/healthcheck`).then(() => "up", () => "down"), { timeout: 10_000 })
    .toBe("down");
  expect(streamed).toMatch(/^slow0 slow1 /);
  expect(streamed).not.toContain(`slow${SLOW_WORDS - 1}`);

  // Every request through the proxy is answered, by A or C: nginx retries a refused connect on
  // the next instance.
  const paths = [
    "/api/healthcheck",
    `/api/sessions/${sid}/messages`,
    "/api/search?q=lanternmoss",
    "/api/config",
    "/api/avatars",
  ];
  const statuses: string[] = [];
  for (let i = 0; i < 20; i++) {
    const p = paths[i % paths.length];
    const r = await request.get(`${PROXY}${p}`);
    statuses.push(`${p} ${r.status()}`);
  }
  expect(statuses.filter((s) => !s.endsWith(" 200")), "requests through the proxy that failed").toEqual([]);

  // The person's message, and the reply as far as B saved it (at most about a second behind the
  // stream), flagged partial, are there for A.
  const messages = (await json(request, `${A}/api/sessions/${sid}/messages`)).messages as { role: string; text: string; partial: boolean }[];
  expect(messages.map((m) => m.role)).toEqual(["user", "assistant"]);
  expect(messages[0].text).toBe("Tell me the longest story you know.");
  const reply = messages[1];
  expect(reply.partial).toBe(true);
  expect(reply.text).toMatch(/^slow0( slow\d+)*$/);
  expect(streamed.trimEnd().startsWith(reply.text)).toBe(true);
  expect(reply.text).not.toContain(`slow${SLOW_WORDS - 1}`);
});
