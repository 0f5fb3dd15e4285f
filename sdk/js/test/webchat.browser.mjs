// The demo's web chat page in headless Chromium, driven over the DevTools protocol by
// puppeteer-core: two tabs chat directly and in a room, and both survive a restart of the gateway
// process by resuming over a new WebSocket. cmd/plato's TestWebChat starts the platform and sets
// PLATO_CHAT_URL (the page), PLATO_IPCONF, PLATO_CONTROL and PLATO_CHROMIUM (the browser); it fails
// when this test is skipped.
import { test } from "node:test";
import assert from "node:assert/strict";
import puppeteer from "puppeteer-core";

const chatURL = process.env.PLATO_CHAT_URL;
const ipconf = process.env.PLATO_IPCONF;
const control = process.env.PLATO_CONTROL;
const chromium = process.env.PLATO_CHROMIUM;
const skip = !chatURL || !ipconf || !control || !chromium ? "run by cmd/plato's TestWebChat" : false;

async function ctl(method, path) {
  const r = await fetch(control + path, { method });
  const text = await r.text();
  if (!r.ok) throw new Error(`${method} ${path}: ${r.status} ${text}`);
  return JSON.parse(text);
}

const logLines = (page) => page.$$eval("#log li", (lis) => lis.map((li) => li.textContent));

// seen waits until the page's log has the line.
async function seen(page, text, timeout = 20000) {
  try {
    await page.waitForFunction((t) => [...document.querySelectorAll("#log li")].some((li) => li.textContent === t), { timeout, polling: 100 }, text);
  } catch (e) {
    throw new Error(`${await page.$eval("#did", (i) => i.value)} never showed ${JSON.stringify(text)}; its log:\n${(await logLines(page)).join("\n")}`);
  }
}

async function say(page, text) {
  await page.type("#input", text);
  await page.keyboard.press("Enter");
}

async function state(page, want, timeout = 30000) {
  try {
    await page.waitForFunction((s) => document.body.dataset.state === s, { timeout, polling: 100 }, want);
  } catch {
    throw new Error(`state ${JSON.stringify(await page.evaluate(() => document.body.dataset.state))}, want ${want}; log:\n${(await logLines(page)).join("\n")}`);
  }
}

test("two tabs chat over WebSocket, in a room, and through a gateway restart", { skip, timeout: 120000 }, async () => {
  const browser = await puppeteer.launch({
    executablePath: chromium,
    headless: true,
    // --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start.
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"],
  });
  const errors = [];
  try {
    const open = async (did) => {
      const page = await browser.newPage();
      page.on("pageerror", (e) => errors.push(`${did}: ${e.message}`));
      await page.goto(`${chatURL}?ipconf=${encodeURIComponent(ipconf)}&did=${did}`);
      await state(page, "connected");
      return page;
    };
    const alice = await open("web-alice");
    const bob = await open("web-bob");

    await say(alice, "@web-bob hello bob");
    await seen(bob, "@web-alice: hello bob");
    await say(bob, "/join lobby");
    await say(alice, "/join lobby");
    await seen(bob, "[lobby] * web-alice joined");
    await say(alice, "#lobby hello room");
    await seen(bob, "[lobby] web-alice: hello room");
    await seen(alice, "[lobby] web-alice: hello room");

    // The gateway process is killed and started again; a push for bob waits for him meanwhile.
    const note = JSON.stringify({ from: "plato-demo", text: "pushed while the gateway was down" });
    await ctl("POST", `/restart-gateway?push_to=web-bob&payload=${encodeURIComponent(note)}`);
    await state(alice, "resumed");
    await state(bob, "resumed");
    await seen(bob, "* pushed while the gateway was down");
    await say(alice, "hello again"); // the current room, lobby: membership survived the restart
    await seen(bob, "[lobby] web-alice: hello again");
    await say(bob, "@web-alice back too");
    await seen(alice, "@web-bob: back too");
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
});
