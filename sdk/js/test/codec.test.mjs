// The codec against docs/protocol.md: §13's dumps decode to what the doc says and encode back to
// the same bytes; §3's checks come in their order; bad input fails with a ProtocolError only.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import {
  FrameReader, Signal, FLAG_BROADCAST, ProtocolError, Code, codeName, decodeFrame, decodeHeader, decodeLogin, decodeLoginAck,
  decodeCodeMessage, decodeDownlink, decodeRedirect, decodeResume, encodeCodeMessage, encodeDownlink, encodeFrame, encodeLogin,
  encodeLoginAck, encodeRedirect, encodeResume, fromHex, toHex, isResumable,
} from "../dist/index.js";

const doc = readFileSync(fileURLToPath(new URL("../../../docs/protocol.md", import.meta.url)), "utf8");

// dumps returns every hexdump in §13, in order: the bytes of each.
function dumps() {
  const s13 = doc.slice(doc.indexOf("## 13. Worked examples"), doc.indexOf("## 14."));
  const out = [];
  let cur = null;
  for (const line of s13.split("\n")) {
    const m = /^([0-9a-f]{8})  ([^|]*)/.exec(line);
    if (!m) continue;
    if (m[1] === "00000000") out.push((cur = []));
    cur.push(...m[2].trim().split(/\s+/).map((x) => parseInt(x, 16)));
  }
  return out.map((b) => Uint8Array.from(b));
}

const s = (x) => new TextEncoder().encode(x);

// What §13 says each dump is, in the doc's order, and how to encode it.
const expected = [
  { what: "Login", signal: Signal.Login, seq: 1n, body: (b) => assert.deepEqual(decodeLogin(b), { appId: "demo", did: "d1", uid: "u1", token: "t", platform: "" }),
    encode: () => encodeFrame(Signal.Login, 1n, encodeLogin({ appId: "demo", did: "d1", uid: "u1", token: "t", platform: "" })) },
  { what: "Uplink", signal: Signal.Uplink, seq: 2n, body: (b) => assert.deepEqual(b, s("hi")), encode: () => encodeFrame(Signal.Uplink, 2n, s("hi")) },
  { what: "LoginAck", signal: Signal.LoginAck, seq: 1n, body: (b) => assert.deepEqual(decodeLoginAck(b), { code: 0, connId: 42n, heartbeatMs: 30000, message: "" }),
    encode: () => encodeFrame(Signal.LoginAck, 1n, encodeLoginAck({ code: 0, connId: 42n, heartbeatMs: 30000, message: "" })) },
  { what: "UplinkAck", signal: Signal.UplinkAck, seq: 2n, body: (b) => assert.deepEqual(decodeCodeMessage(b, "UplinkAck"), { code: 0, message: "" }),
    encode: () => encodeFrame(Signal.UplinkAck, 2n, encodeCodeMessage({ code: 0, message: "" })) },
  { what: "Downlink", signal: Signal.Downlink, seq: 1n, body: (b) => assert.deepEqual(decodeDownlink(b), { msgId: 7n, payload: s("yo") }),
    encode: () => encodeFrame(Signal.Downlink, 1n, encodeDownlink({ msgId: 7n, payload: s("yo") })) },
  { what: "DownlinkAck", signal: Signal.DownlinkAck, seq: 1n, body: (b) => assert.equal(b.length, 0), encode: () => encodeFrame(Signal.DownlinkAck, 1n) },
  { what: "Heartbeat", signal: Signal.Heartbeat, seq: 3n, body: (b) => assert.equal(b.length, 0), encode: () => encodeFrame(Signal.Heartbeat, 3n) },
  { what: "Close", signal: Signal.Close, seq: 0n, body: (b) => assert.deepEqual(decodeCodeMessage(b, "Close"), { code: 1209, message: "" }),
    encode: () => encodeFrame(Signal.Close, 0n, encodeCodeMessage({ code: Code.ClientClose, message: "" })) },
];

test("§13's dumps decode as the doc says and encode back to the same bytes", () => {
  const got = dumps();
  assert.equal(got.length, expected.length, "number of hexdumps in docs/protocol.md §13");
  got.forEach((b, i) => {
    const e = expected[i];
    const f = decodeFrame(b);
    assert.equal(f.signal, e.signal, e.what);
    assert.equal(f.seq, e.seq, e.what);
    assert.equal(f.flags, 0, e.what);
    e.body(f.body);
    assert.equal(toHex(e.encode()), toHex(b), `${e.what} encodes as in the doc`);
  });
});

test("§13's one-line hex strings are the Login and Uplink encodings", () => {
  const lines = [...doc.matchAll(/As one hex string: `([0-9a-f]+)`/g)].map((m) => m[1]);
  assert.deepEqual(lines, [toHex(expected[0].encode()), toHex(expected[1].encode())]);
});

test("the stream reader cuts frames at any split, and checks the header before the body", () => {
  const all = dumps();
  const stream = Uint8Array.from(all.flatMap((b) => [...b]));
  for (const step of [1, 3, 7, 20, 21, stream.length]) {
    const r = new FrameReader();
    const frames = [];
    for (let i = 0; i < stream.length; i += step) frames.push(...r.push(stream.slice(i, i + step)));
    assert.equal(frames.length, all.length, `step ${step}`);
    frames.forEach((f, i) => assert.equal(toHex(encodeFrame(f.signal, f.seq, f.body, f.flags)), toHex(all[i])));
  }
  // An oversized length fails with the header alone: no body byte is waited for.
  const big = encodeFrame(Signal.Downlink, 1n, new Uint8Array(0)).slice(0, 20);
  new DataView(big.buffer).setUint32(16, 65537);
  assert.throws(() => new FrameReader().push(big), (e) => e instanceof ProtocolError && e.code === Code.FrameTooLarge);
  assert.equal(new FrameReader(1 << 20).push(big).length, 0, "a larger maximum waits for the body");
});

test("§3's checks, in order: magic, version, signal, length", () => {
  const h = () => encodeFrame(Signal.Heartbeat, 1n);
  const bad = (mut, code) => {
    const b = h();
    mut(b);
    assert.throws(() => decodeHeader(b), (e) => e instanceof ProtocolError && e.code === code, codeName(code));
  };
  bad((b) => { b[0] = 0x51; b[2] = 9; }, Code.BadMagic); // magic before version
  bad((b) => { b[2] = 2; b[3] = 0x0d; }, Code.BadVersion); // version before signal
  bad((b) => { b[3] = 0x0d; b[16] = 0xff; }, Code.UnknownSignal); // signal before length
  bad((b) => { b[3] = 0; }, Code.UnknownSignal);
  bad((b) => { b[17] = 0x02; }, Code.FrameTooLarge); // 0x00020000 = 131072
  // One WebSocket message is exactly one frame.
  assert.throws(() => decodeFrame(Uint8Array.from([...h(), 0])), (e) => e.code === Code.Malformed);
});

test("bodies: Resume, Redirect, broadcast flags, trailing bytes, short bodies, long strings", () => {
  const r = { appId: "demo", did: "d1", uid: "u1", token: "tok", prevConnId: 2n ** 64n - 1n, lastDownlink: 9n };
  assert.deepEqual(decodeResume(encodeResume(r)), r);
  const rd = { code: Code.Migrated, endpoints: ["127.0.0.1:8900", "[::1]:8900"], token: "" };
  assert.deepEqual(decodeRedirect(encodeRedirect(rd)), rd);
  const f = decodeFrame(encodeFrame(Signal.Downlink, 77n, encodeDownlink({ msgId: 77n, payload: s("x") }), FLAG_BROADCAST));
  assert.equal(f.flags, FLAG_BROADCAST);
  // Trailing bytes after the last known field are ignored (§4).
  assert.deepEqual(decodeCodeMessage(Uint8Array.from([...encodeCodeMessage({ code: 2042, message: "no" }), 1, 2, 3]), "UplinkAck"), { code: 2042, message: "no" });
  // A body that ends inside a field is Malformed.
  const login = encodeLogin({ appId: "demo", did: "d1", uid: "", token: "t", platform: "p" });
  for (let n = 0; n < login.length; n++) {
    assert.throws(() => decodeLogin(login.slice(0, n)), (e) => e instanceof ProtocolError && e.code === Code.Malformed, `cut at ${n}`);
  }
  // A string over 4096 bytes is refused when encoding and when decoding.
  assert.throws(() => encodeLogin({ appId: "a".repeat(4097), did: "d", uid: "", token: "", platform: "" }), RangeError);
  const long = Uint8Array.from([0x10, 0x01, ...new Uint8Array(4097)]);
  assert.throws(() => decodeCodeMessage(Uint8Array.from([0, 0, ...long]), "Close"), (e) => e.code === Code.Malformed);
  assert.deepEqual(fromHex("50 4c"), Uint8Array.of(0x50, 0x4c));
});

test("codes: names, business range, resumable set", () => {
  assert.equal(codeName(1203), "Replaced");
  assert.equal(codeName(2042), "Business(2042)");
  assert.equal(codeName(1999), "Code(1999)");
  for (const c of [1201, 1204, 1205, 1207, 1210, 1211, 1303, 1307]) assert.ok(isResumable(c), String(c));
  for (const c of [1202, 1203, 1206, 1208, 1209, 1005]) assert.ok(!isResumable(c), String(c));
});

// A seeded fuzz: the doc's frames, mutated and cut, fed to every decoder. Anything thrown must be a
// ProtocolError (the reader's documented failure); nothing may hang or throw anything else.
test("fuzz: mutated frames fail only with ProtocolError", () => {
  let x = 0x9e3779b9;
  const rnd = () => ((x ^= x << 13), (x ^= x >>> 17), (x ^= x << 5), (x >>> 0) / 2 ** 32);
  const seeds = [...dumps(), encodeFrame(Signal.Redirect, 0n, encodeRedirect({ code: 1207, endpoints: ["a:1"], token: "t" })),
    encodeFrame(Signal.Resume, 1n, encodeResume({ appId: "a", did: "d", uid: "", token: "t", prevConnId: 1n, lastDownlink: 0n }))];
  const decoders = [decodeLogin, decodeLoginAck, (b) => decodeCodeMessage(b, "x"), decodeDownlink, decodeRedirect, decodeResume];
  for (let i = 0; i < 20000; i++) {
    const b = seeds[i % seeds.length].slice(0, Math.floor(rnd() * 80));
    for (let k = Math.floor(rnd() * 4); k > 0 && b.length; k--) b[Math.floor(rnd() * b.length)] = Math.floor(rnd() * 256);
    const ok = (e) => e instanceof ProtocolError;
    try { new FrameReader().push(b); } catch (e) { assert.ok(ok(e), String(e)); }
    try { decodeFrame(b); } catch (e) { assert.ok(ok(e), String(e)); }
    const body = b.subarray(Math.min(20, b.length));
    for (const d of decoders) {
      try { d(body); } catch (e) { assert.ok(ok(e), String(e)); }
    }
  }
});
