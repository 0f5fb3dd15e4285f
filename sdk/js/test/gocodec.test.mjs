// The JS codec against the Go one (sdk/protocol): cmd/plato's TestJSSDK writes frames the Go codec
// encoded to PLATO_GO_FRAMES; the same values encode to the same bytes here and decode back.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import {
  Signal, FLAG_BROADCAST, FLAG_RETRANSMIT, decodeFrame, encodeFrame, toHex, fromHex, encodeLogin, decodeLogin, encodeLoginAck, decodeLoginAck,
  encodeCodeMessage, decodeCodeMessage, encodeDownlink, decodeDownlink, encodeRedirect, decodeRedirect, encodeResume, decodeResume,
} from "../dist/index.js";

const path = process.env.PLATO_GO_FRAMES;
const u64max = 2n ** 64n - 1n;
const s = (x) => new TextEncoder().encode(x);

// name: [signal, flags, seq, value, encode, decode]
const cases = {
  login: [Signal.Login, 0, 1n, { appId: "demo", did: "dévice-1", uid: "ü", token: "tok.en", platform: "plato-js/1" }, encodeLogin, decodeLogin],
  loginAck: [Signal.LoginAck, 0, 1n, { code: 0, connId: u64max, heartbeatMs: 30000, message: "welcome" }, encodeLoginAck, decodeLoginAck],
  refused: [Signal.LoginAck, 0, 2n, { code: 1102, connId: 0n, heartbeatMs: 0, message: "token expired" }, encodeLoginAck, decodeLoginAck],
  uplinkAck: [Signal.UplinkAck, 0, 77n, { code: 2042, message: "no" }, encodeCodeMessage, (b) => decodeCodeMessage(b, "UplinkAck")],
  downlink: [Signal.Downlink, FLAG_BROADCAST, 2n ** 40n, { msgId: 2n ** 40n, payload: s("{}") }, encodeDownlink, decodeDownlink],
  retrans: [Signal.Downlink, FLAG_RETRANSMIT, 3n, { msgId: 9n, payload: new Uint8Array(0) }, encodeDownlink, decodeDownlink],
  close: [Signal.Close, 0, 0n, { code: 1203, message: "elsewhere" }, encodeCodeMessage, (b) => decodeCodeMessage(b, "Close")],
  redirect: [Signal.Redirect, 0, 0n, { code: 1207, endpoints: ["10.0.0.1:8900", "[::1]:8900", "ws://h:8910/plato"], token: "fresh" }, encodeRedirect, decodeRedirect],
  redirect0: [Signal.Redirect, 0, 0n, { code: 1207, endpoints: [], token: "" }, encodeRedirect, decodeRedirect],
  resume: [Signal.Resume, 0, 5n, { appId: "demo", did: "d1", uid: "u1", token: "t", prevConnId: u64max - 1n, lastDownlink: 2n ** 33n }, encodeResume, decodeResume],
  resumeAck: [Signal.ResumeAck, 0, 5n, { code: 1208, connId: 0n, heartbeatMs: 0, message: "resume rejected: send Login" }, encodeLoginAck, (b) => decodeLoginAck(b, "ResumeAck")],
  heartbeat: [Signal.Heartbeat, 0, u64max, null, null, null],
  bcastAck: [Signal.DownlinkAck, FLAG_BROADCAST, 2n ** 40n, null, null, null],
};

test("the Go codec's frames: same bytes from the same values, and decoded back", { skip: path ? false : "run by cmd/plato's TestJSSDK (PLATO_GO_FRAMES)" }, () => {
  const go = JSON.parse(readFileSync(path, "utf8"));
  assert.deepEqual(Object.keys(go).sort(), Object.keys(cases).sort());
  for (const [name, [sig, flags, seq, value, enc, dec]] of Object.entries(cases)) {
    const body = enc ? enc(value) : new Uint8Array(0);
    assert.equal(toHex(encodeFrame(sig, seq, body, flags)), go[name], `${name} encodes as Go does`);
    const f = decodeFrame(fromHex(go[name]));
    assert.deepEqual([f.signal, f.flags, f.seq], [sig, flags, seq], name);
    if (dec) assert.deepEqual(dec(f.body), value, `${name} decodes`);
  }
});
