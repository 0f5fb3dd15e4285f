// The device client: login, heartbeats, uplinks answered by promises, downlinks acknowledged by
// themselves, reconnect with backoff and Resume, Redirect (docs/protocol.md §7-§11).

import {
  DEFAULT_MAX_BODY, FLAG_BROADCAST, FLAG_RETRANSMIT, Frame, HARD_MAX_BODY, MAX_STRING, Redirect, Signal,
  decodeCodeMessage, decodeDownlink, decodeLoginAck, decodeRedirect, encodeCodeMessage, encodeFrame, encodeLogin, encodeResume,
} from "./codec.js";
import {
  AckTimeoutError, ClosedError, Code, IPConfError, OutcomeUnknownError, PlatoError, ProtocolError, errText, isResumable,
} from "./errors.js";
import { fetchEndpoints } from "./ipconf.js";
import { Link, LinkError, WebSocketConstructor, dial, isWebSocketURL } from "./transport.js";

export const DEFAULT_IPCONF_URL = "http://127.0.0.1:8080";
export const DEFAULT_PLATFORM = "plato-js/1";

/** How a PlatoClient connects and behaves. Only appId, did and a credential (or endpoints and token) are required. */
export interface ClientConfig {
  /** ipconf's base URL (default http://127.0.0.1:8080). */
  ipconfURL?: string;
  appId: string;
  did: string;
  /** the user signed in on the device; empty: the credential's. */
  uid?: string;
  /**
   * The credential the app's backend issued the device (docs/security.md), or a function that gets
   * one: it is called before every ipconf lookup, so it may fetch a fresh credential.
   */
  credential?: string | (() => string | Promise<string>);
  /** gateways to dial instead of asking ipconf (tests, fixed deployments); token is then required. */
  endpoints?: string[];
  /** a gateway token to use with endpoints. */
  token?: string;
  /** free text for the server's logs (default "plato-js/1"). */
  platform?: string;
  /** "ws" for WebSocket endpoints, "tcp" for TCP ones. Default: "tcp" in Node, "ws" elsewhere. */
  transport?: "tcp" | "ws";
  /** send the credential to ipconf as the token query parameter rather than a header (§1). */
  credentialInQuery?: boolean;
  dialTimeoutMs?: number;
  loginTimeoutMs?: number;
  /** how long send() waits for its UplinkAck, connection included (default 5000). */
  ackTimeoutMs?: number;
  /** the largest body accepted from the server (default 65536). */
  maxBody?: number;
  /** reconnect, and Resume, when the connection drops (default true). */
  reconnect?: boolean;
  reconnectMinMs?: number;
  reconnectMaxMs?: number;
  /** a WebSocket constructor where the runtime has none (Node before 22: the ws package's). */
  WebSocket?: WebSocketConstructor;
  /** a fetch for ipconf (default: the global one). */
  fetch?: typeof fetch;
  onMessage?: (m: Message) => void;
  onState?: (s: StateEvent) => void;
}

/** A downlink handed to the app. It is acknowledged once every listener has returned. */
export interface Message {
  /** the connection's downlink seq; for a broadcast, the msgId. */
  seq: bigint;
  /** identifies the message across retransmissions and connections. */
  msgId: bigint;
  payload: Uint8Array;
  retransmit: boolean;
  broadcast: boolean;
  /** the payload as UTF-8 text. */
  text(): string;
}

export type StateKind = "connecting" | "connected" | "resumed" | "disconnected" | "closed";

/** A change of the connection, for the app to show. */
export interface StateEvent {
  kind: StateKind;
  /** the gateway (connected, resumed, disconnected). */
  endpoint?: string;
  connId?: bigint;
  /** the reconnect attempt (connecting), from 1. */
  attempt?: number;
  /** why the connection dropped (disconnected), the previous attempt failed (connecting), or the client closed (closed). */
  error?: Error;
}

const HEARTBEAT_JITTER = 0.1;
const DEAD_INTERVALS = 3;
const DEDUPE_WINDOW = 1024;
const TOKEN_MARGIN_MS = 10_000;
const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder();
const isNode = typeof process !== "undefined" && !!(process as { versions?: { node?: string } }).versions?.node;

type Verdict = "retry" | "renew" | "final";

function classify(err: unknown): Verdict {
  if (!(err instanceof PlatoError) || err instanceof IPConfError) return "retry";
  const c = err.code;
  if (c === Code.Kicked || c === Code.Replaced || c === Code.OriginRefused) return "final";
  if (c >= 1000 && c <= 1099) return "final";
  if (c >= Code.TokenInvalid && c <= Code.UnknownApp) return "renew";
  return "retry";
}

function classifyIPConf(err: IPConfError): Verdict {
  const c = err.code;
  if ((c >= 1100 && c <= 1199) || (c >= 1400 && c <= 1499) || (c >= 2000 && c <= 2999)) return "final";
  if (err.status === 400 || err.status === 401 || err.status === 403) return "final";
  return "retry";
}

/** An uplink waiting for its UplinkAck. */
interface Pending {
  seq: bigint;
  payload: Uint8Array;
  resent: boolean;
  resolve: () => void;
  reject: (e: Error) => void;
  timer: ReturnType<typeof setTimeout>;
}

/** Where a Resume picks up. */
interface ResumePoint {
  connId: bigint;
  lastDown: bigint;
  upSeq: bigint;
}

/** One logged-in connection. */
class Conn {
  id = 0n;
  heartbeatMs = 30_000;
  upSeq = 0n;
  lastDown = 0n;
  hbSeq = 0n;
  lastSent = Date.now();
  lastRead = Date.now();
  nextBeat = 0;
  timer: ReturnType<typeof setTimeout> | undefined;
  redirect: Redirect | undefined;
  err: Error | undefined;
  ended = false;
  readonly start = Date.now();
  constructor(readonly link: Link, readonly endpoint: string) {}

  write(signal: number, seq: bigint, body?: Uint8Array, flags = 0): boolean {
    const ok = this.link.write(encodeFrame(signal, seq, body, flags));
    if (ok) this.lastSent = Date.now();
    return ok;
  }
}

/** The endpoints being tried and the token to present (ipconf's, the config's, or a Redirect's). */
class Route {
  addrs: string[] = [];
  next = 0;
  token = "";
  expiresMs = 0;
  stale = false;
  fresh = false;
  renewed = false;
  failures = 0;
  constructor(private readonly c: Required<Pick<ClientConfig, "ipconfURL" | "appId" | "did">> & ClientConfig, private readonly transport: "tcp" | "ws") {
    this.addrs = c.endpoints ? [...c.endpoints] : [];
    this.token = c.token ?? "";
  }
  static(): boolean { return (this.c.endpoints?.length ?? 0) > 0; }
  renewable(): boolean { return !this.static() && !this.c.token; }
  expired(): boolean { return this.expiresMs > 0 && Date.now() + TOKEN_MARGIN_MS > this.expiresMs; }
  needsFetch(): boolean {
    return !this.static() && (this.next >= this.addrs.length || ((this.stale || this.expired()) && this.renewable()));
  }
  exhausted(): boolean { return this.next >= this.addrs.length; }
  async advance(dialTimeoutMs: number): Promise<string> {
    if (this.needsFetch()) await this.fetch(dialTimeoutMs);
    if (this.next >= this.addrs.length) {
      this.addrs = [...(this.c.endpoints ?? [])];
      this.next = 0;
    }
    return this.addrs[this.next++];
  }
  private async fetch(timeoutMs: number): Promise<void> {
    let cred: string;
    try {
      cred = typeof this.c.credential === "function" ? await this.c.credential() : this.c.credential ?? "";
    } catch (e) {
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
    } catch (e) {
      if (e instanceof IPConfError) throw e;
      throw new LinkError(`asking ipconf at ${this.c.ipconfURL}: ${errText(e)}`);
    } finally {
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
  refused(): boolean {
    if (!this.renewable() || this.fresh || this.renewed) return false;
    this.stale = true;
    return true;
  }
  connected(): void { this.fresh = false; }
  ended(lasted: boolean, v: Verdict): void {
    if (lasted) this.failures = 0;
    if (lasted || v !== "renew") this.renewed = false;
  }
  redirect(rd: Redirect): void {
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

type Listener<T> = (v: T) => void;

/**
 * PlatoClient is one device's connection to Plato. Create it with {@link PlatoClient.connect};
 * it stays connected (reconnecting and resuming by itself) until close().
 */
export class PlatoClient {
  private readonly cfg: Required<Pick<ClientConfig, "ipconfURL" | "appId" | "did" | "uid" | "platform" | "dialTimeoutMs" | "loginTimeoutMs" | "ackTimeoutMs" | "maxBody" | "reconnect" | "reconnectMinMs" | "reconnectMaxMs">> & ClientConfig;
  private readonly transport: "tcp" | "ws";
  private readonly route: Route;
  private cur: Conn | undefined;
  private readonly pending = new Map<bigint, Pending>();
  private readonly seen = new Set<bigint>();
  private readonly seenOrder: bigint[] = [];
  private seenNext = 0;
  private readonly messageListeners = new Set<Listener<Message>>();
  private readonly stateListeners = new Set<Listener<StateEvent>>();
  private waiters: { resolve: (c: Conn) => void; reject: (e: Error) => void }[] = [];
  private closing = false;
  private finished: Error | null | undefined = undefined;
  private wake: (() => void) | undefined;
  private doneResolve!: (e: Error | undefined) => void;
  /** resolves when the client is closed for good: undefined after close(), else why. */
  readonly done: Promise<Error | undefined>;

  private constructor(c: ClientConfig) {
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
      reconnectMaxMs: c.reconnectMaxMs ?? Math.max(30_000, c.reconnectMinMs ?? 0),
    };
    validate(this.cfg);
    this.transport = c.transport ?? (isNode ? "tcp" : "ws");
    this.route = new Route(this.cfg, this.transport);
    if (c.onMessage) this.messageListeners.add(c.onMessage);
    if (c.onState) this.stateListeners.add(c.onState);
    this.done = new Promise((r) => (this.doneResolve = r));
  }

  /**
   * connect asks ipconf for gateways (unless endpoints are given), dials them in order and logs in.
   * It rejects when every endpoint of the list failed, or at once for a reason retrying cannot
   * fix (a bad credential, an unknown app): a PlatoError or IPConfError with the code.
   */
  static async connect(config: ClientConfig): Promise<PlatoClient> {
    const c = new PlatoClient(config);
    let last: unknown;
    for (let attempt = 1; ; attempt++) {
      try {
        const { conn } = await c.attempt(undefined);
        c.route.connected();
        c.adopt(undefined, conn, false);
        return c;
      } catch (e) {
        last = e;
        const fatal = c.judge(e);
        if (fatal || (c.route.exhausted() && !c.route.stale)) {
          c.finish(fatal ?? (e as Error));
          throw fatal ?? e;
        }
      }
      if (attempt > 64) {
        c.finish(last as Error);
        throw last;
      }
    }
  }

  /** The connection's current ID (0 while none is up). */
  get connId(): bigint { return this.cur?.id ?? 0n; }
  /** The gateway the client is connected to. */
  get endpoint(): string { return this.cur?.endpoint ?? ""; }
  /** Whether a connection is up now. */
  get connected(): boolean { return !!this.cur && !this.cur.ended && this.finished === undefined; }

  /** on subscribes to downlinks ("message") or connection changes ("state"); it returns the unsubscribe function. */
  on(type: "message", fn: Listener<Message>): () => void;
  on(type: "state", fn: Listener<StateEvent>): () => void;
  on(type: "message" | "state", fn: Listener<any>): () => void {
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
  async send(payload: Uint8Array | string): Promise<void> {
    const b = typeof payload === "string" ? utf8.encode(payload) : payload;
    if (b.length > DEFAULT_MAX_BODY) throw new RangeError(`an uplink of ${b.length} bytes: the maximum is ${DEFAULT_MAX_BODY}`);
    const deadline = Date.now() + this.cfg.ackTimeoutMs;
    const conn = await this.ready(deadline);
    return new Promise<void>((resolve, reject) => {
      const seq = ++conn.upSeq;
      const p: Pending = {
        seq, payload: b, resent: false, resolve, reject,
        timer: setTimeout(() => {
          if (this.pending.get(seq) === p) this.pending.delete(seq);
          reject(new AckTimeoutError(seq, this.cfg.ackTimeoutMs));
        }, Math.max(0, deadline - Date.now())),
      };
      this.pending.set(seq, p);
      conn.write(Signal.Uplink, seq, b);
    });
  }

  /** close sends Close 1209, closes the connection and stops reconnecting. */
  async close(): Promise<void> {
    if (this.closing) return;
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
  private ready(deadline: number): Promise<Conn> {
    if (this.finished !== undefined) return Promise.reject(new ClosedError(this.finished ?? undefined));
    if (this.connected) return Promise.resolve(this.cur!);
    return new Promise((resolve, reject) => {
      const w = {
        resolve: (c: Conn) => { clearTimeout(t); resolve(c); },
        reject: (e: Error) => { clearTimeout(t); reject(e); },
      };
      const t = setTimeout(() => {
        this.waiters = this.waiters.filter((x) => x !== w);
        reject(new AckTimeoutError(0n, this.cfg.ackTimeoutMs));
      }, Math.max(0, deadline - Date.now()));
      this.waiters.push(w);
    });
  }

  // attempt dials the next endpoint and logs in there (or resumes from).
  private async attempt(from: ResumePoint | undefined): Promise<{ conn: Conn; resumed: boolean }> {
    const addr = await this.route.advance(this.cfg.dialTimeoutMs);
    const link = await dial(addr, { timeoutMs: this.cfg.dialTimeoutMs, maxBody: this.cfg.maxBody, WebSocket: this.cfg.WebSocket });
    if (this.closing) {
      link.close();
      throw new ClosedError();
    }
    return this.handshake(new Conn(link, addr), from);
  }

  // judge returns the error to give up with, or undefined to try again.
  private judge(e: unknown): Error | undefined {
    if (e instanceof ClosedError) return e;
    if (e instanceof IPConfError) return classifyIPConf(e) === "final" ? e : undefined;
    if (e instanceof TypeError || e instanceof RangeError) return e; // a configuration the runtime cannot follow
    switch (classify(e)) {
      case "final":
        return e as Error;
      case "renew":
        return this.route.refused() ? undefined : (e as Error);
    }
    return undefined;
  }

  // handshake sends Login (or Resume) as the first frame and waits for its answer. The connection
  // goes live in the frame handler itself, so frames right behind the answer (the UplinkAcks and
  // downlinks a Resume brings) are handled as live ones.
  private handshake(conn: Conn, from: ResumePoint | undefined): Promise<{ conn: Conn; resumed: boolean }> {
    const { appId, did, uid, platform } = this.cfg;
    const token = this.route.token;
    return new Promise((resolve, reject) => {
      let settled = false;
      const fail = (e: Error) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        conn.link.onEnd = () => {};
        conn.link.close();
        reject(e);
      };
      const timer = setTimeout(() => fail(new LinkError(`${conn.endpoint}: no LoginAck within ${this.cfg.loginTimeoutMs} ms`)), this.cfg.loginTimeoutMs);
      const live = (f: Frame, resumed: boolean) => {
        const ack = decodeLoginAck(f.body, resumed ? "ResumeAck" : "LoginAck");
        settled = true;
        clearTimeout(timer);
        conn.id = ack.connId;
        conn.heartbeatMs = ack.heartbeatMs > 0 ? ack.heartbeatMs : 30_000;
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
              if (a.code !== Code.OK) return fail(new PlatoError(a.code, a.message, `login at ${conn.endpoint}`));
              return live(f, false);
            }
            case Signal.ResumeAck: {
              const a = decodeLoginAck(f.body, "ResumeAck");
              if (a.code === Code.ResumeRejected) {
                // §11.1: nothing is kept; log in on the same socket.
                conn.write(Signal.Login, 2n, encodeLogin({ appId, did, uid, token, platform }));
                return;
              }
              if (a.code !== Code.OK) return fail(new PlatoError(a.code, a.message, `resume at ${conn.endpoint}`));
              return live(f, true);
            }
            case Signal.Close: {
              const c = decodeCodeMessage(f.body, "Close");
              return fail(new PlatoError(c.code, c.message, `${conn.endpoint} closed the connection during login`));
            }
          }
        } catch (e) {
          fail(e as Error);
        }
      };
      try {
        if (from) {
          conn.write(Signal.Resume, 1n, encodeResume({ appId, did, uid, token, prevConnId: from.connId, lastDownlink: from.lastDown }));
        } else {
          conn.write(Signal.Login, 1n, encodeLogin({ appId, did, uid, token, platform }));
        }
      } catch (e) {
        fail(e as Error);
      }
    });
  }

  private onFrame(conn: Conn, f: Frame): void {
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
    } catch (e) {
      conn.err = e instanceof ProtocolError ? e : new ProtocolError(Code.Malformed, errText(e));
      conn.link.close();
    }
  }

  private downlink(conn: Conn, f: Frame): void {
    const d = decodeDownlink(f.body);
    const retransmit = (f.flags & FLAG_RETRANSMIT) !== 0;
    const broadcast = (f.flags & FLAG_BROADCAST) !== 0;
    if (!((retransmit || broadcast) && this.seen.has(d.msgId))) {
      this.remember(d.msgId);
      const payload = d.payload;
      const m: Message = { seq: f.seq, msgId: d.msgId, payload, retransmit, broadcast, text: () => fromUtf8.decode(payload) };
      for (const fn of [...this.messageListeners]) {
        try {
          fn(m);
        } catch (e) {
          reportListenerError("message", e);
        }
      }
    }
    // Acknowledged once handed over (§8.2); a broadcast is answered with its flag (§8.3).
    if (!broadcast && f.seq > conn.lastDown) conn.lastDown = f.seq;
    conn.write(Signal.DownlinkAck, f.seq, undefined, broadcast ? FLAG_BROADCAST : 0);
  }

  private remember(id: bigint): void {
    if (this.seen.has(id)) return;
    if (this.seenOrder.length < DEDUPE_WINDOW) {
      this.seenOrder.push(id);
    } else {
      this.seen.delete(this.seenOrder[this.seenNext]);
      this.seenOrder[this.seenNext] = id;
      this.seenNext = (this.seenNext + 1) % DEDUPE_WINDOW;
    }
    this.seen.add(id);
  }

  private resolveUplink(seq: bigint, ack: { code: number; message: string }): void {
    const p = this.pending.get(seq);
    if (!p) return;
    this.pending.delete(seq);
    clearTimeout(p.timer);
    if (ack.code === Code.OK || (ack.code === Code.Duplicate && p.resent)) p.resolve(); // §11.1: 1008 on a resent uplink: the server had it
    else p.reject(new PlatoError(ack.code, ack.message, `uplink ${seq} refused`));
  }

  // beat keeps one timer per connection: a Heartbeat once nothing was sent for heartbeat_ms (plus
  // up to 10% jitter, §9), and the connection given up after 3 × heartbeat_ms without a frame read.
  private beat(conn: Conn): void {
    if (conn.ended) return;
    const hb = conn.heartbeatMs;
    if (conn.nextBeat === 0) conn.nextBeat = hb * (1 + Math.random() * HEARTBEAT_JITTER);
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

  private onEnd(conn: Conn, err: Error | undefined): void {
    if (conn.ended) return;
    conn.ended = true;
    clearTimeout(conn.timer);
    conn.err ??= err ?? new LinkError(`${conn.endpoint} closed the connection`);
    if (conn !== this.cur || this.closing || this.finished !== undefined) return; // adopt sees it ended
    this.emitState({ kind: "disconnected", endpoint: conn.endpoint, connId: conn.id, error: conn.err });
    if (!this.cfg.reconnect) {
      this.finish(conn.err);
      return;
    }
    void this.reconnect(conn);
  }

  private async reconnect(old: Conn): Promise<void> {
    const reason = old.err;
    const v = classify(reason);
    this.route.ended(Date.now() - old.start >= this.cfg.reconnectMaxMs, v);
    if (v === "final") return this.finish(reason);
    if (v === "renew" && !this.route.refused()) return this.finish(reason);
    let direct = 0;
    if (old.redirect) {
      this.route.redirect(old.redirect);
      direct = this.route.addrs.length;
    }
    const code = reason instanceof PlatoError ? reason.code : undefined;
    const from: ResumePoint | undefined = code === undefined || isResumable(code) ? { connId: old.id, lastDown: old.lastDown, upSeq: old.upSeq } : undefined;
    let lastErr: Error | undefined;
    for (let attempt = 1; ; attempt++) {
      if (attempt > direct) {
        await this.sleep(backoff(this.route.failures, this.cfg.reconnectMinMs, this.cfg.reconnectMaxMs));
        this.route.failures++;
      }
      if (this.closing) return;
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
      } catch (e) {
        if (this.closing) return;
        const fatal = this.judge(e);
        if (fatal) return this.finish(fatal);
        lastErr = e as Error;
      }
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(() => { this.wake = undefined; resolve(); }, ms);
      this.wake = () => { clearTimeout(t); this.wake = undefined; resolve(); };
    });
  }

  // adopt makes next the client's connection: after a Resume the unanswered uplinks go again with
  // their seqs; after a fresh Login their outcome is unknown.
  private adopt(old: Conn | undefined, next: Conn, resumed: boolean): void {
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
    for (const w of ws) w.resolve(next);
    if (next.ended) {
      // It dropped before it was adopted: handle the drop now.
      next.ended = false;
      this.onEnd(next, next.err);
    }
  }

  private failPending(why: (p: Pending) => Error): void {
    const all = [...this.pending.values()];
    this.pending.clear();
    for (const p of all) {
      clearTimeout(p.timer);
      p.reject(why(p));
    }
  }

  private finish(err: Error | undefined): void {
    if (this.finished !== undefined) return;
    this.finished = err ?? null;
    this.closing = true;
    this.wake?.();
    const closed = new ClosedError(err);
    // Uplinks unanswered when the connection ended for good may or may not have arrived; those
    // unanswered at close() are the app's own doing.
    this.failPending((p) => (err ? new OutcomeUnknownError(p.seq, err) : closed));
    const ws = this.waiters;
    this.waiters = [];
    for (const w of ws) w.reject(closed);
    this.emitState({ kind: "closed", error: err });
    this.doneResolve(err);
  }

  private emitState(s: StateEvent): void {
    for (const fn of [...this.stateListeners]) {
      try {
        fn(s);
      } catch (e) {
        reportListenerError("state", e);
      }
    }
  }
}

// A listener's exception must not break the connection (its frame would go unacknowledged).
function reportListenerError(what: string, e: unknown): void {
  if (typeof console !== "undefined") console.error(`plato: a ${what} listener threw:`, e);
}

/** backoff is full jitter: uniform in [0, min(max, min × 2^n)] (§14.7). */
export function backoff(n: number, minMs: number, maxMs: number, rnd: () => number = Math.random): number {
  if (minMs <= 0 || maxMs <= 0) return 0;
  const bound = n < 52 ? Math.min(maxMs, minMs * 2 ** n) : maxMs;
  return Math.floor(rnd() * (bound + 1));
}

function validate(c: ClientConfig & { uid: string; platform: string; maxBody: number; reconnectMinMs: number; reconnectMaxMs: number }): void {
  const errs: string[] = [];
  if (!c.appId) errs.push("appId is required");
  if (!c.did) errs.push("did is required");
  if (c.endpoints?.length && !c.token) errs.push("token is required when endpoints is set");
  if (!c.endpoints?.length && !c.credential) errs.push("credential is required to ask ipconf (the credential your app's backend issued the device)");
  for (const [k, v] of Object.entries({ appId: c.appId, did: c.did, uid: c.uid, token: c.token ?? "", platform: c.platform })) {
    if (utf8.encode(v).length > MAX_STRING) errs.push(`${k} is longer than ${MAX_STRING} bytes`);
  }
  if (c.maxBody <= 0 || c.maxBody > HARD_MAX_BODY) errs.push(`maxBody ${c.maxBody} is outside 1..${HARD_MAX_BODY}`);
  if (c.reconnectMinMs < 0 || c.reconnectMaxMs < c.reconnectMinMs) errs.push("reconnectMinMs and reconnectMaxMs must satisfy 0 <= min <= max");
  if (errs.length) throw new TypeError("plato: " + errs.join("; "));
}
