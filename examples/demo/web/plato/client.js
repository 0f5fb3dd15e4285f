// The device client: login, heartbeats, uplinks answered by promises, downlinks acknowledged by
// themselves, reconnect with backoff and Resume, Redirect (docs/protocol.md §7-§11).
import { DEFAULT_MAX_BODY, FLAG_BROADCAST, FLAG_RETRANSMIT, HARD_MAX_BODY, MAX_STRING, Signal, decodeCodeMessage, decodeDownlink, decodeLoginAck, decodeRedirect, encodeCodeMessage, encodeFrame, encodeLogin, encodeResume, } from "./codec.js";
import { AckTimeoutError, ClosedError, Code, IPConfError, OutcomeUnknownError, PlatoError, ProtocolError, errText, isResumable, } from "./errors.js";
import { fetchEndpoints } from "./ipconf.js";
import { LinkError, dial, isWebSocketURL } from "./transport.js";
export const DEFAULT_IPCONF_URL = "http://127.0.0.1:8080";
export const DEFAULT_PLATFORM = "plato-js/1";
const HEARTBEAT_JITTER = 0.1;
const DEAD_INTERVALS = 3;
const DEDUPE_WINDOW = 1024;
const TOKEN_MARGIN_MS = 10000;
const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder();
const isNode = typeof process !== "undefined" && !!process.versions?.node;
function classify(err) {
    if (!(err instanceof PlatoError) || err instanceof IPConfError)
        return "retry";
    const c = err.code;
    if (c === Code.Kicked || c === Code.Replaced || c === Code.OriginRefused)
        return "final";
    if (c >= 1000 && c <= 1099)
        return "final";
    if (c >= Code.TokenInvalid && c <= Code.UnknownApp)
        return "renew";
    return "retry";
}
function classifyIPConf(err) {
    const c = err.code;
    if ((c >= 1100 && c <= 1199) || (c >= 1400 && c <= 1499) || (c >= 2000 && c <= 2999))
        return "final";
    if (err.status === 400 || err.status === 401 || err.status === 403)
        return "final";
    return "retry";
}
/** One logged-in connection. */
class Conn {
    constructor(link, endpoint) {
        this.link = link;
        this.endpoint = endpoint;
        this.id = 0n;
        this.heartbeatMs = 30000;
        this.upSeq = 0n;
        this.lastDown = 0n;
        this.hbSeq = 0n;
        this.lastSent = Date.now();
        this.lastRead = Date.now();
        this.nextBeat = 0;
        this.ended = false;
        this.start = Date.now();
    }
    write(signal, seq, body, flags = 0) {
        const ok = this.link.write(encodeFrame(signal, seq, body, flags));
        if (ok)
            this.lastSent = Date.now();
        return ok;
    }
}
/** The endpoints being tried and the token to present (ipconf's, the config's, or a Redirect's). */
class Route {
    constructor(c, transport) {
        this.c = c;
        this.transport = transport;
        this.addrs = [];
        this.next = 0;
        this.token = "";
        this.expiresMs = 0;
        this.stale = false;
        this.fresh = false;
        this.renewed = false;
        this.failures = 0;
        this.addrs = c.endpoints ? [...c.endpoints] : [];
        this.token = c.token ?? "";
    }
    static() { return (this.c.endpoints?.length ?? 0) > 0; }
    renewable() { return !this.static() && !this.c.token; }
    expired() { return this.expiresMs > 0 && Date.now() + TOKEN_MARGIN_MS > this.expiresMs; }
    needsFetch() {
        return !this.static() && (this.next >= this.addrs.length || ((this.stale || this.expired()) && this.renewable()));
    }
    exhausted() { return this.next >= this.addrs.length; }
    async advance(dialTimeoutMs) {
        if (this.needsFetch())
            await this.fetch(dialTimeoutMs);
        if (this.next >= this.addrs.length) {
            this.addrs = [...(this.c.endpoints ?? [])];
            this.next = 0;
        }
        return this.addrs[this.next++];
    }
    async fetch(timeoutMs) {
        let cred;
        try {
            cred = typeof this.c.credential === "function" ? await this.c.credential() : this.c.credential ?? "";
        }
        catch (e) {
            throw new LinkError(`getting the device's credential: ${errText(e)}`);
        }
        const ac = new AbortController();
        const t = setTimeout(() => ac.abort(), timeoutMs);
        let list;
        try {
            list = await fetchEndpoints({
                ipconfURL: this.c.ipconfURL, appId: this.c.appId, did: this.c.did, credential: cred, transport: this.transport,
                credentialInQuery: this.c.credentialInQuery, signal: ac.signal, fetch: this.c.fetch,
            });
        }
        catch (e) {
            if (e instanceof IPConfError)
                throw e;
            throw new LinkError(`asking ipconf at ${this.c.ipconfURL}: ${errText(e)}`);
        }
        finally {
            clearTimeout(t);
        }
        this.addrs = list.endpoints.map((e) => e.addr);
        this.next = 0;
        if (!this.c.token) {
            this.renewed = this.stale;
            this.token = list.token;
            this.stale = false;
            this.fresh = true;
            this.expiresMs = list.tokenExpiresAt > 0 ? list.tokenExpiresAt * 1000 : 0;
        }
    }
    /** refused takes a token refusal: true to fetch a new token and go on, false to give up. */
    refused() {
        if (!this.renewable() || this.fresh || this.renewed)
            return false;
        this.stale = true;
        return true;
    }
    connected() { this.fresh = false; }
    ended(lasted, v) {
        if (lasted)
            this.failures = 0;
        if (lasted || v !== "renew")
            this.renewed = false;
    }
    redirect(rd) {
        // A WebSocket client can use only WebSocket URLs: given host:port (TCP) endpoints it asks
        // ipconf (transport=ws) instead, and resumes there all the same.
        this.addrs = this.transport === "ws" ? rd.endpoints.filter(isWebSocketURL) : rd.endpoints.filter((e) => !isWebSocketURL(e) || !!this.c.WebSocket || "WebSocket" in globalThis);
        this.next = 0;
        if (rd.token) {
            this.token = rd.token;
            this.expiresMs = 0;
            this.stale = false;
            this.fresh = false;
        }
    }
}
/**
 * PlatoClient is one device's connection to Plato. Create it with {@link PlatoClient.connect};
 * it stays connected (reconnecting and resuming by itself) until close().
 */
export class PlatoClient {
    constructor(c) {
        this.pending = new Map();
        this.seen = new Set();
        this.seenOrder = [];
        this.seenNext = 0;
        this.messageListeners = new Set();
        this.stateListeners = new Set();
        this.waiters = [];
        this.closing = false;
        this.finished = undefined;
        this.cfg = {
            ...c,
            ipconfURL: c.ipconfURL ?? DEFAULT_IPCONF_URL,
            uid: c.uid ?? "",
            platform: c.platform ?? DEFAULT_PLATFORM,
            dialTimeoutMs: c.dialTimeoutMs ?? 3000,
            loginTimeoutMs: c.loginTimeoutMs ?? 5000,
            ackTimeoutMs: c.ackTimeoutMs ?? 5000,
            maxBody: c.maxBody ?? DEFAULT_MAX_BODY,
            reconnect: c.reconnect ?? true,
            reconnectMinMs: c.reconnectMinMs ?? 250,
            reconnectMaxMs: c.reconnectMaxMs ?? Math.max(30000, c.reconnectMinMs ?? 0),
        };
        validate(this.cfg);
        this.transport = c.transport ?? (isNode ? "tcp" : "ws");
        this.route = new Route(this.cfg, this.transport);
        if (c.onMessage)
            this.messageListeners.add(c.onMessage);
        if (c.onState)
            this.stateListeners.add(c.onState);
        this.done = new Promise((r) => (this.doneResolve = r));
    }
    /**
     * connect asks ipconf for gateways (unless endpoints are given), dials them in order and logs in.
     * It rejects when every endpoint of the list failed, or at once for a reason retrying cannot
     * fix (a bad credential, an unknown app): a PlatoError or IPConfError with the code.
     */
    static async connect(config) {
        const c = new PlatoClient(config);
        let last;
        for (let attempt = 1;; attempt++) {
            try {
                const { conn } = await c.attempt(undefined);
                c.route.connected();
                c.adopt(undefined, conn, false);
                return c;
            }
            catch (e) {
                last = e;
                const fatal = c.judge(e);
                if (fatal || (c.route.exhausted() && !c.route.stale)) {
                    c.finish(fatal ?? e);
                    throw fatal ?? e;
                }
            }
            if (attempt > 64) {
                c.finish(last);
                throw last;
            }
        }
    }
    /** The connection's current ID (0 while none is up). */
    get connId() { return this.cur?.id ?? 0n; }
    /** The gateway the client is connected to. */
    get endpoint() { return this.cur?.endpoint ?? ""; }
    /** Whether a connection is up now. */
    get connected() { return !!this.cur && !this.cur.ended && this.finished === undefined; }
    on(type, fn) {
        const set = type === "message" ? this.messageListeners : this.stateListeners;
        set.add(fn);
        return () => set.delete(fn);
    }
    /**
     * send sends one uplink and resolves when the business server accepted it (UplinkAck code 0).
     * It rejects with a PlatoError carrying the refusal's code (§8.1; 2000-2999: the business's own),
     * AckTimeoutError after ackTimeoutMs (the connection wait included), OutcomeUnknownError when the
     * connection was lost and could not be resumed, ClosedError once the client is closed. While the
     * client reconnects, send waits for the connection; after a Resume it sends what is unanswered again.
     */
    async send(payload) {
        const b = typeof payload === "string" ? utf8.encode(payload) : payload;
        if (b.length > DEFAULT_MAX_BODY)
            throw new RangeError(`an uplink of ${b.length} bytes: the maximum is ${DEFAULT_MAX_BODY}`);
        const deadline = Date.now() + this.cfg.ackTimeoutMs;
        const conn = await this.ready(deadline);
        return new Promise((resolve, reject) => {
            const seq = ++conn.upSeq;
            const p = {
                seq, payload: b, resent: false, resolve, reject,
                timer: setTimeout(() => {
                    if (this.pending.get(seq) === p)
                        this.pending.delete(seq);
                    reject(new AckTimeoutError(seq, this.cfg.ackTimeoutMs));
                }, Math.max(0, deadline - Date.now())),
            };
            this.pending.set(seq, p);
            conn.write(Signal.Uplink, seq, b);
        });
    }
    /** close sends Close 1209, closes the connection and stops reconnecting. */
    async close() {
        if (this.closing)
            return;
        this.closing = true;
        this.wake?.();
        const c = this.cur;
        if (c && !c.ended) {
            c.write(Signal.Close, 0n, encodeCodeMessage({ code: Code.ClientClose, message: "" }));
            c.ended = true;
            clearTimeout(c.timer);
            c.link.close();
        }
        this.finish(undefined);
    }
    // ready is the live connection, waiting for one while the client reconnects.
    ready(deadline) {
        if (this.finished !== undefined)
            return Promise.reject(new ClosedError(this.finished ?? undefined));
        if (this.connected)
            return Promise.resolve(this.cur);
        return new Promise((resolve, reject) => {
            const w = {
                resolve: (c) => { clearTimeout(t); resolve(c); },
                reject: (e) => { clearTimeout(t); reject(e); },
            };
            const t = setTimeout(() => {
                this.waiters = this.waiters.filter((x) => x !== w);
                reject(new AckTimeoutError(0n, this.cfg.ackTimeoutMs));
            }, Math.max(0, deadline - Date.now()));
            this.waiters.push(w);
        });
    }
    // attempt dials the next endpoint and logs in there (or resumes from).
    async attempt(from) {
        const addr = await this.route.advance(this.cfg.dialTimeoutMs);
        const link = await dial(addr, { timeoutMs: this.cfg.dialTimeoutMs, maxBody: this.cfg.maxBody, WebSocket: this.cfg.WebSocket });
        if (this.closing) {
            link.close();
            throw new ClosedError();
        }
        return this.handshake(new Conn(link, addr), from);
    }
    // judge returns the error to give up with, or undefined to try again.
    judge(e) {
        if (e instanceof ClosedError)
            return e;
        if (e instanceof IPConfError)
            return classifyIPConf(e) === "final" ? e : undefined;
        if (e instanceof TypeError || e instanceof RangeError)
            return e; // a configuration the runtime cannot follow
        switch (classify(e)) {
            case "final":
                return e;
            case "renew":
                return this.route.refused() ? undefined : e;
        }
        return undefined;
    }
    // handshake sends Login (or Resume) as the first frame and waits for its answer. The connection
    // goes live in the frame handler itself, so frames right behind the answer (the UplinkAcks and
    // downlinks a Resume brings) are handled as live ones.
    handshake(conn, from) {
        const { appId, did, uid, platform } = this.cfg;
        const token = this.route.token;
        return new Promise((resolve, reject) => {
            let settled = false;
            const fail = (e) => {
                if (settled)
                    return;
                settled = true;
                clearTimeout(timer);
                conn.link.onEnd = () => { };
                conn.link.close();
                reject(e);
            };
            const timer = setTimeout(() => fail(new LinkError(`${conn.endpoint}: no LoginAck within ${this.cfg.loginTimeoutMs} ms`)), this.cfg.loginTimeoutMs);
            const live = (f, resumed) => {
                const ack = decodeLoginAck(f.body, resumed ? "ResumeAck" : "LoginAck");
                settled = true;
                clearTimeout(timer);
                conn.id = ack.connId;
                conn.heartbeatMs = ack.heartbeatMs > 0 ? ack.heartbeatMs : 30000;
                conn.lastRead = Date.now();
                if (resumed && from) {
                    conn.upSeq = from.upSeq;
                    conn.lastDown = from.lastDown;
                }
                conn.link.onFrame = (fr) => this.onFrame(conn, fr);
                conn.link.onEnd = (err) => this.onEnd(conn, err);
                this.beat(conn);
                resolve({ conn, resumed });
            };
            conn.link.onEnd = (err) => fail(err ?? new LinkError(`${conn.endpoint} closed during login`));
            conn.link.onFrame = (f) => {
                conn.lastRead = Date.now();
                try {
                    switch (f.signal) {
                        case Signal.LoginAck: {
                            const a = decodeLoginAck(f.body);
                            if (a.code !== Code.OK)
                                return fail(new PlatoError(a.code, a.message, `login at ${conn.endpoint}`));
                            return live(f, false);
                        }
                        case Signal.ResumeAck: {
                            const a = decodeLoginAck(f.body, "ResumeAck");
                            if (a.code === Code.ResumeRejected) {
                                // §11.1: nothing is kept; log in on the same socket.
                                conn.write(Signal.Login, 2n, encodeLogin({ appId, did, uid, token, platform }));
                                return;
                            }
                            if (a.code !== Code.OK)
                                return fail(new PlatoError(a.code, a.message, `resume at ${conn.endpoint}`));
                            return live(f, true);
                        }
                        case Signal.Close: {
                            const c = decodeCodeMessage(f.body, "Close");
                            return fail(new PlatoError(c.code, c.message, `${conn.endpoint} closed the connection during login`));
                        }
                    }
                }
                catch (e) {
                    fail(e);
                }
            };
            try {
                if (from) {
                    conn.write(Signal.Resume, 1n, encodeResume({ appId, did, uid, token, prevConnId: from.connId, lastDownlink: from.lastDown }));
                }
                else {
                    conn.write(Signal.Login, 1n, encodeLogin({ appId, did, uid, token, platform }));
                }
            }
            catch (e) {
                fail(e);
            }
        });
    }
    onFrame(conn, f) {
        conn.lastRead = Date.now();
        try {
            switch (f.signal) {
                case Signal.UplinkAck:
                    return this.resolveUplink(f.seq, decodeCodeMessage(f.body, "UplinkAck"));
                case Signal.Downlink:
                    return this.downlink(conn, f);
                case Signal.Close: {
                    const c = decodeCodeMessage(f.body, "Close");
                    conn.err = new PlatoError(c.code, c.message, `${conn.endpoint} closed the connection`);
                    conn.link.close();
                    return;
                }
                case Signal.Redirect: {
                    // §11.2: resume at the listed gateways. The old socket is closed without a Close, so the
                    // server keeps the connection whichever way the move goes.
                    const rd = decodeRedirect(f.body);
                    conn.redirect = rd;
                    conn.err = new PlatoError(rd.code || Code.Migrated, "", `${conn.endpoint} redirected the connection`);
                    conn.link.close();
                    return;
                }
            }
            // HeartbeatAck proves the server alive (lastRead); anything else is ignored (§14).
        }
        catch (e) {
            conn.err = e instanceof ProtocolError ? e : new ProtocolError(Code.Malformed, errText(e));
            conn.link.close();
        }
    }
    downlink(conn, f) {
        const d = decodeDownlink(f.body);
        const retransmit = (f.flags & FLAG_RETRANSMIT) !== 0;
        const broadcast = (f.flags & FLAG_BROADCAST) !== 0;
        if (!((retransmit || broadcast) && this.seen.has(d.msgId))) {
            this.remember(d.msgId);
            const payload = d.payload;
            const m = { seq: f.seq, msgId: d.msgId, payload, retransmit, broadcast, text: () => fromUtf8.decode(payload) };
            for (const fn of [...this.messageListeners]) {
                try {
                    fn(m);
                }
                catch (e) {
                    reportListenerError("message", e);
                }
            }
        }
        // Acknowledged once handed over (§8.2); a broadcast is answered with its flag (§8.3).
        if (!broadcast && f.seq > conn.lastDown)
            conn.lastDown = f.seq;
        conn.write(Signal.DownlinkAck, f.seq, undefined, broadcast ? FLAG_BROADCAST : 0);
    }
    remember(id) {
        if (this.seen.has(id))
            return;
        if (this.seenOrder.length < DEDUPE_WINDOW) {
            this.seenOrder.push(id);
        }
        else {
            this.seen.delete(this.seenOrder[this.seenNext]);
            this.seenOrder[this.seenNext] = id;
            this.seenNext = (this.seenNext + 1) % DEDUPE_WINDOW;
        }
        this.seen.add(id);
    }
    resolveUplink(seq, ack) {
        const p = this.pending.get(seq);
        if (!p)
            return;
        this.pending.delete(seq);
        clearTimeout(p.timer);
        if (ack.code === Code.OK || (ack.code === Code.Duplicate && p.resent))
            p.resolve(); // §11.1: 1008 on a resent uplink: the server had it
        else
            p.reject(new PlatoError(ack.code, ack.message, `uplink ${seq} refused`));
    }
    // beat keeps one timer per connection: a Heartbeat once nothing was sent for heartbeat_ms (plus
    // up to 10% jitter, §9), and the connection given up after 3 × heartbeat_ms without a frame read.
    beat(conn) {
        if (conn.ended)
            return;
        const hb = conn.heartbeatMs;
        if (conn.nextBeat === 0)
            conn.nextBeat = hb * (1 + Math.random() * HEARTBEAT_JITTER);
        const now = Date.now();
        if (now - conn.lastRead >= DEAD_INTERVALS * hb) {
            conn.err = new LinkError(`${conn.endpoint}: nothing heard for ${DEAD_INTERVALS * hb} ms`);
            conn.link.close();
            return;
        }
        if (now - conn.lastSent >= conn.nextBeat) {
            conn.write(Signal.Heartbeat, ++conn.hbSeq);
            conn.nextBeat = hb * (1 + Math.random() * HEARTBEAT_JITTER);
        }
        const wait = Math.min(conn.lastSent + conn.nextBeat, conn.lastRead + DEAD_INTERVALS * hb) - Date.now();
        conn.timer = setTimeout(() => this.beat(conn), Math.max(10, wait));
    }
    onEnd(conn, err) {
        if (conn.ended)
            return;
        conn.ended = true;
        clearTimeout(conn.timer);
        conn.err ?? (conn.err = err ?? new LinkError(`${conn.endpoint} closed the connection`));
        if (conn !== this.cur || this.closing || this.finished !== undefined)
            return; // adopt sees it ended
        this.emitState({ kind: "disconnected", endpoint: conn.endpoint, connId: conn.id, error: conn.err });
        if (!this.cfg.reconnect) {
            this.finish(conn.err);
            return;
        }
        void this.reconnect(conn);
    }
    async reconnect(old) {
        const reason = old.err;
        const v = classify(reason);
        this.route.ended(Date.now() - old.start >= this.cfg.reconnectMaxMs, v);
        if (v === "final")
            return this.finish(reason);
        if (v === "renew" && !this.route.refused())
            return this.finish(reason);
        let direct = 0;
        if (old.redirect) {
            this.route.redirect(old.redirect);
            direct = this.route.addrs.length;
        }
        const code = reason instanceof PlatoError ? reason.code : undefined;
        const from = code === undefined || isResumable(code) ? { connId: old.id, lastDown: old.lastDown, upSeq: old.upSeq } : undefined;
        let lastErr;
        for (let attempt = 1;; attempt++) {
            if (attempt > direct) {
                await this.sleep(backoff(this.route.failures, this.cfg.reconnectMinMs, this.cfg.reconnectMaxMs));
                this.route.failures++;
            }
            if (this.closing)
                return;
            this.emitState({ kind: "connecting", attempt, error: lastErr });
            try {
                const { conn, resumed } = await this.attempt(from);
                if (this.closing) {
                    conn.write(Signal.Close, 0n, encodeCodeMessage({ code: Code.ClientClose, message: "" }));
                    conn.ended = true;
                    clearTimeout(conn.timer);
                    conn.link.close();
                    return;
                }
                this.route.connected();
                this.adopt(old, conn, resumed);
                return;
            }
            catch (e) {
                if (this.closing)
                    return;
                const fatal = this.judge(e);
                if (fatal)
                    return this.finish(fatal);
                lastErr = e;
            }
        }
    }
    sleep(ms) {
        return new Promise((resolve) => {
            const t = setTimeout(() => { this.wake = undefined; resolve(); }, ms);
            this.wake = () => { clearTimeout(t); this.wake = undefined; resolve(); };
        });
    }
    // adopt makes next the client's connection: after a Resume the unanswered uplinks go again with
    // their seqs; after a fresh Login their outcome is unknown.
    adopt(old, next, resumed) {
        this.cur = next;
        if (old && !resumed) {
            const why = old.err;
            this.failPending((p) => new OutcomeUnknownError(p.seq, why));
        }
        this.emitState({ kind: resumed ? "resumed" : "connected", endpoint: next.endpoint, connId: next.id });
        if (resumed) {
            for (const p of [...this.pending.values()].sort((a, b) => (a.seq < b.seq ? -1 : a.seq > b.seq ? 1 : 0))) {
                p.resent = true;
                next.write(Signal.Uplink, p.seq, p.payload);
            }
        }
        const ws = this.waiters;
        this.waiters = [];
        for (const w of ws)
            w.resolve(next);
        if (next.ended) {
            // It dropped before it was adopted: handle the drop now.
            next.ended = false;
            this.onEnd(next, next.err);
        }
    }
    failPending(why) {
        const all = [...this.pending.values()];
        this.pending.clear();
        for (const p of all) {
            clearTimeout(p.timer);
            p.reject(why(p));
        }
    }
    finish(err) {
        if (this.finished !== undefined)
            return;
        this.finished = err ?? null;
        this.closing = true;
        this.wake?.();
        const closed = new ClosedError(err);
        // Uplinks unanswered when the connection ended for good may or may not have arrived; those
        // unanswered at close() are the app's own doing.
        this.failPending((p) => (err ? new OutcomeUnknownError(p.seq, err) : closed));
        const ws = this.waiters;
        this.waiters = [];
        for (const w of ws)
            w.reject(closed);
        this.emitState({ kind: "closed", error: err });
        this.doneResolve(err);
    }
    emitState(s) {
        for (const fn of [...this.stateListeners]) {
            try {
                fn(s);
            }
            catch (e) {
                reportListenerError("state", e);
            }
        }
    }
}
// A listener's exception must not break the connection (its frame would go unacknowledged).
function reportListenerError(what, e) {
    if (typeof console !== "undefined")
        console.error(`plato: a ${what} listener threw:`, e);
}
/** backoff is full jitter: uniform in [0, min(max, min × 2^n)] (§14.7). */
export function backoff(n, minMs, maxMs, rnd = Math.random) {
    if (minMs <= 0 || maxMs <= 0)
        return 0;
    const bound = n < 52 ? Math.min(maxMs, minMs * 2 ** n) : maxMs;
    return Math.floor(rnd() * (bound + 1));
}
function validate(c) {
    const errs = [];
    if (!c.appId)
        errs.push("appId is required");
    if (!c.did)
        errs.push("did is required");
    if (c.endpoints?.length && !c.token)
        errs.push("token is required when endpoints is set");
    if (!c.endpoints?.length && !c.credential)
        errs.push("credential is required to ask ipconf (the credential your app's backend issued the device)");
    for (const [k, v] of Object.entries({ appId: c.appId, did: c.did, uid: c.uid, token: c.token ?? "", platform: c.platform })) {
        if (utf8.encode(v).length > MAX_STRING)
            errs.push(`${k} is longer than ${MAX_STRING} bytes`);
    }
    if (c.maxBody <= 0 || c.maxBody > HARD_MAX_BODY)
        errs.push(`maxBody ${c.maxBody} is outside 1..${HARD_MAX_BODY}`);
    if (c.reconnectMinMs < 0 || c.reconnectMaxMs < c.reconnectMinMs)
        errs.push("reconnectMinMs and reconnectMaxMs must satisfy 0 <= min <= max");
    if (errs.length)
        throw new TypeError("plato: " + errs.join("; "));
}
