import { test as base, expect } from "@playwright/test";

/**
 * Every page of every test is watched for Content-Security-Policy violations: the viewer
 * (three.js, WebGL, blob textures), Web Audio and the split WASM pieces must all work under the
 * policy, so any blocked script, style, image, fetch or media fails the test that caused it.
 */
export const test = base.extend<{ cspViolations: string[] }>({
  cspViolations: [
    async ({ page }, use) => {
      const violations: string[] = [];
      await page.exposeFunction("__waifuCspViolation", (v: string) => violations.push(v));
      await page.addInitScript(() => {
        document.addEventListener("securitypolicyviolation", (e) => {
          const report = `${e.violatedDirective} blocked ${e.blockedURI || "inline"} (${e.sourceFile}:${e.lineNumber}) ${e.sample}`;
          (window as unknown as { __waifuCspViolation: (v: string) => void }).__waifuCspViolation(report);
        });
      });
      page.on("console", (m) => {
        if (/Content Security Policy/i.test(m.text())) violations.push(`console: ${m.text()}`);
      });
      await use(violations);
      expect(violations, "Content-Security-Policy violations on this test's pages").toEqual([]);
    },
    { auto: true },
  ],
});

export { expect };
