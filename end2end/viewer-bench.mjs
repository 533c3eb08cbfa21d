// Viewer figures (not pass/fail): bundle sizes (raw, gzip, and the build's brotli twin), the bytes
// a first visit to /chat and /viewer moves over the wire, and the time from navigation to the
// default avatar's `data-state="ready"`. Starts the real server binary on a fresh data folder.
// Run by `make bench`; WAIFU_BIN points at the release binary.
import { chromium } from "@playwright/test";
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as zlib from "node:zlib";

const repo = path.resolve(import.meta.dirname, "..");
const site = path.join(repo, "target", "site");
const bin = process.env.WAIFU_BIN ?? path.join(os.homedir(), ".cache/waifu-rt3d/target/release/waifu-rt3d");
const port = Number(process.env.WAIFU_BENCH_PORT ?? 3293);
const runs = Number(process.env.WAIFU_BENCH_RUNS ?? 5);

function sizes(file) {
  const raw = fs.readFileSync(file);
  const br = fs.existsSync(`${file}.br`) ? fs.statSync(`${file}.br`).size : null;
  return { raw: raw.length, gzip: zlib.gzipSync(raw, { level: 9 }).length, br };
}
const kb = (n) => `${(n / 1024).toFixed(1)} KB`;

// The WASM is split: the main piece plus one piece per tab other than Chat (and small shared
// chunks), fetched when that tab is first shown. The target is for what a first visit downloads.
const pkg = path.join(site, "pkg");
const wasmFiles = fs.existsSync(pkg) ? fs.readdirSync(pkg).filter((f) => f.endsWith(".wasm")) : [];
const mainWasm = wasmFiles.find((f) => f.startsWith("waifu-rt3d."));
const pieces = wasmFiles.map((f) => sizes(path.join(pkg, f)));
const all = pieces.reduce((a, s) => ({ raw: a.raw + s.raw, gzip: a.gzip + s.gzip }), { raw: 0, gzip: 0 });
const files = [
  ["WASM main", mainWasm && path.join(pkg, mainWasm), 400 * 1024],
  ["viewer JS", path.join(site, "viewer", "viewer-bridge.js"), 700 * 1024],
];
console.log("bundle                 raw        gzip      target (gzip)     brotli (served)");
for (const [name, file, target] of files) {
  if (!file || !fs.existsSync(file)) {
    console.log(`${name.padEnd(14)} missing: build with \`make build\``);
    continue;
  }
  const s = sizes(file);
  const verdict = s.gzip <= target ? "ok" : "OVER";
  const br = s.br === null ? "no twin: build with `make build`" : kb(s.br);
  console.log(`${name.padEnd(14)} ${kb(s.raw).padStart(12)} ${kb(s.gzip).padStart(11)}   <= ${kb(target)} ${verdict.padEnd(4)}   ${br}`);
}
console.log(`${"WASM, all".padEnd(14)} ${kb(all.raw).padStart(12)} ${kb(all.gzip).padStart(11)}   (${wasmFiles.length} pieces)`);

/** CPU seconds (user + system) used so far by the browser's processes (Linux /proc). */
function browserCpuSeconds() {
  const tick = 100; // USER_HZ
  let total = 0;
  for (const pid of fs.readdirSync("/proc").filter((p) => /^\d+$/.test(p))) {
    try {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      const cmd = fs.readFileSync(`/proc/${pid}/cmdline`, "utf8");
      if (!/chrom/i.test(cmd)) continue;
      total += (Number(fields[11]) + Number(fields[12])) / tick;
    } catch {
      // The process ended meanwhile.
    }
  }
  return total;
}

/** What a request is, for the byte counts. */
function kind(url, type) {
  const p = new URL(url).pathname;
  if (type === "Document") return "page";
  if (p.endsWith(".wasm")) return "WASM";
  if (p.startsWith("/viewer/")) return "viewer JS";
  if (p.endsWith(".js")) return "JS";
  if (p.endsWith(".css")) return "CSS";
  if (p.startsWith("/files/avatars/")) return "avatar";
  if (p.startsWith("/api/") || p.startsWith("/sfn/")) return "API";
  return "other";
}

/**
 * The bytes a first visit to `tab` moves (fresh context, empty cache) until the default avatar is
 * ready: per kind, as they cross the wire (Chromium's encodedDataLength, headers included) and
 * decoded, with the encodings the server chose.
 */
async function firstVisitBytes(browser, base, tab) {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  const page = await ctx.newPage();
  const cdp = await ctx.newCDPSession(page);
  await cdp.send("Network.enable");
  const requests = new Map();
  cdp.on("Network.responseReceived", (e) => {
    const h = Object.fromEntries(Object.entries(e.response.headers).map(([k, v]) => [k.toLowerCase(), v]));
    requests.set(e.requestId, { kind: kind(e.response.url, e.type), encoding: h["content-encoding"] ?? "none", decoded: 0, wire: 0 });
  });
  cdp.on("Network.dataReceived", (e) => {
    const r = requests.get(e.requestId);
    if (r) r.decoded += e.dataLength;
  });
  cdp.on("Network.loadingFinished", (e) => {
    const r = requests.get(e.requestId);
    if (r) r.wire = e.encodedDataLength;
  });
  await page.goto(`${base}${tab}`);
  await page.locator('#content[data-hydrated="true"]').waitFor({ timeout: 60_000 });
  await page.locator('[data-testid=avatar][data-state="ready"]').waitFor({ timeout: 60_000 });
  await page.waitForTimeout(1000);
  await ctx.close();
  const byKind = new Map();
  for (const r of requests.values()) {
    const k = byKind.get(r.kind) ?? { n: 0, wire: 0, decoded: 0, encodings: new Set() };
    k.n++;
    k.wire += r.wire;
    k.decoded += r.decoded;
    k.encodings.add(r.encoding);
    byKind.set(r.kind, k);
  }
  const total = [...byKind.values()].reduce((a, k) => ({ wire: a.wire + k.wire, decoded: a.decoded + k.decoded }), { wire: 0, decoded: 0 });
  console.log(`first visit ${tab}: ${kb(total.wire)} over the wire, ${kb(total.decoded)} decoded (empty cache, until the avatar is ready)`);
  for (const [name, k] of [...byKind.entries()].sort((a, b) => b[1].wire - a[1].wire)) {
    console.log(
      `  ${name.padEnd(10)} ${kb(k.wire).padStart(10)} ${kb(k.decoded).padStart(11)}   ${String(k.n).padStart(2)} request(s), ${[...k.encodings].join("/")}`,
    );
  }
}

const data = fs.mkdtempSync(path.join(os.tmpdir(), "waifu-bench-"));
const server = spawn(bin, ["--port", String(port), "--data-dir", data], {
  cwd: repo,
  env: { ...process.env, WAIFU_LOG: "warn" },
  stdio: "inherit",
});
try {
  const base = `http://127.0.0.1:${port}`;
  for (let i = 0; ; i++) {
    try {
      if ((await fetch(`${base}/api/healthcheck`)).ok) break;
    } catch {}
    if (i > 100) throw new Error("the server did not start");
    await new Promise((r) => setTimeout(r, 100));
  }
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--use-angle=swiftshader", "--enable-unsafe-swiftshader"],
  });
  for (const tab of ["/chat", "/viewer"]) await firstVisitBytes(browser, base, tab);
  // What a first visit to each tab downloads (every .wasm the page fetched, gzip as above).
  for (const tab of ["/chat", "/viewer", "/setup", "/system"]) {
    const ctx = await browser.newContext();
    const page = await ctx.newPage();
    const fetched = new Set();
    page.on("request", (r) => {
      const name = new URL(r.url()).pathname.split("/").pop();
      if (name.endsWith(".wasm")) fetched.add(name);
    });
    await page.goto(`${base}${tab}`);
    await page.locator('#content[data-hydrated="true"]').waitFor({ timeout: 60_000 });
    const got = [...fetched].map((f) => sizes(path.join(pkg, f)));
    const sum = got.reduce((a, s) => ({ raw: a.raw + s.raw, gzip: a.gzip + s.gzip }), { raw: 0, gzip: 0 });
    const verdict = sum.gzip <= 400 * 1024 ? "ok" : "OVER";
    console.log(
      `first visit ${tab.padEnd(8)} WASM ${kb(sum.raw).padStart(10)} ${kb(sum.gzip).padStart(10)} gzip in ${got.length} piece(s)   <= 400.0 KB ${verdict}`,
    );
    await ctx.close();
  }
  const times = [];
  for (let i = 0; i < runs; i++) {
    // A fresh context each time: nothing cached, like a first visit.
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 860 } });
    const page = await ctx.newPage();
    const t0 = Date.now();
    await page.goto(`${base}/viewer`);
    await page.locator('[data-testid=avatar][data-state="ready"]').waitFor({ timeout: 60_000 });
    times.push(Date.now() - t0);
    await ctx.close();
  }
  // What the idle avatar costs on the Chat tab: CPU time of every browser process (the
  // software rasteriser included) per second of wall time, and frames actually drawn.
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  const page = await ctx.newPage();
  await page.goto(`${base}/chat`);
  await page.locator('[data-testid=avatar][data-state="ready"]').waitFor({ timeout: 60_000 });
  await page.waitForTimeout(1000);
  const gl = await page.locator("[data-testid=avatar]").getAttribute("data-gl");
  const cpu0 = browserCpuSeconds();
  const frames0 = await page.locator("[data-testid=avatar]").getAttribute("data-frames");
  const wall0 = Date.now();
  await page.waitForTimeout(5000);
  const frames1 = await page.locator("[data-testid=avatar]").getAttribute("data-frames");
  const wall = (Date.now() - wall0) / 1000;
  const cpu = (browserCpuSeconds() - cpu0) / wall;
  await ctx.close();
  await browser.close();
  console.log(
    `idle avatar on the Chat tab (${gl ?? "?"} WebGL): ${((Number(frames1) - Number(frames0)) / wall).toFixed(1)} frames/s, browser CPU ${(cpu * 100).toFixed(0)}% of one core`,
  );
  times.sort((a, b) => a - b);
  const median = times[Math.floor(times.length / 2)];
  console.log(
    `navigation -> default avatar ready (software WebGL, cold cache, ${runs} runs): median ${median} ms, min ${times[0]} ms, max ${times[times.length - 1]} ms`,
  );
} finally {
  server.kill("SIGTERM");
  fs.rmSync(data, { recursive: true, force: true });
}
