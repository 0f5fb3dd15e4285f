// The binary codec of docs/protocol.md §3-§6: frames, and the body of every signal.
import { Code, ProtocolError } from "./errors.js";
export const MAGIC = 0x504c;
export const VERSION = 1;
export const HEADER_SIZE = 20;
/** The default maximum body size, on the server and here (§3). */
export const DEFAULT_MAX_BODY = 65536;
/** The largest maximum body size a server may be configured with. */
export const HARD_MAX_BODY = 16 << 20;
/** The longest string a body may carry (§4). */
export const MAX_STRING = 4096;
/** The signals of §5. */
export const Signal = {
    Login: 0x01,
    LoginAck: 0x02,
    Heartbeat: 0x03,
    HeartbeatAck: 0x04,
    Uplink: 0x05,
    UplinkAck: 0x06,
    Downlink: 0x07,
    DownlinkAck: 0x08,
    Close: 0x09,
    Redirect: 0x0a,
    Resume: 0x0b,
    ResumeAck: 0x0c,
};
/** Header flag bits (§3). */
export const FLAG_RETRANSMIT = 0x0001;
export const FLAG_BROADCAST = 0x0002;
const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder();
/** encodeFrame lays out one frame: the 20-byte header, then body. */
export function encodeFrame(signal, seq, body = new Uint8Array(0), flags = 0) {
    const out = new Uint8Array(HEADER_SIZE + body.length);
    const v = new DataView(out.buffer);
    v.setUint16(0, MAGIC);
    v.setUint8(2, VERSION);
    v.setUint8(3, signal);
    v.setUint16(4, flags);
    v.setUint16(6, 0);
    v.setBigUint64(8, BigInt.asUintN(64, seq));
    v.setUint32(16, body.length);
    out.set(body, HEADER_SIZE);
    return out;
}
/**
 * decodeHeader checks and decodes the 20 bytes at the start of b in §3's order: magic (1001),
 * version (1002), signal (1004), length against maxBody (1003), throwing ProtocolError.
 */
export function decodeHeader(b, maxBody = DEFAULT_MAX_BODY) {
    if (b.length < HEADER_SIZE)
        throw new ProtocolError(Code.Malformed, `a header is ${HEADER_SIZE} bytes, got ${b.length}`);
    const v = new DataView(b.buffer, b.byteOffset, HEADER_SIZE);
    if (v.getUint16(0) !== MAGIC)
        throw new ProtocolError(Code.BadMagic, `magic 0x${v.getUint16(0).toString(16)}`);
    if (v.getUint8(2) !== VERSION)
        throw new ProtocolError(Code.BadVersion, `version ${v.getUint8(2)}`);
    const signal = v.getUint8(3);
    if (signal < Signal.Login || signal > Signal.ResumeAck)
        throw new ProtocolError(Code.UnknownSignal, `signal 0x${signal.toString(16)}`);
    const length = v.getUint32(16);
    if (length > maxBody)
        throw new ProtocolError(Code.FrameTooLarge, `body of ${length} bytes, the maximum is ${maxBody}`);
    return { signal, flags: v.getUint16(4), seq: v.getBigUint64(8), length };
}
/**
 * decodeFrame decodes b as exactly one frame: a WebSocket message carries one (§2). Bytes after
 * it, or a body shorter than its length, are a Malformed frame.
 */
export function decodeFrame(b, maxBody = DEFAULT_MAX_BODY) {
    const h = decodeHeader(b, maxBody);
    if (b.length !== HEADER_SIZE + h.length) {
        throw new ProtocolError(Code.Malformed, `a message of ${b.length} bytes holding a frame of ${HEADER_SIZE + h.length}`);
    }
    return { signal: h.signal, flags: h.flags, seq: h.seq, body: b.subarray(HEADER_SIZE) };
}
/**
 * FrameReader cuts a byte stream (TCP) into frames. The header is checked before any body byte
 * is waited for, so an oversized length fails at once.
 */
export class FrameReader {
    constructor(maxBody = DEFAULT_MAX_BODY) {
        this.maxBody = maxBody;
        this.buf = new Uint8Array(0);
    }
    /** push adds bytes and returns the frames they complete; it throws ProtocolError on a bad header. */
    push(chunk) {
        this.buf = this.buf.length === 0 ? chunk : concat(this.buf, chunk);
        const frames = [];
        let off = 0;
        for (;;) {
            if (!this.header) {
                if (this.buf.length - off < HEADER_SIZE)
                    break;
                this.header = decodeHeader(this.buf.subarray(off, off + HEADER_SIZE), this.maxBody);
                off += HEADER_SIZE;
            }
            const h = this.header;
            if (this.buf.length - off < h.length)
                break;
            // A copy: the frame outlives this buffer, and the app may keep the payload.
            frames.push({ signal: h.signal, flags: h.flags, seq: h.seq, body: this.buf.slice(off, off + h.length) });
            off += h.length;
            this.header = undefined;
        }
        this.buf = off === this.buf.length ? new Uint8Array(0) : this.buf.slice(off);
        return frames;
    }
}
function concat(a, b) {
    const out = new Uint8Array(a.length + b.length);
    out.set(a);
    out.set(b, a.length);
    return out;
}
/** BodyWriter appends §4 fields. */
export class BodyWriter {
    constructor() {
        this.parts = [];
        this.size = 0;
    }
    put(b) {
        this.parts.push(b);
        this.size += b.length;
        return this;
    }
    u8(n) { return this.put(Uint8Array.of(n & 0xff)); }
    u16(n) {
        const b = new Uint8Array(2);
        new DataView(b.buffer).setUint16(0, n);
        return this.put(b);
    }
    u64(n) {
        const b = new Uint8Array(8);
        new DataView(b.buffer).setBigUint64(0, BigInt.asUintN(64, n));
        return this.put(b);
    }
    /** str writes a §4 string; one over MAX_STRING bytes is refused (RangeError), never cut. */
    str(s, field = "string") {
        const b = utf8.encode(s);
        if (b.length > MAX_STRING)
            throw new RangeError(`${field} is ${b.length} bytes, the maximum is ${MAX_STRING}`);
        return this.u16(b.length).put(b);
    }
    bytes(b) { return this.put(b); }
    finish() {
        const out = new Uint8Array(this.size);
        let off = 0;
        for (const p of this.parts) {
            out.set(p, off);
            off += p.length;
        }
        return out;
    }
}
/** BodyReader reads §4 fields; a body that ends before a field does throws ProtocolError 1005. */
export class BodyReader {
    constructor(b, what) {
        this.b = b;
        this.what = what;
        this.off = 0;
        this.v = new DataView(b.buffer, b.byteOffset, b.byteLength);
    }
    need(n, field) {
        if (this.off + n > this.b.length)
            throw new ProtocolError(Code.Malformed, `${this.what}: the body ends inside ${field}`);
    }
    u8(field) { this.need(1, field); return this.v.getUint8(this.off++); }
    u16(field) {
        this.need(2, field);
        const n = this.v.getUint16(this.off);
        this.off += 2;
        return n;
    }
    u32(field) {
        this.need(4, field);
        const n = this.v.getUint32(this.off);
        this.off += 4;
        return n;
    }
    u64(field) {
        this.need(8, field);
        const n = this.v.getBigUint64(this.off);
        this.off += 8;
        return n;
    }
    str(field) {
        const n = this.u16(field);
        if (n > MAX_STRING)
            throw new ProtocolError(Code.Malformed, `${this.what}: ${field} is ${n} bytes, the maximum is ${MAX_STRING}`);
        this.need(n, field);
        const s = fromUtf8.decode(this.b.subarray(this.off, this.off + n));
        this.off += n;
        return s;
    }
    rest() {
        const r = this.b.slice(this.off);
        this.off = this.b.length;
        return r;
    }
}
export function encodeLogin(l) {
    return new BodyWriter().str(l.appId, "appId").str(l.did, "did").str(l.uid, "uid").str(l.token, "token").str(l.platform, "platform").finish();
}
export function decodeLogin(b) {
    const r = new BodyReader(b, "Login");
    return { appId: r.str("app_id"), did: r.str("did"), uid: r.str("uid"), token: r.str("token"), platform: r.str("platform") };
}
export function encodeResume(r) {
    return new BodyWriter().str(r.appId, "appId").str(r.did, "did").str(r.uid, "uid").str(r.token, "token").u64(r.prevConnId).u64(r.lastDownlink).finish();
}
export function decodeResume(b) {
    const r = new BodyReader(b, "Resume");
    return { appId: r.str("app_id"), did: r.str("did"), uid: r.str("uid"), token: r.str("token"), prevConnId: r.u64("prev_conn_id"), lastDownlink: r.u64("last_downlink") };
}
export function encodeLoginAck(a) {
    const b = new BodyWriter().u16(a.code).u64(a.connId);
    const hb = new Uint8Array(4);
    new DataView(hb.buffer).setUint32(0, a.heartbeatMs);
    return b.bytes(hb).str(a.message).finish();
}
export function decodeLoginAck(b, what = "LoginAck") {
    const r = new BodyReader(b, what);
    return { code: r.u16("code"), connId: r.u64("conn_id"), heartbeatMs: r.u32("heartbeat_ms"), message: r.str("message") };
}
export function encodeCodeMessage(c) {
    return new BodyWriter().u16(c.code).str(c.message, "message").finish();
}
export function decodeCodeMessage(b, what) {
    const r = new BodyReader(b, what);
    return { code: r.u16("code"), message: r.str("message") };
}
export function encodeDownlink(d) {
    return new BodyWriter().u64(d.msgId).bytes(d.payload).finish();
}
export function decodeDownlink(b) {
    const r = new BodyReader(b, "Downlink");
    return { msgId: r.u64("msg_id"), payload: r.rest() };
}
export function encodeRedirect(rd) {
    if (rd.endpoints.length > 255)
        throw new RangeError(`a Redirect lists at most 255 endpoints, not ${rd.endpoints.length}`);
    const w = new BodyWriter().u16(rd.code).u8(rd.endpoints.length);
    for (const e of rd.endpoints)
        w.str(e, "endpoint");
    return w.str(rd.token, "token").finish();
}
export function decodeRedirect(b) {
    const r = new BodyReader(b, "Redirect");
    const code = r.u16("code");
    const n = r.u8("count");
    const endpoints = [];
    for (let i = 0; i < n; i++)
        endpoints.push(r.str(`endpoint ${i}`));
    return { code, endpoints, token: r.str("token") };
}
/** toHex and fromHex help tests and logs compare frames with docs/protocol.md §13. */
export function toHex(b) {
    return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}
export function fromHex(s) {
    const clean = s.replace(/\s+/g, "");
    if (clean.length % 2 !== 0 || /[^0-9a-f]/i.test(clean))
        throw new RangeError("not a hex string");
    const out = new Uint8Array(clean.length / 2);
    for (let i = 0; i < out.length; i++)
        out[i] = parseInt(clean.slice(2 * i, 2 * i + 2), 16);
    return out;
}
