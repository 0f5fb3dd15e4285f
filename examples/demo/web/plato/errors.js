// Plato's codes (docs/protocol.md §12) and the errors that carry them.
/** The codes of docs/protocol.md §12. A device must accept any code: use {@link codeName} or the range. */
export const Code = {
    OK: 0,
    BadMagic: 1001,
    BadVersion: 1002,
    FrameTooLarge: 1003,
    UnknownSignal: 1004,
    Malformed: 1005,
    NotLoggedIn: 1006,
    AlreadyLogged: 1007,
    Duplicate: 1008,
    BadDirection: 1009,
    TokenInvalid: 1101,
    TokenExpired: 1102,
    TokenMismatch: 1103,
    Forbidden: 1104,
    UnknownApp: 1105,
    OriginRefused: 1106,
    HeartbeatTimeout: 1201,
    Kicked: 1202,
    Replaced: 1203,
    ShuttingDown: 1204,
    SlowConsumer: 1205,
    LoginTimeout: 1206,
    Migrated: 1207,
    ResumeRejected: 1208,
    ClientClose: 1209,
    StateLost: 1210,
    ConnectionLost: 1211,
    BusinessUnavailable: 1301,
    BusinessTimeout: 1302,
    Overloaded: 1303,
    NoBusiness: 1304,
    NoGateway: 1305,
    PipelineFailed: 1306,
    Internal: 1307,
    RateLimited: 1308,
    InvalidArgument: 1401,
    AppMismatch: 1402,
};
const names = new Map(Object.entries(Code).map(([k, v]) => [v, k]));
/** codeName is the §12 name of code, "Business(2042)" for a business code, "Code(n)" for an unknown one. */
export function codeName(code) {
    const n = names.get(code);
    if (n !== undefined)
        return n;
    if (code >= 2000 && code <= 2999)
        return `Business(${code})`;
    return `Code(${code})`;
}
/** isBusinessCode says whether code was passed through from the business server (2000-2999). */
export function isBusinessCode(code) {
    return code >= 2000 && code <= 2999;
}
const resumableCodes = new Set([
    Code.HeartbeatTimeout, Code.ShuttingDown, Code.SlowConsumer, Code.Migrated,
    Code.StateLost, Code.ConnectionLost, Code.Overloaded, Code.Internal,
]);
/** isResumable says whether a connection closed with code is kept by the server for a Resume (§11.1). */
export function isResumable(code) {
    return resumableCodes.has(code);
}
/**
 * PlatoError is a refusal or a close from Plato, with its §12 code: an UplinkAck, LoginAck or
 * ResumeAck with a non-zero code, a Close frame, or an ipconf error reply.
 */
export class PlatoError extends Error {
    constructor(code, detail = "", what = "") {
        super(`${what ? what + ": " : ""}${code} ${codeName(code)}${detail ? ": " + detail : ""}`);
        this.name = "PlatoError";
        this.code = code;
        this.detail = detail;
    }
}
/** IPConfError is an error reply from ipconf: its HTTP status and §12 code (0 when the body had none). */
export class IPConfError extends PlatoError {
    constructor(status, code, detail) {
        super(code, detail, `ipconf HTTP ${status}`);
        this.name = "IPConfError";
        this.status = status;
    }
}
/**
 * AckTimeoutError: no UplinkAck within ackTimeoutMs. The uplink may or may not have arrived (§8.1);
 * seq 0 means it was never sent: no connection came up in time.
 */
export class AckTimeoutError extends Error {
    constructor(seq, ms) {
        super(seq === 0n
            ? `no connection within ${ms} ms: the uplink was not sent`
            : `no UplinkAck for uplink ${seq} within ${ms} ms: it may or may not have arrived`);
        this.name = "AckTimeoutError";
        this.seq = seq;
    }
}
/**
 * OutcomeUnknownError: the connection was lost with the uplink unanswered and could not be resumed
 * (the server answered Resume with 1208, or reconnecting is off), so whether it arrived is unknown.
 */
export class OutcomeUnknownError extends Error {
    constructor(seq, why) {
        super(`uplink ${seq}: the connection was lost before its UplinkAck and could not be resumed (${errText(why)}): it may or may not have arrived`);
        this.name = "OutcomeUnknownError";
        this.seq = seq;
    }
}
/** ClosedError: the client is closed (by close(), or for good by the server: see cause). */
export class ClosedError extends Error {
    constructor(why) {
        super(why ? `plato client closed: ${errText(why)}` : "plato client closed");
        this.name = "ClosedError";
        if (why !== undefined)
            this.cause = why;
    }
}
/** ProtocolError: a frame that breaks docs/protocol.md §3-§4 (code 1001-1005). */
export class ProtocolError extends PlatoError {
    constructor() {
        super(...arguments);
        this.name = "ProtocolError";
    }
}
/** codeOf is the §12 code an error carries, or undefined. */
export function codeOf(err) {
    return err instanceof PlatoError ? err.code : undefined;
}
export function errText(e) {
    return e instanceof Error ? e.message : String(e);
}
