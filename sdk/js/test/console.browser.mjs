// Plato's ops console (core/console/static) in headless Chromium, driven over the DevTools
// protocol by puppeteer-core. cmd/plato's TestOpsConsole starts a fleet of processes (two
// gateways, a state server with the auth plugin, ipconf), sends uplinks, and sets
// PLATO_CONSOLE_URL (a gateway's admin address), PLATO_OPS_KEY, PLATO_CONSOLE_GATEWAYS and
// PLATO_CHROMIUM; it fails when this test is skipped. Assertions are on the DOM, not on pixels.
import { test } from "node:test";
import assert from "node:assert/strict";
import puppeteer from "puppeteer-core";

const url = process.env.PLATO_CONSOLE_URL;
const key = process.env.PLATO_OPS_KEY;
const gateways = (process.env.PLATO_CONSOLE_GATEWAYS || "").split(",").filter(Boolean);
const chromium = process.env.PLATO_CHROMIUM;
const skip = !url || !key || !gateways.length || !chromium ? "run by cmd/plato's TestOpsConsole" : false;

async function waitFor(page, what, fn, arg, timeout = 30000) {
  try {
    await page.waitForFunction(fn, { timeout, polling: 100 }, arg);
  } catch {
    const status = await page.$eval("#status", (s) => s.textContent);
    throw new Error(`never saw ${what}; status ${JSON.stringify(status)}; page:\n${await page.$eval("body", (b) => b.innerText)}`);
  }
}

async function login(page, k) {
  await waitFor(page, "the key form", () => !document.getElementById("login").hidden);
  await page.type("#key", k);
  await page.click("#login button[type=submit]");
}

test("the console lists the fleet, a stage's latency and the faults; a wrong key is refused", { skip, timeout: 120000 }, async () => {
  const browser = await puppeteer.launch({
    executablePath: chromium,
    headless: true,
    // --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start.
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"],
  });
  const errors = [];
  try {
    const page = await browser.newPage();
    page.on("pageerror", (e) => errors.push(e.message));
    page.on("requestfailed", (r) => errors.push(`request failed: ${r.url()}`));
    const requests = [];
    page.on("request", (r) => requests.push(r.url()));
    await page.goto(url);

    // A wrong key: refused, the form comes back, no data shown.
    await login(page, "not-the-key");
    await waitFor(page, "the refusal", () => document.getElementById("status").textContent.includes("wrong ops key") && !document.getElementById("login").hidden);
    assert.equal(await page.$eval("#views", (v) => v.hidden), true, "the views stay hidden after a refusal");
    assert.equal(await page.evaluate(() => sessionStorage.getItem("plato-ops-key")), null, "a refused key is not kept");

    // The right key: the fleet, with both gateways.
    await login(page, key);
    for (const id of gateways) {
      await waitFor(page, `gateway ${id} in the fleet`, (id) => {
        const tr = document.querySelector(`#fleet tr[data-node-id="${id}"]`);
        return tr && tr.dataset.role === "gateway" && tr.querySelector(".version").textContent !== "";
      }, id);
    }
    await waitFor(page, "the state server and ipconf in the fleet", () =>
      document.querySelector('#fleet tr[data-role="state"]') && document.querySelector('#fleet tr[data-role="ipconf"]'));

    // A stage's latency, after the uplinks the Go test sent.
    await waitFor(page, "the auth stage's latency", () => {
      const tr = document.querySelector('#pipelines tr[data-stage="auth"][data-pipeline="default"]');
      return tr && /^\d+\.\d+ ms$/.test(tr.querySelector("td.p50").textContent) && /^\d+\.\d+ ms$/.test(tr.querySelector("td.p99").textContent);
    });
    const stage = await page.$eval('#pipelines tr[data-stage="auth"]', (tr) => ({
      process: tr.querySelector("td.process").textContent,
      restarts: Number(tr.querySelector("td.restarts").textContent),
      calls: Number(tr.querySelector("td.calls").textContent),
    }));
    assert.match(stage.process, /^running \(pid \d+\)$/);
    assert.ok(stage.calls >= 40, `calls ${stage.calls}`);
    assert.ok(stage.restarts >= 1, `restarts ${stage.restarts}: the Go test killed the plugin once`);

    // The apps and the faults.
    await waitFor(page, "the demo app", () => {
      const tr = document.querySelector('#apps tr[data-app="demo"]');
      return tr && tr.querySelector("td.connections").textContent === "4";
    });
    await waitFor(page, "the plugin crash among the faults", () =>
      [...document.querySelectorAll('#faults tr[data-kind="plugin_crash"]')].some((tr) => tr.textContent.includes("auth")));

    // The key lives in the tab: a reload shows the views without asking again.
    await page.reload();
    await waitFor(page, "the fleet after a reload", (id) => !!document.querySelector(`#fleet tr[data-node-id="${id}"]`), gateways[0]);
    assert.equal(await page.$eval("#login", (f) => f.hidden), true);

    // Everything came from the admin address itself.
    const origin = new URL(url).origin;
    assert.deepEqual(requests.filter((r) => !r.startsWith(origin)), [], "requests to elsewhere");
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
});
