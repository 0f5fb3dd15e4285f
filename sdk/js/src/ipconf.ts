// The ipconf lookup of docs/protocol.md §1.

import { IPConfError } from "./errors.js";

/** One gateway ipconf hands out, best first. */
export interface Endpoint {
  id: string;
  /** host:port for TCP, ws://host:port/plato for WebSocket (transport "ws"). */
  addr: string;
  overloaded?: boolean;
}

/** ipconf's answer to GET /ip/list. */
export interface EndpointList {
  appId: string;
  did: string;
  uid: string;
  endpoints: Endpoint[];
  /** the gateway token to send in Login or Resume. */
  token: string;
  /** the token's expiry, Unix seconds (0: not said). */
  tokenExpiresAt: number;
  /** ipconf could not reach its registry: the list is the last it knew. */
  stale: boolean;
}

export interface FetchEndpointsOptions {
  /** ipconf's base URL, e.g. http://127.0.0.1:8080. */
  ipconfURL: string;
  appId: string;
  did: string;
  /** the credential the app's backend issued the device (docs/security.md). */
  credential: string;
  /** "ws" asks for WebSocket endpoints; "tcp" (the default) for TCP ones. */
  transport?: "tcp" | "ws";
  /**
   * Send the credential as the `token` query parameter instead of an Authorization header (§1: for
   * clients that cannot set headers). A header is the default: URLs end up in logs.
   */
  credentialInQuery?: boolean;
  signal?: AbortSignal;
  /** the fetch to use (default: the global one). */
  fetch?: typeof fetch;
}

/**
 * fetchEndpoints asks ipconf for gateways and a token. An error reply becomes an IPConfError with
 * its HTTP status and §12 code; a network failure rejects with fetch's own error.
 */
export async function fetchEndpoints(o: FetchEndpointsOptions): Promise<EndpointList> {
  const f = o.fetch ?? globalThis.fetch;
  if (typeof f !== "function") throw new TypeError("no fetch in this runtime: pass options.fetch");
  const u = new URL("/ip/list", o.ipconfURL);
  u.searchParams.set("app_id", o.appId);
  u.searchParams.set("did", o.did);
  if (o.transport === "ws") u.searchParams.set("transport", "ws");
  const headers: Record<string, string> = { Accept: "application/json" };
  if (o.credentialInQuery) u.searchParams.set("token", o.credential);
  else headers.Authorization = `Bearer ${o.credential}`;
  const resp = await f(u.toString(), { headers, signal: o.signal });
  const text = await resp.text();
  let body: any;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  if (!resp.ok) {
    const e = body?.error;
    throw new IPConfError(resp.status, typeof e?.code === "number" ? e.code : 0, typeof e?.message === "string" ? e.message : text.slice(0, 200));
  }
  if (!body || !Array.isArray(body.endpoints) || body.endpoints.length === 0 || typeof body.token !== "string") {
    throw new IPConfError(resp.status, 0, `an answer without endpoints or token: ${text.slice(0, 200)}`);
  }
  return {
    appId: String(body.app_id ?? o.appId),
    did: String(body.did ?? o.did),
    uid: String(body.uid ?? ""),
    endpoints: body.endpoints.map((e: any) => ({ id: String(e.id ?? ""), addr: String(e.addr), ...(e.overloaded ? { overloaded: true } : {}) })),
    token: body.token,
    tokenExpiresAt: typeof body.token_expires_at === "number" ? body.token_expires_at : 0,
    stale: body.stale === true,
  };
}
