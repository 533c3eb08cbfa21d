import type { APIRequestContext, Page, Response } from "@playwright/test";
import { test, expect } from "./fixtures";
import { spawn, ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as http from "node:http";
import * as os from "node:os";
import * as path from "node:path";
import { hydrated, snap } from "./helpers";

// Names under .waifu-test resolve to 127.0.0.1 in the test browser (playwright.config.ts), so a
// page can come from "another web site" and a name can be rebound to this machine.
const port = Number(process.env.WAIFU_E2E_PORT ?? 3199);
const target = `http://127.0.0.1:${port}`;

test.describe.configure({ timeout: 90_000 });

test("every tab is served under the nonce policy and works (viewer, WASM pieces)", async ({ page, cspViolations }) => {
  for (const tab of ["/chat", "/viewer", "/setup", "/system"]) {
    const res = await page.goto(tab);
    const csp = res!.headers()["content-security-policy"];
    const scriptSrc = csp.split(";").find((d) => d.trim().startsWith("script-src"))!;
    expect(scriptSrc).toMatch(/'nonce-[A-Za-z0-9+/=_-]{16,}'/);
    expect(scriptSrc).not.toContain("unsafe-inline");
    expect(csp).toContain("frame-ancestors 'none'");
    expect(res!.headers()["x-content-type-options"]).toBe("nosniff");
    expect(res!.headers()["referrer-policy"]).toBe("no-referrer");
    expect(res!.headers()["cross-origin-opener-policy"]).toBe("same-origin");
    await hydrated(page);
  }
  // The avatar (three.js, WebGL, textures from blob URLs) loads under the policy.
  await page.goto("/viewer");
  await expect(page.getByTestId("avatar")).toHaveAttribute("data-state", "ready", { timeout: 30_000 });
  // Each tab's own WASM piece loads when the tab bar is used.
  await page.goto("/chat");
  await hydrated(page);
  for (const name of ["Setup", "System", "Viewer"]) {
    await page.getByRole("link", { name }).click();
    await expect(page.getByTestId(`tab-${name.toLowerCase()}`)).toBeVisible();
  }
  await expect(page.getByTestId("avatar")).toHaveAttribute("data-state", "ready", { timeout: 30_000 });
  expect(cspViolations).toEqual([]);
});

/** A hostile web page on another site, trying what any page can do without asking first. */
function hostilePage(): Promise<{ server: http.Server; url: string }> {
  const html = `<!DOCTYPE html><title>cute wallpapers</title><script>
    const target = ${JSON.stringify(target)};
    const attempts = [
      fetch(target + "/api/sessions", { method: "POST", mode: "no-cors" }),
      fetch(target + "/api/chat", { method: "POST", mode: "no-cors", headers: { "content-type": "text/plain" },
        body: JSON.stringify({ text: "planted by another site" }) }),
      fetch(target + "/sfn/settings/output_mode/save", { method: "POST", mode: "no-cors",
        headers: { "content-type": "application/x-www-form-urlencoded" }, body: "mode=text" }),
      (() => { const f = new FormData(); f.append("file", new Blob(["glTF"]), "planted.glb");
        return fetch(target + "/api/avatars/upload", { method: "POST", mode: "no-cors", body: f }); })(),
      fetch(target + "/api/sessions", { mode: "cors" }).then((r) => r.text()).then((t) => { window.stolen = t; }),
    ];
    Promise.allSettled(attempts).then(() => { document.title = "done"; });
  </script>`;
  const server = http.createServer((_req, res) => {
    res.writeHead(200, { "content-type": "text/html" });
    res.end(html);
  });
  return new Promise((resolve) =>
    server.listen(0, "127.0.0.1", () => {
      const p = (server.address() as { port: number }).port;
      resolve({ server, url: `http://attacker.waifu-test:${p}/` });
    }),
  );
}

test("a page on another web site cannot drive the companion", async ({ page, request }) => {
  const before = await (await request.get("/api/config")).json();
  const sessionsBefore = (await (await request.get("/api/sessions")).json()).sessions.length;
  const { server, url } = await hostilePage();
  const answers: { url: string; status: number }[] = [];
  page.on("response", (r: Response) => {
    if (r.url().startsWith(target)) answers.push({ url: r.url(), status: r.status() });
  });
  try {
    await page.goto(url);
    await expect(page).toHaveTitle("done", { timeout: 20_000 });
  } finally {
    server.close();
  }
  // Every attempt reached the server and was refused there.
  expect(answers.length).toBeGreaterThanOrEqual(4);
  for (const a of answers) expect(a.status, a.url).toBe(403);
  expect(await page.evaluate(() => (window as unknown as { stolen?: string }).stolen)).toBeUndefined();
  // Nothing changed.
  const after = await (await request.get("/api/config")).json();
  expect(after.output_mode).toBe(before.output_mode);
  expect((await (await request.get("/api/sessions")).json()).sessions.length).toBe(sessionsBefore);
  const search = await (await request.get("/api/search?q=planted")).json();
  expect(search.results ?? search.hits ?? []).toHaveLength(0);
  const avatars = await (await request.get("/api/avatars")).json();
  expect(JSON.stringify(avatars)).not.toContain("planted.glb");
});

test("a rebound name reaches nothing (DNS rebinding)", async ({ page }) => {
  // A browser that reaches this server under another site's name gets no page, no API answer
  // and no file: only the reason, naming the flag that would allow that name.
  const res = await page.goto(`http://rebind.waifu-test:${port}/chat`);
  expect(res!.status()).toBe(403);
  await expect(page.locator("body")).toContainText("--allowed-host rebind.waifu-test");
  for (const path of ["/api/config", "/api/sessions", "/files/avatars/default.vrm"]) {
    const r = await page.goto(`http://rebind.waifu-test:${port}${path}`);
    expect(r!.status(), path).toBe(403);
    const body = await r!.text();
    expect(body).toContain("host_not_allowed");
    expect(body).not.toContain("\"llm\"");
  }
});

// ------------------------------------------------------------------ the token

const tokenPort = port - 1;
const token = "e2e-token-" + Math.random().toString(36).slice(2) + "-long-enough";

async function startWithToken(): Promise<{ proc: ChildProcess; dir: string }> {
  const repo = path.resolve(__dirname, "..", "..");
  const bin = process.env.WAIFU_BIN ?? path.join(os.homedir(), ".cache/waifu-rt3d/target/release/waifu-rt3d");
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "waifu-e2e-token-"));
  const proc = spawn(bin, ["--port", String(tokenPort), "--data-dir", dir], {
    cwd: repo,
    env: { ...process.env, WAIFU_LOG: "warn", WAIFU_AUTH_TOKEN: token },
    stdio: "ignore",
  });
  for (let i = 0; i < 200; i++) {
    const ok = await new Promise<boolean>((resolve) => {
      const req = http.get(`http://127.0.0.1:${tokenPort}/api/healthcheck`, { headers: { authorization: `Bearer ${token}` } }, (r) => {
        r.resume();
        resolve(r.statusCode === 200);
      });
      req.on("error", () => resolve(false));
    });
    if (ok) return { proc, dir };
    await new Promise((r) => setTimeout(r, 250));
  }
  proc.kill();
  throw new Error("the server with a token did not start");
}

test.describe("with an access token", () => {
  let server: { proc: ChildProcess; dir: string };
  const base = `http://127.0.0.1:${tokenPort}`;
  test.beforeAll(async () => {
    server = await startWithToken();
  });
  test.afterAll(async () => {
    server.proc.kill("SIGTERM");
    fs.rmSync(server.dir, { recursive: true, force: true });
  });

  test("the API needs the token", async ({ playwright }) => {
    const anon: APIRequestContext = await playwright.request.newContext({ baseURL: base });
    const r = await anon.get("/api/config");
    expect(r.status()).toBe(401);
    expect((await r.json()).code).toBe("unauthorized");
    expect(r.headers()["www-authenticate"]).toContain("Bearer");
    expect((await anon.get("/files/avatars/default.vrm")).status()).toBe(401);
    const authed = await anon.get("/api/config", { headers: { authorization: `Bearer ${token}` } });
    expect(authed.status()).toBe(200);
    await anon.dispose();
  });

  test("pages show a sign-in form; the token signs in with an HttpOnly cookie", async ({ page, context }) => {
    const res = await page.goto(`${base}/setup`);
    expect(res!.status()).toBe(401);
    const form = page.getByTestId("sign-in");
    await expect(form).toBeVisible();
    await expect(page.getByTestId("tab-setup")).toHaveCount(0);
    await snap(page, "sign-in");

    await page.getByLabel("Access token").fill("not-the-token-at-all");
    await page.getByRole("button", { name: "Sign in" }).click();
    await expect(page.getByRole("alert")).toContainText("not right");

    await page.getByLabel("Access token").fill(token);
    await page.getByRole("button", { name: "Sign in" }).click();
    await expect(page).toHaveURL(`${base}/setup`);
    await hydrated(page);
    await expect(page.getByTestId("tab-setup")).toBeVisible();
    const cookies = await context.cookies(base);
    const session = cookies.find((c) => c.name === `waifu_session_${tokenPort}`)!;
    expect(session.httpOnly).toBe(true);
    expect(session.sameSite).toBe("Strict");
    expect(session.value).not.toContain(token);
    // The app works behind the cookie: server functions, the API and data files.
    await page.getByRole("link", { name: "Viewer" }).click();
    await expect(page.getByTestId("avatar")).toHaveAttribute("data-state", "ready", { timeout: 30_000 });
    const status = await page.evaluate(async () => (await fetch("/api/sessions")).status);
    expect(status).toBe(200);
  });

  test("the printed sign-in link signs in and leaves no token in the address bar", async ({ page }) => {
    await page.goto(`${base}/?token=${token}`);
    await expect(page).toHaveURL(`${base}/`);
    await hydrated(page);
    await expect(page.getByTestId("tab-chat")).toBeVisible();
  });
});

export {};
