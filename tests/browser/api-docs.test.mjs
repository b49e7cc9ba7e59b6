// The API reference in the browser: opens `${E2E_BASE_URL}/api/docs` (a running `spin up`) in
// headless Chromium, waits for Swagger UI to render the operations of /api/openapi.json, checks
// that known operations are there, that one expands, that nothing broke the page's strict
// Content-Security-Policy (no violation event, no console error, no failed request) and saves a
// screenshot as a CI artifact. Exits non-zero on any failure. Run by scripts/browser-test.
//
// Environment: E2E_BASE_URL (required), CHROMIUM (default /usr/bin/chromium),
// BROWSER_ARTIFACT (default target/ci-artifacts/api-docs.png under the repository).

import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const base = (process.env.E2E_BASE_URL || "").replace(/\/+$/, "");
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
const artifact = resolve(
  process.env.BROWSER_ARTIFACT || join(root, "target/ci-artifacts/api-docs.png"),
);
// Operations the document has (infra/openapi.json), as Swagger UI shows them: method and path.
const EXPECTED = [
  ["GET", "/health"],
  ["POST", "/api/v1/auth/login"],
  ["GET", "/api/v1/sessions"],
  ["POST", "/api/v1/sessions"],
  ["GET", "/api/v1/templates"],
  ["GET", "/api/v1/admin/audit"],
];
const TIMEOUT_MS = 30_000;

const failures = [];
const fail = (message) => {
  failures.push(message);
  console.error(`FAIL ${message}`);
};
const pass = (message) => console.log(`ok   ${message}`);

if (!base) {
  console.error("E2E_BASE_URL is not set (the URL of a running `spin up`)");
  process.exit(2);
}

const profile = mkdtempSync(join(tmpdir(), "streamspace-chromium-"));
let context;
try {
  context = await chromium.launchPersistentContext(profile, {
    executablePath,
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
    viewport: { width: 1280, height: 1600 },
    timeout: TIMEOUT_MS,
  });
  const page = context.pages()[0] ?? (await context.newPage());

  // CSP violations, as the page itself sees them (the listener is installed before any of the
  // page's scripts run; DevTools-injected, so the CSP does not apply to it).
  await page.addInitScript(() => {
    window.__cspViolations = [];
    document.addEventListener("securitypolicyviolation", (e) => {
      window.__cspViolations.push(
        `${e.effectiveDirective} blocked ${e.blockedURI || "(inline)"} at ${e.sourceFile}:${e.lineNumber}`,
      );
    });
  });
  const consoleErrors = [];
  page.on("console", (msg) => {
    if (msg.type() === "error") consoleErrors.push(`${msg.text()} (${msg.location()?.url ?? "?"})`);
  });
  page.on("pageerror", (err) => consoleErrors.push(`uncaught: ${err.message}`));
  const badRequests = [];
  page.on("requestfailed", (req) =>
    badRequests.push(`${req.method()} ${req.url()}: ${req.failure()?.errorText}`),
  );
  page.on("response", (res) => {
    if (res.status() >= 400) badRequests.push(`${res.request().method()} ${res.url()}: ${res.status()}`);
  });
  const origin = new URL(base).origin;
  page.on("request", (req) => {
    const url = new URL(req.url());
    if (url.protocol !== "data:" && url.origin !== origin) {
      badRequests.push(`left the origin: ${req.method()} ${req.url()}`);
    }
  });

  const response = await page.goto(`${base}/api/docs`, { timeout: TIMEOUT_MS });
  if (response?.status() === 200) pass("GET /api/docs is 200");
  else fail(`GET /api/docs answered ${response?.status()}`);
  const csp = (await response?.allHeaders())?.["content-security-policy"] ?? "";
  const scriptSrc = csp.split(";").map((d) => d.trim()).find((d) => d.startsWith("script-src")) ?? "";
  if (csp.includes("default-src 'none'") && scriptSrc && !scriptSrc.includes("unsafe")) {
    pass(`strict CSP: ${csp}`);
  } else {
    fail(`the page's CSP is not strict: ${JSON.stringify(csp)}`);
  }

  // Swagger UI renders one `.opblock` per operation once the document is loaded and parsed.
  try {
    await page.waitForSelector(".swagger-ui .opblock .opblock-summary-path", { timeout: TIMEOUT_MS });
  } catch (err) {
    fail(`no operation rendered within ${TIMEOUT_MS} ms (${err.message.split("\n")[0]})`);
  }
  const rendered = await page.$$eval(".swagger-ui .opblock", (blocks) =>
    blocks.map((b) => ({
      method: (b.querySelector(".opblock-summary-method")?.textContent ?? "").trim().toUpperCase(),
      path: b.querySelector(".opblock-summary-path")?.getAttribute("data-path") ?? "",
    })),
  );
  if (rendered.length >= 50) pass(`${rendered.length} operations rendered`);
  else fail(`only ${rendered.length} operations rendered`);
  for (const [method, path] of EXPECTED) {
    if (rendered.some((op) => op.method === method && op.path === path)) pass(`${method} ${path} rendered`);
    else fail(`${method} ${path} is not rendered`);
  }
  const title = (await page.textContent(".swagger-ui .info .title").catch(() => null)) ?? "";
  if (title.trim()) pass(`title: ${title.trim().replace(/\s+/g, " ")}`);
  else fail("the document's title is not rendered");
  const loadErrors = await page.$$eval(".swagger-ui .errors-wrapper", (els) => els.map((e) => e.textContent));
  if (loadErrors.length === 0) pass("no Swagger UI load errors");
  else fail(`Swagger UI reports errors: ${loadErrors.join(" | ")}`);

  // Interactive: an operation expands to its parameters and responses.
  const login = page.locator('.opblock-post:has(.opblock-summary-path[data-path="/api/v1/auth/login"])').first();
  try {
    await login.locator(".opblock-summary").click({ timeout: TIMEOUT_MS });
    await login.locator(".opblock-body .responses-wrapper").waitFor({ timeout: TIMEOUT_MS });
    pass("POST /api/v1/auth/login expands to its responses");
  } catch (err) {
    fail(`POST /api/v1/auth/login did not expand (${err.message.split("\n")[0]})`);
  }

  await page.waitForTimeout(300);
  const violations = await page.evaluate(() => window.__cspViolations ?? []);
  if (violations.length === 0) pass("no CSP violations");
  else fail(`CSP violations: ${violations.join(" | ")}`);
  if (consoleErrors.length === 0) pass("no console errors");
  else fail(`console errors: ${consoleErrors.join(" | ")}`);
  if (badRequests.length === 0) pass("every request stayed on the origin and succeeded");
  else fail(`requests: ${badRequests.join(" | ")}`);

  await page.evaluate(() => window.scrollTo(0, 0));
  mkdirSync(dirname(artifact), { recursive: true });
  await page.screenshot({ path: artifact });
  pass(`screenshot: ${artifact}`);
} catch (err) {
  fail(`browser run: ${err.stack ?? err}`);
} finally {
  await context?.close().catch(() => {});
  rmSync(profile, { recursive: true, force: true });
}

console.log(failures.length === 0 ? "browser test: passed" : `browser test: ${failures.length} failure(s)`);
process.exit(failures.length === 0 ? 0 : 1);
