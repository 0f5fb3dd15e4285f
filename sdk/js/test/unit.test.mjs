// The client's protocol logic against scripted gateways on loopback (node:net and the SDK's own
// codec): heartbeats, a silent server, Resume and what it resends, ResumeAck 1208, Redirect,
// duplicate and broadcast downlinks, final close codes, refusals that move to the next endpoint.
// The real platform is cmd/plato's TestJSSDK; these reach the branches it cannot provoke at will.
import { test } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import {
  PlatoClient, PlatoError, OutcomeUnknownError, Code, Signal, FrameReader, FLAG_BROADCAST, FLAG_RETRANSMIT, backoff,
  encodeFrame, encodeLoginAck, encodeCodeMessage, encodeDownlink, encodeRedirect, decodeLogin, decodeResume,
} from "../dist/index.js";

// gateway listens on loopback and runs script(conn) for each connection; conn.frames collects
// what the client sent, conn.next(signal) waits for the next frame of that signal.
async function gateway(script) {
  const conns = [];
  const server = net.createServer((sock) => {
    const reader = new FrameReader();
    const waiting = [];
    const conn = {
      sock, frames: [],
      send: (sig, seq, body, flags = 0) => sock.write(encodeFrame(sig, seq, body, flags)),
      loginAck: (seq, connId, hb = 30000, code = 0) => conn.send(Signal.LoginAck, seq, encodeLoginAck({ code, connId, heartbeatMs: hb, message: "" })),
      resumeAck: (seq, connId, code = 0, hb = 30000) => conn.send(Signal.ResumeAck, seq, encodeLoginAck({ code, connId, heartbeatMs: hb, message: "" })),
      next: (sig, ms = 5000) => new Promise((resolve, reject) => {
        const i = conn.frames.findIndex((f) => f.signal === sig && !f.taken);
        if (i >= 0) {
          conn.frames[i].taken = true;
          return resolve(conn.frames[i]);
        }
        const t = setTimeout(() => reject(new Error(`no frame 0x${sig.toString(16)} within ${ms} ms`)), ms);
        waiting.push({ sig, resolve: (f) => { clearTimeout(t); resolve(f); } });
      }),
      closed: new Promise((r) => sock.on("close", r)),
    };
    sock.on("data", (b) => {
      for (const f of reader.push(new Uint8Array(b))) {
        f.at = Date.now();
        conn.frames.push(f);
        const w = waiting.findIndex((x) => x.sig === f.signal);
        if (w >= 0) {
          f.taken = true;
          waiting.splice(w, 1)[0].resolve(f);
        }
      }
    });
    sock.on("error", () => {});
    conns.push(conn);
    script(conn, conns.length).catch((e) => { conn.error = e; sock.destroy(); });
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  // close stops the gateway, and fails the test with the first assertion a script failed.
  const close = () => {
    for (const c of conns) c.sock.destroy();
    server.close();
    const failed = conns.find((c) => c.error);
    if (failed) throw failed.error;
  };
  return { addr: `127.0.0.1:${server.address().port}`, conns, close };
}

const base = { appId: "demo", did: "d1", uid: "u1", token: "tok", reconnectMinMs: 10, reconnectMaxMs: 50, ackTimeoutMs: 5000 };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

test("backoff is full jitter under min × 2^n, capped", () => {
  assert.equal(backoff(0, 100, 1000, () => 0.999999), 100);
  assert.equal(backoff(3, 100, 1000, () => 0.999999), 800);
  assert.equal(backoff(10, 100, 1000, () => 0.999999), 1000);
  assert.equal(backoff(200, 100, 1000, () => 0.999999), 1000);
  assert.equal(backoff(5, 100, 1000, () => 0), 0);
});

test("heartbeats when idle, not before heartbeat_ms; a silent server is left and the connection resumed", async () => {
  let silentAt = 0;
  const gw = await gateway(async (c, n) => {
    const login = await c.next(n === 1 ? Signal.Login : Signal.Resume);
    if (n === 1) {
      c.loginAck(login.seq, 7n, 200);
      c.send(Signal.Downlink, 1n, encodeDownlink({ msgId: 100n, payload: new Uint8Array([1]) }));
      c.send(Signal.Downlink, 2n, encodeDownlink({ msgId: 101n, payload: new Uint8Array([2]) }));
      for (let i = 0; i < 3; i++) c.send(Signal.HeartbeatAck, (await c.next(Signal.Heartbeat)).seq);
      silentAt = Date.now(); // from now on nothing is answered
      return;
    }
    const r = decodeResume(login.body);
    assert.equal(r.prevConnId, 7n);
    assert.equal(r.lastDownlink, 2n);
    assert.equal(r.token, "tok");
    c.resumeAck(login.seq, 8n);
  });
  const states = [];
  const c = await PlatoClient.connect({ ...base, endpoints: [gw.addr], onState: (s) => states.push(s) });
  try {
    await new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`not resumed: ${states.map((s) => s.kind)}`)), 10000);
      c.on("state", (s) => s.kind === "resumed" && (clearTimeout(t), resolve()));
    });
    const first = gw.conns[0];
    const beats = first.frames.filter((f) => f.signal === Signal.Heartbeat);
    assert.ok(beats.length >= 3, `${beats.length} heartbeats`);
    // Each heartbeat waited at least heartbeat_ms after the frame sent before it (the DownlinkAcks,
    // then each heartbeat): the client never heartbeats early. (10 ms: timer granularity.)
    assert.equal(first.frames.filter((f) => f.signal === Signal.DownlinkAck).length, 2);
    for (let i = 1; i < first.frames.length; i++) {
      if (first.frames[i].signal === Signal.Heartbeat) assert.ok(first.frames[i].at - first.frames[i - 1].at >= 190, `heartbeat ${i} after ${first.frames[i].at - first.frames[i - 1].at} ms`);
    }
    const gone = states.find((s) => s.kind === "disconnected");
    assert.match(gone.error.message, /nothing heard for 600 ms/);
    assert.ok(Date.now() - silentAt >= 600 - 50, "gave up before 3 × heartbeat_ms of silence");
    assert.equal(c.connId, 8n);
  } finally {
    await c.close();
    gw.close();
  }
});

test("after a Resume, unanswered uplinks go again with their seq; 1008 then means the server had it", async () => {
  let release;
  const gw = await gateway(async (c, n) => {
    if (n === 1) {
      c.loginAck((await c.next(Signal.Login)).seq, 1n);
      await c.next(Signal.Uplink);
      await c.next(Signal.Uplink);
      c.sock.destroy(); // both unanswered, and the socket breaks
      return;
    }
    const r = await c.next(Signal.Resume);
    assert.equal(decodeResume(r.body).prevConnId, 1n);
    c.resumeAck(r.seq, 2n);
    const a = await c.next(Signal.Uplink);
    const b = await c.next(Signal.Uplink);
    assert.deepEqual([a.seq, b.seq], [1n, 2n]);
    c.send(Signal.UplinkAck, 1n, encodeCodeMessage({ code: Code.Duplicate, message: "" }));
    c.send(Signal.UplinkAck, 2n, encodeCodeMessage({ code: 0, message: "" }));
    const n3 = await c.next(Signal.Uplink);
    assert.equal(n3.seq, 3n, "the seq goes on after a Resume");
    c.send(Signal.UplinkAck, 3n, encodeCodeMessage({ code: 2001, message: "no" }));
    release?.();
  });
  const c = await PlatoClient.connect({ ...base, endpoints: [gw.addr] });
  try {
    await Promise.all([c.send("a"), c.send("b")]);
    await assert.rejects(c.send("c"), (e) => e instanceof PlatoError && e.code === 2001 && e.detail === "no");
  } finally {
    await c.close();
    gw.close();
  }
});

test("ResumeAck 1208: Login on the same socket; unanswered uplinks have an unknown outcome", async () => {
  const gw = await gateway(async (c, n) => {
    if (n === 1) {
      c.loginAck((await c.next(Signal.Login)).seq, 1n);
      await c.next(Signal.Uplink);
      c.sock.destroy();
      return;
    }
    const r = await c.next(Signal.Resume);
    c.resumeAck(r.seq, 0n, Code.ResumeRejected);
    const l = await c.next(Signal.Login);
    assert.equal(decodeLogin(l.body).did, "d1");
    c.loginAck(l.seq, 3n);
    const u = await c.next(Signal.Uplink);
    assert.equal(u.seq, 1n, "a new connection's uplink seq starts again");
    c.send(Signal.UplinkAck, u.seq, encodeCodeMessage({ code: 0, message: "" }));
  });
  const states = [];
  const c = await PlatoClient.connect({ ...base, endpoints: [gw.addr], onState: (s) => states.push(s.kind) });
  try {
    await assert.rejects(c.send("lost"), (e) => e instanceof OutcomeUnknownError && e.seq === 1n);
    await c.send("new");
    assert.deepEqual(states.filter((s) => s !== "connecting"), ["connected", "disconnected", "connected"]);
    assert.equal(c.connId, 3n);
  } finally {
    await c.close();
    gw.close();
  }
});

test("Redirect: resume at the listed gateway with the Redirect's token", async () => {
  const b = await gateway(async (c) => {
    const r = decodeResume((await c.next(Signal.Resume)).body);
    assert.deepEqual([r.prevConnId, r.token], [5n, "fresh"]);
    c.resumeAck(1n, 6n);
  });
  const a = await gateway(async (c) => {
    c.loginAck((await c.next(Signal.Login)).seq, 5n);
    c.send(Signal.Redirect, 0n, encodeRedirect({ code: Code.Migrated, endpoints: [b.addr], token: "fresh" }));
  });
  const c = await PlatoClient.connect({ ...base, endpoints: [a.addr] });
  try {
    await new Promise((resolve) => c.on("state", (s) => s.kind === "resumed" && resolve()));
    assert.equal(c.endpoint, b.addr);
    assert.equal(c.connId, 6n);
    await a.conns[0].closed; // the old socket is let go
  } finally {
    await c.close();
    a.close();
    b.close();
  }
});

test("downlinks: a retransmitted or repeated broadcast copy is acknowledged but delivered once; broadcast ACKs carry the flag", async () => {
  const gw = await gateway(async (c) => {
    c.loginAck((await c.next(Signal.Login)).seq, 1n);
    const p = new TextEncoder().encode("x");
    c.send(Signal.Downlink, 1n, encodeDownlink({ msgId: 50n, payload: p }));
    c.send(Signal.Downlink, 1n, encodeDownlink({ msgId: 50n, payload: p }), FLAG_RETRANSMIT);
    c.send(Signal.Downlink, 90n, encodeDownlink({ msgId: 90n, payload: p }), FLAG_BROADCAST);
    c.send(Signal.Downlink, 90n, encodeDownlink({ msgId: 90n, payload: p }), FLAG_BROADCAST);
    c.send(Signal.Downlink, 2n, encodeDownlink({ msgId: 51n, payload: p }));
  });
  const got = [];
  const c = await PlatoClient.connect({ ...base, endpoints: [gw.addr], onMessage: (m) => got.push(m) });
  try {
    const conn = gw.conns[0];
    const acks = [];
    for (let i = 0; i < 5; i++) acks.push(await conn.next(Signal.DownlinkAck));
    assert.deepEqual(acks.map((f) => [f.seq, f.flags]), [[1n, 0], [1n, 0], [90n, FLAG_BROADCAST], [90n, FLAG_BROADCAST], [2n, 0]]);
    assert.deepEqual(got.map((m) => [m.msgId, m.retransmit, m.broadcast, m.text()]), [[50n, false, false, "x"], [90n, false, true, "x"], [51n, false, false, "x"]]);
  } finally {
    await c.close();
    gw.close();
  }
});

test("a final close (1203 replaced) ends the client without reconnecting; a listener that throws breaks nothing", async () => {
  const gw = await gateway(async (c) => {
    c.loginAck((await c.next(Signal.Login)).seq, 1n);
    c.send(Signal.Downlink, 1n, encodeDownlink({ msgId: 1n, payload: new Uint8Array(0) }));
    await c.next(Signal.DownlinkAck);
    c.send(Signal.Close, 0n, encodeCodeMessage({ code: Code.Replaced, message: "elsewhere" }));
  });
  const origError = console.error;
  console.error = () => {};
  try {
    const c = await PlatoClient.connect({ ...base, endpoints: [gw.addr], onMessage: () => { throw new Error("app bug"); } });
    const why = await c.done;
    assert.ok(why instanceof PlatoError && why.code === Code.Replaced && why.detail === "elsewhere", String(why));
    await sleep(100);
    assert.equal(gw.conns.length, 1, "reconnected after 1203");
    await assert.rejects(c.send("x"), /closed/);
  } finally {
    console.error = origError;
    gw.close();
  }
});

test("connect moves on from a gateway that refuses with 1204, and fails at once on 1101", async () => {
  const down = await gateway(async (c) => c.loginAck((await c.next(Signal.Login)).seq, 0n, 0, Code.ShuttingDown));
  const up = await gateway(async (c) => c.loginAck((await c.next(Signal.Login)).seq, 9n));
  const c = await PlatoClient.connect({ ...base, endpoints: [down.addr, up.addr] });
  assert.equal(c.connId, 9n);
  await c.close();
  const bad = await gateway(async (c) => c.loginAck((await c.next(Signal.Login)).seq, 0n, 0, Code.TokenInvalid));
  await assert.rejects(PlatoClient.connect({ ...base, endpoints: [bad.addr, up.addr] }), (e) => e instanceof PlatoError && e.code === Code.TokenInvalid);
  assert.equal(up.conns.length, 1, "a token refusal is not tried elsewhere with the same token");
  for (const g of [down, up, bad]) g.close();
});

test("without reconnect, a drop ends the client; the uplink it left unanswered has an unknown outcome", async () => {
  const gw = await gateway(async (c) => {
    c.loginAck((await c.next(Signal.Login)).seq, 1n);
    await c.next(Signal.Uplink);
    c.sock.destroy();
  });
  const c = await PlatoClient.connect({ ...base, endpoints: [gw.addr], reconnect: false });
  try {
    await assert.rejects(c.send("x"), (e) => e instanceof OutcomeUnknownError && e.seq === 1n);
    assert.match(String((await c.done)?.message), /closed the connection/);
    assert.equal(gw.conns.length, 1);
  } finally {
    gw.close();
  }
});
