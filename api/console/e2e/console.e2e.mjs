// End-to-end test of the API Keys console in Debian's headless Chromium,
// driven by playwright-core against a running `hustack serve`.
//
// Environment:
//   HUSTACK_URL          base URL of the server, e.g. http://127.0.0.1:8080
//   HUSTACK_ADMIN_KEY    a key with admin:keys, read:usage and read:accounts
//   CONSOLE_SCREENSHOTS  directory for one screenshot per step (created)
//   CHROMIUM             browser binary (default /usr/bin/chromium)
//
// Every wait is bounded; the script exits non-zero on the first failure,
// after a screenshot of the page as it was.

import assert from "node:assert/strict";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

const base = (process.env.HUSTACK_URL || "").replace(/\/+$/, "");
const adminKey = process.env.HUSTACK_ADMIN_KEY || "";
const shots = process.env.CONSOLE_SCREENSHOTS || join(tmpdir(), "hustack-console-screenshots");
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
if (!base || !adminKey) {
  console.error("set HUSTACK_URL and HUSTACK_ADMIN_KEY");
  process.exit(2);
}
if (!/^http:\/\/(127\.\d+\.\d+\.\d+|localhost|\[::1\])(:\d+)?$/.test(base)) {
  console.error(`HUSTACK_URL must be a loopback address, got ${base}`);
  process.exit(2);
}

const flags = [
  "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
];

let page;
let shot = 0;
let passed = 0;
const problems = []; // page errors and CSP violations, checked at every step

async function screenshot(name) {
  shot++;
  const file = join(shots, `${String(shot).padStart(2, "0")}-${name}.png`);
  await page.screenshot({ path: file, fullPage: true, timeout: 10000 });
  return file;
}

async function step(name, fn) {
  const started = Date.now();
  try {
    await fn();
    assert.deepEqual(problems, [], "errors in the page");
    const file = await screenshot(name);
    passed++;
    console.log(`ok ${passed} - ${name} (${Date.now() - started} ms, ${file})`);
  } catch (err) {
    console.log(`not ok - ${name}`);
    if (page) {
      try {
        console.log(`  screenshot: ${await screenshot(name + "-FAILED")}`);
      } catch (e) {
        console.log(`  no screenshot: ${e.message}`);
      }
    }
    throw err;
  }
}

// api calls the REST API from the test itself (not through the page).
async function api(method, path, key, body) {
  const res = await fetch(base + path, {
    method,
    headers: { Authorization: "Bearer " + key, ...(body ? { "Content-Type": "application/json" } : {}) },
    body: body ? JSON.stringify(body) : undefined,
    signal: AbortSignal.timeout(10000),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

function row(name, status) {
  const sel = `#keys-body tr[data-name="${name}"]`;
  return page.locator(status ? `${sel}:has(.badge[data-status="${status}"])` : sel);
}

async function pageText() {
  return page.evaluate(() => document.documentElement.outerHTML +
    [...document.querySelectorAll("input, textarea")].map((e) => e.value).join("\n"));
}

async function createKey(name, scopes, { expiry = "", rate = "", filter = "" } = {}) {
  await page.click("#new-key");
  await page.locator("#create-dialog").waitFor({ state: "visible" });
  await page.fill("#create-name", name);
  for (const s of scopes) await page.check(`#create-scopes input[value="${s}"]`);
  await page.selectOption("#create-expiry", expiry);
  if (rate) await page.fill("#create-rate", rate);
  if (filter) await page.fill("#create-filter", filter);
}

async function readRevealedKey() {
  await page.locator("#reveal-dialog").waitFor({ state: "visible" });
  const raw = await page.inputValue("#reveal-key");
  await page.locator("#reveal-warning").waitFor({ state: "visible" });
  return raw;
}

async function closeReveal(raw) {
  await page.click("#reveal-done");
  await page.locator("#reveal-dialog").waitFor({ state: "hidden" });
  assert.ok(!(await pageText()).includes(raw), "the raw key is still in the page after its dialog closed");
}

async function main() {
  await mkdir(shots, { recursive: true });
  const userDataDir = await mkdtemp(join(tmpdir(), "hustack-chromium-"));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath,
    headless: true,
    args: ["--headless", ...flags],
    viewport: { width: 1280, height: 860 },
    timeout: 60000,
  });
  try {
    context.setDefaultTimeout(15000);
    context.setDefaultNavigationTimeout(20000);
    page = context.pages()[0] || (await context.newPage());
    page.on("pageerror", (err) => problems.push("page error: " + err.message));
    page.on("console", (msg) => {
      const text = msg.text();
      // A refused API call is logged by Chromium as a failed resource load;
      // the test provokes some on purpose. Anything else is a problem.
      if (msg.type() === "error" && !/^Failed to load resource: the server responded with a status of 4\d\d/.test(text)) {
        problems.push("console error: " + text);
      }
    });
    await run(context);
  } finally {
    await context.close();
    await rm(userDataDir, { recursive: true, force: true });
  }
}

async function run(context) {
  await step("sign-in-page", async () => {
    const res = await page.goto(base + "/console/");
    assert.equal(res.status(), 200);
    const h = res.headers();
    assert.match(h["content-security-policy"] || "", /script-src 'self'/);
    assert.doesNotMatch(h["content-security-policy"], /unsafe-inline/);
    assert.equal(h["x-frame-options"], "DENY");
    assert.equal(h["referrer-policy"], "no-referrer");
    assert.equal(h["x-content-type-options"], "nosniff");
    await page.locator("#view-signin").waitFor({ state: "visible" });
    assert.equal(await page.locator("h1").textContent(), "Settings → Integrations → API Keys");
  });

  await step("sign-in-refused", async () => {
    await page.fill("#signin-key", "hs_live_notarealkey0000000000000000");
    await page.click("#signin-form button[type=submit]");
    await page.locator("#error").waitFor({ state: "visible" });
    assert.match(await page.locator("#error").textContent(), /HTTP 401/);
    assert.equal(await page.evaluate(() => sessionStorage.length), 0);
  });

  await step("signed-in-list", async () => {
    await page.fill("#signin-key", adminKey);
    await page.click("#signin-form button[type=submit]");
    await page.locator("#view-list").waitFor({ state: "visible" });
    await page.locator("#keys-body tr .tag").first().waitFor(); // the admin key marks itself "this key"
    assert.ok(!page.url().includes(adminKey), "the admin key is in the URL");
    assert.equal(await page.evaluate(() => sessionStorage.getItem("hustack.console.key")), adminKey);
    assert.equal(await page.evaluate(() => localStorage.length), 0);
    assert.equal(await page.locator("#error").isVisible(), false);
  });

  let vendorKey = "";
  await step("create-form", async () => {
    await createKey("E2E vendor", ["read:accounts"], { expiry: "30d", rate: "60/m" });
    // Only scopes of the admin key are offered.
    const offered = await page.locator("#create-scopes input").evaluateAll((els) => els.map((e) => e.value));
    const me = await api("GET", "/api/v1/me", adminKey);
    assert.deepEqual([...offered].sort(), [...me.body.key.scopes].sort());
    // The API's own message for a bad value shows in the form, which stays open.
    await page.fill("#create-rate", "fast");
    await page.click("#create-form button[type=submit]");
    await page.locator("#create-error").waitFor({ state: "visible" });
    assert.match(await page.locator("#create-error").textContent(), /not a rate limit.*HTTP 400/);
    await page.fill("#create-rate", "60/m");
  });

  await step("key-shown-once", async () => {
    await page.click("#create-form button[type=submit]");
    vendorKey = await readRevealedKey();
    assert.match(vendorKey, /^hs_live_/);
    assert.match(await page.locator("#reveal-warning").textContent(), /only time the key is shown/);
  });

  await step("key-not-shown-again", async () => {
    await closeReveal(vendorKey);
    await row("E2E vendor", "active").waitFor();
    await page.reload();
    await row("E2E vendor", "active").waitFor();
    assert.ok(!(await pageText()).includes(vendorKey), "the raw key is in the page after a reload");
    const cells = await row("E2E vendor").locator("td").allTextContents();
    assert.ok(cells.some((c) => c.includes("read:accounts")), `scopes not listed: ${cells}`);
    assert.ok(cells.includes("60/m"), `rate limit not listed: ${cells}`);
  });

  // Traffic for the chart: 5 good requests and 2 that fail.
  for (let i = 0; i < 5; i++) {
    assert.equal((await api("GET", "/api/v1/accounts", vendorKey)).status, 200);
  }
  for (let i = 0; i < 2; i++) {
    assert.equal((await api("GET", "/api/v1/accounts/no-such-account", vendorKey)).status, 404);
  }

  await step("detail-chart", async () => {
    await row("E2E vendor").locator("th a").click();
    await page.locator("#view-detail").waitFor({ state: "visible" });
    // Usage events reach the store in batches: reload until they are in,
    // for at most 30 s.
    const deadline = Date.now() + 30000;
    let total = 0, errors = 0;
    for (let i = 0; i < 60; i++) {
      const svg = page.locator("#chart svg");
      await svg.waitFor();
      total = Number(await svg.getAttribute("data-total"));
      errors = Number(await svg.getAttribute("data-errors"));
      if ((total >= 7 && errors >= 2) || Date.now() > deadline) break;
      await page.waitForTimeout(500);
      await page.reload();
    }
    assert.ok(total >= 7 && errors >= 2, `chart shows ${total} requests and ${errors} errors, want >= 7 and >= 2`);
    const today = new Date().toISOString().slice(0, 10);
    assert.ok(Number(await page.locator(`#chart g.day[data-day="${today}"]`).getAttribute("data-count")) >= 7);
    assert.ok((await page.locator("#chart rect.bar").count()) >= 1);
    assert.ok((await page.locator("#chart rect.bar-error").count()) >= 1);
    await page.locator("#logs-body tr").first().waitFor();
    assert.ok((await page.locator("#logs-body tr").count()) >= 7);
    assert.ok((await page.locator("#logs-body .code-error").count()) >= 2);
  });

  await step("revoke-confirm", async () => {
    await page.click('a[href="#/keys"] >> nth=0');
    await row("E2E vendor", "active").waitFor();
    await row("E2E vendor").locator("button", { hasText: "Revoke" }).click();
    await page.locator("#revoke-dialog").waitFor({ state: "visible" });
    assert.match(await page.locator("#revoke-title").textContent(), /E2E vendor/);
  });

  await step("revoked", async () => {
    await page.click("#revoke-confirm");
    await page.locator("#revoke-dialog").waitFor({ state: "hidden" });
    await row("E2E vendor", "revoked").waitFor();
    assert.equal(await row("E2E vendor").locator("button", { hasText: "Revoke" }).isDisabled(), true);
    const res = await api("GET", "/api/v1/accounts", vendorKey);
    assert.equal(res.status, 410, `a revoked key answers ${res.status}`);
  });

  await step("rotate-choose", async () => {
    await createKey("E2E rotate", ["read:accounts"]);
    await page.click("#create-form button[type=submit]");
    const oldKey = await readRevealedKey();
    await closeReveal(oldKey);
    await row("E2E rotate", "active").locator("button", { hasText: "Rotate" }).click();
    await page.locator("#rotate-dialog").waitFor({ state: "visible" });
    await page.check('#rotate-form input[value="now"]');
    rotated.old = oldKey;
  });

  await step("rotated-once", async () => {
    await page.click("#rotate-form button[type=submit]");
    rotated.new = await readRevealedKey();
    assert.match(rotated.new, /^hs_live_/);
    assert.notEqual(rotated.new, rotated.old);
    await closeReveal(rotated.new);
    await row("E2E rotate", "expired").waitFor();
    await row("E2E rotate", "active").waitFor();
    assert.equal((await api("GET", "/api/v1/accounts", rotated.old)).status, 410);
    assert.equal((await api("GET", "/api/v1/accounts", rotated.new)).status, 200);
  });

  await step("narrow-screen", async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    await page.locator("#view-list").waitFor({ state: "visible" });
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 1, `the page is ${overflow}px wider than a 390px screen`);
  });

  await step("signed-out", async () => {
    await page.setViewportSize({ width: 1280, height: 860 });
    await page.click("#sign-out");
    await page.locator("#view-signin").waitFor({ state: "visible" });
    assert.equal(await page.evaluate(() => sessionStorage.length), 0);
    assert.equal(await page.locator("#keys-body tr").count(), 0);
    await page.reload();
    await page.locator("#view-signin").waitFor({ state: "visible" });
  });
  void context;
}

const rotated = { old: "", new: "" };

const started = Date.now();
try {
  await main();
  console.log(`console e2e: ${passed} steps passed in ${Date.now() - started} ms; screenshots in ${shots}`);
} catch (err) {
  console.error(`console e2e failed after ${passed} steps: ${err && err.stack ? err.stack : err}`);
  console.error(`screenshots in ${shots}`);
  process.exitCode = 1;
}
