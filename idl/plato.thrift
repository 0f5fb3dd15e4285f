// Plato's RPC for business servers, served by every state server (default 127.0.0.1:8901): push
// downlinks, bind devices to sessions, kick devices, ask who is online. Every request names its
// caller: the app ID and that app's key (state.business.keys in Plato's config). A call whose key
// does not match, or that names another app's devices, is refused with code 1402.
//
// It also defines what a business server implements, the Business service: Plato delivers uplinks
// and connection events to it, and asks it which sessions a device joins. Business servers in Go
// import the generated code from github.com/platoim/plato/sdk/business/rpc (or use sdk/business,
// which wraps it); in another language, generate from this file.
namespace go plato.api

// Who is calling. Checked on every call.
struct Caller {
    1: string app_id
    2: string key
}

// How hard Plato tries to deliver a push.
enum QoS {
    DEFAULT = 0        // what the app's pipeline decides (the qosroute stage); at least once without one
    AT_MOST_ONCE = 1   // sent once; no ACK is waited for and nothing is resent
    AT_LEAST_ONCE = 2  // resent until the device ACKs (through the retransmit stage), or given up on and reported UNDELIVERED
}

// The path a push took.
enum Route {
    DIRECT = 0     // one frame per device connection, sent over RPC to the gateway holding it
    BROADCAST = 1  // one message over NATS that every gateway receives and fans out to its local session members
}

// Result of a push to one device connection.
enum PushStatus {
    SENT = 0      // written to the device's gateway; the device has not ACKed yet
    ACKED = 1     // the device ACKed it (only when wait_ack was set)
    OFFLINE = 2   // the did (or uid) has no logged-in connection of this app
    TIMEOUT = 3   // wait_ack was set and the device did not ACK in time
    FAILED = 4    // the gateway could not be reached or refused it
    REJECTED = 5  // a pipeline stage rejected or dropped it; code and message say why
    QUEUED = 6    // the device is reconnecting: kept for state.reconnect_window and sent when it resumes (docs/protocol.md §11.1)
}

struct PushTarget {
    1: string did
    2: i64 conn_id   // 0 when offline
    3: PushStatus status
    4: i64 seq       // the downlink sequence number the device sees
    5: i32 code      // REJECTED: the stage's code
    6: string message
    7: string uid    // set when the target was named by uid
}

struct PushRequest {
    1: Caller caller
    // Targets: any mix of dids, uids (every logged-in device of each) and one session. At least one.
    2: list<string> dids
    3: list<string> uids
    4: string session
    5: binary payload
    6: QoS qos
    // Wait until every directly sent target ACKed or timeout_ms passed (direct path only).
    7: bool wait_ack
    8: i32 timeout_ms
}

struct PushResponse {
    1: i64 msg_id
    // One per did and per device of each uid; session members too when the session went direct.
    2: list<PushTarget> targets
    // How the session part went (DIRECT when no session was named).
    3: Route route
    4: QoS qos
    // Members of the session on this state server when it was pushed.
    5: i32 session_members
}

// Many pushes in one call (PushBatch). Each push is a PushRequest as for Push; its own caller may be
// left out (the batch's applies), and if set must name the batch's app with a valid key. At most
// 1,000 pushes, and at most 100,000 dids and uids named over the whole batch.
struct PushBatchRequest {
    1: Caller caller
    2: list<PushRequest> pushes
}

// The outcome of one push of a batch: its response as Push would answer it, or the error Push would
// have thrown (then response is unset). One push's error does not affect the others.
struct PushOutcome {
    1: optional PushResponse response
    2: optional PlatoError error
}

struct PushBatchResponse {
    // One per push, in the request's order.
    1: list<PushOutcome> results
}

struct BindRequest {
    1: Caller caller
    2: string session
    // The logged-in connections of these dids join the session.
    3: list<string> dids
    // Update: the session's members become exactly dids (the others leave).
    4: bool replace
}

struct BindResponse {
    // dids that had no logged-in connection, so were not bound; a device binds when it is online
    // (the sessionbind stage binds it again at each login).
    1: list<string> offline
    // Members after the call.
    2: i32 members
}

struct UnbindRequest {
    1: Caller caller
    2: string session
    // These dids leave the session; empty with all set dissolves it.
    3: list<string> dids
    4: bool all
}

struct UnbindResponse {
    1: i32 members
}

struct KickRequest {
    1: Caller caller
    2: list<string> dids
    // Shown to the device in its Close 1202.
    3: string message
}

struct KickResponse {
    // dids whose connection was closed; the rest were not online.
    1: list<string> kicked
}

struct OnlineRequest {
    1: Caller caller
    // Who of the session is online; or, with dids set instead, which of these dids are.
    2: string session
    3: list<string> dids
}

struct Device {
    1: string did
    2: string uid
    3: string gateway_id
    4: i64 conn_id
    5: string remote_addr
    6: list<string> sessions
}

struct OnlineResponse {
    1: list<Device> devices
}

// A refused call: code is one of Plato's error codes (docs/protocol.md): 1401 invalid argument,
// 1402 wrong key or another app's target.
exception PlatoError {
    1: i32 code
    2: string message
}

service Plato {
    PushResponse Push(1: PushRequest req) throws (1: PlatoError err)
    // Pushes in order: downlinks to one device connection keep the batch's order. Thrown only when
    // the whole batch is refused (caller, size); a push's own refusal is in its PushOutcome.
    PushBatchResponse PushBatch(1: PushBatchRequest req) throws (1: PlatoError err)
    BindResponse Bind(1: BindRequest req) throws (1: PlatoError err)
    UnbindResponse Unbind(1: UnbindRequest req) throws (1: PlatoError err)
    KickResponse Kick(1: KickRequest req) throws (1: PlatoError err)
    OnlineResponse Online(1: OnlineRequest req) throws (1: PlatoError err)
}

// ---- What a business server implements ----

enum EventKind {
    UPLINK = 0        // a device sent a message; answer accepted (code 0) or refused
    CONNECTED = 1     // a device logged in
    DISCONNECTED = 2  // a device connection closed
    UNDELIVERED = 3   // a downlink was given up on (the retransmit stage ran out of attempts, or the connection closed first)
    RESUMED = 4       // a device resumed its connection after a drop (docs/protocol.md §11.1); conn_id is unchanged, gateway_id the new gateway
}

struct Event {
    1: EventKind kind
    2: string app_id
    3: string did
    4: string uid
    5: i64 conn_id
    6: i64 seq        // UPLINK: the device's sequence number on this connection
    7: binary payload // UPLINK: the message body
    8: i32 reason     // DISCONNECTED: protocol close code
    9: string gateway_id
    10: i64 msg_id    // UNDELIVERED: the message given up on (seq is its downlink seq)
    11: i32 attempts  // UNDELIVERED: how many times it was sent
    // UPLINK, when the message is sampled for tracing: the W3C traceparent of Plato's span of this
    // delivery, so the business server's spans join the message's trace. Empty otherwise.
    12: string traceparent
}

struct Result {
    // 0 accepted; otherwise a business error code (>= 2000) sent to the device in its uplink ACK.
    1: i32 code
    2: string message
}

struct DeliverRequest {
    1: list<Event> events
}

struct DeliverResponse {
    // One result per event, in order. Missing results count as accepted.
    1: list<Result> results
}

// A device is logging in: which sessions should its connection join? Asked by the sessionbind stage.
struct SessionsRequest {
    1: string app_id
    2: string did
    3: string uid
    4: i64 conn_id
    5: string gateway_id
    6: string platform
}

struct SessionsResponse {
    // Sessions (chats, groups, rooms) the connection joins; empty joins none.
    1: list<string> sessions
}

// A device asks ipconf for endpoints with a credential your backend gave it, and your app is
// configured with apps.<app>.auth.callback: who is it? Asked once per ipconf request; the answer
// is bound into the gateway token Plato issues.
struct AuthenticateRequest {
    1: string app_id
    // The device the request claims to be (ipconf's did parameter). Answer another did to move
    // the device to it, or refuse.
    2: string did
    // Whatever the device sent as its credential (Authorization: Bearer, or the token parameter).
    3: string credential
    4: string remote_addr
}

struct AuthenticateResponse {
    // 0 accepted; otherwise refused with your code (2000-2999), which the device gets in ipconf's
    // 401 answer.
    1: i32 code
    2: string message
    // Who the device is, when accepted: a uid is required; an empty did means the claimed one.
    3: string uid
    4: string did
    // Unix seconds after which the credential no longer vouches for the device: the gateway
    // token expires then at the latest. 0: Plato's own token lifetime (auth.token_ttl).
    5: i64 expires_at
}

service Business {
    DeliverResponse Deliver(1: DeliverRequest req)
    SessionsResponse Sessions(1: SessionsRequest req)
    AuthenticateResponse Authenticate(1: AuthenticateRequest req)
}
