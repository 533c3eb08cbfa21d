import { defineConfig } from "@playwright/test";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";

// The suite runs against the real server binary (built by `make test`), on a fresh data folder.
const repo = path.resolve(__dirname, "..");
const port = Number(process.env.WAIFU_E2E_PORT ?? 3199);
const bin = process.env.WAIFU_BIN ?? path.join(os.homedir(), ".cache/waifu-rt3d/target/release/waifu-rt3d");
const dataDir = process.env.WAIFU_E2E_DATA ?? fs.mkdtempSync(path.join(os.tmpdir(), "waifu-e2e-"));
process.env.WAIFU_E2E_DATA = dataDir;

export default defineConfig({
  testDir: "./tests",
  timeout: 30_000,
  expect: { timeout: 10_000 },
  fullyParallel: false,
  workers: 1,
  retries: 0,
  reporter: [["list"], ["json", { outputFile: "test-results/results.json" }]],
  outputDir: "test-results/artifacts",
  use: {
    baseURL: `http://127.0.0.1:${port}`,
    trace: "retain-on-failure",
    screenshot: "only-on-failure",
    viewport: { width: 1280, height: 860 },
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
        // Other "web sites" for the security tests: every *.waifu-test name is this machine.
        "--host-resolver-rules=MAP *.waifu-test 127.0.0.1",
      ],
    },
  },
  webServer: {
    command: `"${bin}" --port ${port} --data-dir "${dataDir}"`,
    cwd: repo,
    url: `http://127.0.0.1:${port}/api/healthcheck`,
    timeout: 60_000,
    reuseExistingServer: false,
    stdout: "pipe",
    stderr: "pipe",
    env: { WAIFU_LOG: "warn" },
  },
});
