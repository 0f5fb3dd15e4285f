// The client against a real platform, over TCP. cmd/plato's TestJSSDK starts the platform and sets
// PLATO_IPCONF (ipconf's URL) and PLATO_CONTROL (the Go test's endpoint for credentials, pushes,
// the business's events and a gateway restart); without them these tests are skipped, and
// TestJSSDK fails on any skipped test.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  PlatoClient, PlatoError, IPConfError, Code, Signal, fetchEndpoints, dial, encodeFrame, encodeLogin, encodeCodeMessage, decodeDownlink,
  decodeLoginAck,
} from "../dist/index.js";

const ipconfURL = process.env.PLATO_IPCONF;
const control = process.env.PLATO_CONTROL;
const skip = !ipconfURL || !control ? "run by cmd/plato's TestJSSDK (PLATO_IPCONF, PLATO_CONTROL)" : false;
// PLATO_TRANSPORT=ws runs the same tests over WebSocket: Node's own WebSocket where it has one
// (22+), else the ws package's, given as the WebSocket option as an app on older Node would.
const transport = process.env.PLATO_TRANSPORT === "ws" ? "ws" : "tcp";
const WebSocket = transport === "ws" ? globalThis.WebSocket ?? (await import("ws")).WebSocket : undefined;
const opts = transport === "ws" ? { transport, WebSocket } : {};
const P = transport === "ws" ? "ws-" : ""; // dids of their own, so the business's event counts stay per run
const addrRE = transport === "ws" ? /^ws:\/\/127\.0\.0\.1:\d+\/plato$/ : /^127\.0\.0\.1:\d+$/;

async function ctl(method, path) {
  const r = await fetch(control + path, { method });
  const text = await r.text();
  if (!r.ok) throw new Error(`${method} ${path}: ${r.status} ${text}`);
  return JSON.parse(text);
}
const credential = (did) => async () => (await ctl("GET", `/credential?did=${encodeURIComponent(did)}`)).credential;

// within polls cond until it holds, or fails after ms.
async function within(ms, what, cond) {
  const end = Date.now() + ms;
  for (;;) {
    if (await cond()) return;
    if (Date.now() > end) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

// inbox collects a client's downlinks and lets a test wait for one.
function inbox(c) {
  const got = [];
  c.on("message", (m) => got.push(m));
  return {
    got,
    async next(ms, pred = () => true) {
      let m;
      await within(ms, "a downlink", () => (m = got.find(pred)) !== undefined);
      return m;
    },
  };
}

async function connect(did, extra = {}) {
  // ipconf lists a gateway after its first load report: retry 1305 for a while.
  let c;
  await within(20000, `${did} to connect`, async () => {
    try {
      c = await PlatoClient.connect({ ipconfURL, appId: "demo", did, credential: credential(did), reconnectMinMs: 100, reconnectMaxMs: 1000, ...opts, ...extra });
      return true;
    } catch (e) {
      if (e instanceof IPConfError && e.code === Code.NoGateway) return false;
      throw e;
    }
  });
  return c;
}

test("ipconf: endpoints and a token with the credential; typed refusals without one", { skip }, async () => {
  const cred = await credential(P + "js-ipconf")();
  await within(20000, "ipconf to list a gateway", async () => {
    try {
      const l = await fetchEndpoints({ ipconfURL, appId: "demo", did: P + "js-ipconf", credential: cred, transport });
      assert.equal(l.uid, P + "js-ipconf");
      assert.ok(l.endpoints.length >= 1 && addrRE.test(l.endpoints[0].addr), JSON.stringify(l));
      assert.ok(l.token.length > 0 && l.tokenExpiresAt > Date.now() / 1000);
      return true;
    } catch (e) {
      if (e instanceof IPConfError && e.code === Code.NoGateway) return false;
      throw e;
    }
  });
  await assert.rejects(fetchEndpoints({ ipconfURL, appId: "demo", did: P + "js-ipconf", credential: "not-a-jwt" }),
    (e) => e instanceof IPConfError && e.status === 401 && e.code === Code.TokenInvalid);
  await assert.rejects(fetchEndpoints({ ipconfURL, appId: "demo", did: "someone-else", credential: cred }),
    (e) => e instanceof IPConfError && e.status === 401 && e.code === Code.TokenMismatch);
  await assert.rejects(fetchEndpoints({ ipconfURL, appId: "nope", did: P + "js-ipconf", credential: cred }),
    (e) => e instanceof IPConfError && e.status === 403 && e.code === Code.UnknownApp);
  // connect gives up at once on a credential retrying cannot fix.
  await assert.rejects(PlatoClient.connect({ ipconfURL, appId: "demo", did: P + "js-ipconf", credential: "not-a-jwt", ...opts }),
    (e) => e instanceof IPConfError && e.code === Code.TokenInvalid);
});

test("login, uplink ACKs and a business refusal with its code", { skip }, async () => {
  const states = [];
  const c = await connect(P + "js-alice", { onState: (s) => states.push(s.kind) });
  try {
    assert.ok(c.connId > 0n, `conn id ${c.connId}`);
    assert.match(c.endpoint, addrRE);
    assert.deepEqual(states, ["connected"]);
    await c.send("hello");
    await c.send(new TextEncoder().encode("bytes too"));
    // Several in flight at once, each answered by its own ACK.
    await Promise.all(Array.from({ length: 20 }, (_, i) => c.send(`burst ${i}`)));
    await assert.rejects(c.send("refuse:this"), (e) => e instanceof PlatoError && e.code === 2042 && e.detail === "refused by the test business");
    await c.send("still fine after a refusal");
  } finally {
    await c.close();
  }
  assert.equal(await c.done, undefined);
  await assert.rejects(c.send("after close"), /closed/);
  await within(10000, "DISCONNECTED at the business", async () => (await ctl("GET", `/events?kind=DISCONNECTED&did=${P}js-alice`)).count === 1);
});

test("downlinks arrive and are acknowledged by the SDK", { skip }, async () => {
  const c = await connect(P + "js-bob");
  const box = inbox(c);
  try {
    // wait_ack: the push returns ACKED only once the device acknowledged it.
    const r = await ctl("POST", `/push?did=${P}js-bob&wait_ack=1`);
    assert.equal(r.status, "ACKED", JSON.stringify(r));
    const m = await box.next(10000);
    assert.equal(BigInt(r.msg_id), m.msgId);
    assert.equal(m.retransmit, false);
    assert.ok(m.seq >= 1n);
    for (let i = 0; i < 5; i++) {
      const r2 = await ctl("POST", `/push?did=${P}js-bob&wait_ack=1`);
      assert.equal(r2.status, "ACKED");
    }
    await within(10000, "6 downlinks", () => box.got.length === 6);
    assert.deepEqual(box.got.map((m) => m.seq), [1n, 2n, 3n, 4n, 5n, 6n]);
  } finally {
    await c.close();
  }
});

// The check above can fail: a device that reads a downlink and does not acknowledge it leaves the
// push at TIMEOUT. This one speaks the protocol by hand with the codec.
test("a device that does not acknowledge leaves the push unacknowledged", { skip }, async () => {
  const l = await fetchEndpoints({ ipconfURL, appId: "demo", did: P + "js-mute", credential: await credential(P + "js-mute")(), transport });
  const link = await dial(l.endpoints[0].addr, { timeoutMs: 3000, maxBody: 65536, WebSocket });
  const frames = [];
  link.onFrame = (f) => frames.push(f);
  link.write(encodeFrame(Signal.Login, 1n, encodeLogin({ appId: "demo", did: P + "js-mute", uid: P + "js-mute", token: l.token, platform: "test" })));
  await within(10000, "LoginAck", () => frames.some((f) => f.signal === Signal.LoginAck));
  assert.equal(decodeLoginAck(frames.find((f) => f.signal === Signal.LoginAck).body).code, 0);
  const push = ctl("POST", `/push?did=${P}js-mute&wait_ack=1`);
  await within(10000, "the downlink", () => frames.some((f) => f.signal === Signal.Downlink));
  assert.ok(decodeDownlink(frames.find((f) => f.signal === Signal.Downlink).body).msgId > 0n);
  assert.equal((await push).status, "TIMEOUT");
  link.write(encodeFrame(Signal.Close, 0n, encodeCodeMessage({ code: Code.ClientClose, message: "" })));
  link.close();
});

test("the gateway process restarts: the client resumes, gets what was pushed meanwhile, and carries on", { skip }, async () => {
  const states = [];
  const c = await connect(P + "js-carol", { onState: (s) => states.push(s) });
  const box = inbox(c);
  try {
    const first = c.connId;
    await c.send("before");
    const { msg_id } = await ctl("POST", `/restart-gateway?push_to=${P}js-carol&payload=while%20away`);
    await within(30000, "resumed", () => states.some((s) => s.kind === "resumed"));
    const kinds = states.map((s) => s.kind);
    assert.equal(kinds[0], "connected");
    assert.ok(kinds.includes("disconnected"), kinds.join());
    assert.ok(!kinds.slice(1).includes("connected"), `logged in again instead of resuming: ${kinds.join()}`);
    const m = await box.next(20000, (x) => x.msgId === BigInt(msg_id));
    assert.equal(m.text(), "while away");
    assert.notEqual(c.connId, first, "a resumed connection has a new conn id");
    await c.send("after");
    // The uplink seq went on from where it was: the server took "after" (not a 1008 duplicate).
    await within(10000, "RESUMED at the business", async () => (await ctl("GET", `/events?kind=RESUMED&did=${P}js-carol`)).count === 1);
    assert.equal((await ctl("GET", `/events?kind=CONNECTED&did=${P}js-carol`)).count, 1);
    assert.equal((await ctl("GET", `/events?kind=DISCONNECTED&did=${P}js-carol`)).count, 0);
  } finally {
    await c.close();
  }
});

test("a second login with the same did replaces the first, which stops for good with 1203", { skip }, async () => {
  const a = await connect(P + "js-dave");
  const b = await connect(P + "js-dave");
  try {
    const why = await a.done;
    assert.ok(why instanceof PlatoError && why.code === Code.Replaced, String(why));
    await b.send("the new one works");
  } finally {
    await b.close();
  }
});
