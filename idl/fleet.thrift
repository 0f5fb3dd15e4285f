// Plato's internal RPC: how the processes of one fleet talk to each other. Gateways deliver device
// events to state servers (the State service); state servers push frames to gateways' connections
// and keep their local session indexes (the Gateway service); a state server that a business calls
// asks the others to act on the connections they hold (State.LocalPush, State.LocalSession).
// Business servers never use it: theirs is plato.thrift.
namespace go plato.fleet

// ---- Types shared by both services ----

// Kind of an UpEvent a gateway forwards to the state server.
enum UpKind {
    FRAME = 0   // a frame the device sent (signal, seq, body as on the wire)
    CLOSED = 1  // the device connection closed; reason is a protocol close code
    // The gateway moves a logged-in connection to this state server: the one that held it was lost.
    // app_id, did, uid, remote_addr, sessions, seq (the last uplink seq answered), down_seq and
    // unacked describe it.
    ADOPTED = 2
}

// One thing that happened on a device connection, in the order it happened.
struct UpEvent {
    1: i64 conn_id
    2: UpKind kind
    3: i8 signal
    4: i16 flags
    5: i64 seq
    6: binary body
    7: i32 reason
    // Login only: what the gateway learned when it verified the token.
    8: string app_id
    9: string did
    10: string uid
    11: string remote_addr
    // W3C traceparent of the gateway's span when the gateway sampled this frame for tracing; the
    // state server continues that trace. Empty: not sampled.
    12: string traceparent
    // ADOPTED only: the sessions the gateway's index holds the connection in, the last downlink seq
    // written to it, and the at-least-once downlinks it has not ACKed (as they were written).
    13: list<string> sessions
    14: i64 down_seq
    15: list<DownFrame> unacked
    // CLOSED only: the state server the connection was on was lost before it heard of the close;
    // app_id, did and uid say whose it was, for the business server's DISCONNECTED.
    16: bool orphan
}

// Kind of a DownFrame the state server asks a gateway to act on.
enum DownAction {
    SEND = 0            // write the frame to the connection
    LOGIN_OK = 1        // write the frame and index the connection by did: login accepted
    SEND_AND_CLOSE = 2  // write the frame (a Close) and close the connection
    RESUME_REFUSED = 3  // write the frame (ResumeAck 1208): the connection expects a Login again
}

struct DownFrame {
    1: i64 conn_id
    2: DownAction action
    3: i8 signal
    4: i16 flags
    5: i64 seq
    6: binary body
    7: string did
    // An at-least-once downlink: the gateway keeps it until the device ACKs it, to hand it to the
    // next state server if this one is lost (UpKind.ADOPTED).
    8: bool track
}

// ---- The gateway's service: the state server pushes frames to device connections through it ----

struct PushRequest {
    1: list<DownFrame> frames
    // Proves the caller is a state server of this fleet: its ID, and hex HMAC-SHA256 over
    // "plato-state\0" + state_id keyed with auth.token_secret (internal/peerauth).
    2: string state_id
    3: string proof
}

struct PushResponse {
    // Connections the gateway no longer holds; the state server forgets them.
    1: list<i64> gone
    // Connections the gateway moved to another state server (this one was thought lost): the
    // state server forgets them without ending them.
    2: list<i64> moved
}

// One connection joining or leaving a session in the gateway's local session index.
struct SessionChange {
    1: i64 conn_id
    2: string session
    3: bool join   // false: leave
}

struct SessionsRequest {
    // Applied in order.
    1: list<SessionChange> changes
    // As in PushRequest.
    2: string state_id
    3: string proof
}

struct SessionsResponse {
    // Connections the gateway no longer holds; their changes were ignored.
    1: list<i64> gone
    // As in PushResponse.
    2: list<i64> moved
}

service Gateway {
    PushResponse Push(1: PushRequest req)
    // Keeps the gateway's session -> connections index in step with the state server's, so that a
    // session broadcast is fanned out locally.
    SessionsResponse Sessions(1: SessionsRequest req)
}

// ---- The state server's internal service: gateways deliver device events. Business servers use
// the Plato service (plato.thrift) on the same address. ----

struct DeliverRequest {
    1: string gateway_id
    2: list<UpEvent> events
    // Proves the caller is a gateway of this fleet: hex HMAC-SHA256 over "plato-gateway\0" +
    // gateway_id, keyed with auth.token_secret (internal/peerauth).
    3: string proof
    // The state server's boot (PingResponse) the gateway believes it talks to; empty: not known yet.
    4: string boot
    // The gateway reads DeliverResponse.acks: the state server may answer the uplinks of these
    // events in the reply, waiting for them up to state.uplink_ack_wait, instead of by
    // Gateway.Push. Unset (a gateway of an earlier version): every answer goes by Push.
    5: bool acks_in_reply
    // Connections named by UplinkAcks of an earlier reply that the gateway no longer holds, or
    // moved to another state server: as in PushResponse. Sent (rarely) in a call of their own.
    6: list<i64> gone
    7: list<i64> moved
}

struct DeliverResponse {
    // The events were meant for a previous run of this state server (boot differs) and were not
    // taken: the gateway is moving those connections here with ADOPTED events.
    1: bool restarted
    // Only with acks_in_reply: UplinkAcks (signal UPLINK_ACK, action SEND) of uplinks of these
    // events, answered while the call waited, each connection's in the order decided. The gateway
    // handles them as frames of a Push; the answers not ready in time go by Push as before.
    2: list<DownFrame> acks
}

// Business calls in a fleet of state servers. The state server a business server calls
// coordinates: it asks every state server (itself included) to act on the connections it holds,
// and merges the answers. Each request carries the business's app ID and key, which every state
// server checks again: these methods share the address business servers reach.

// Where a push target came from, so the coordinator can order and complete the answer.
enum TargetOrigin {
    DID = 0
    UID = 1
    SESSION = 2
}

struct LocalTarget {
    1: string did
    2: string uid
    3: i64 conn_id
    4: i32 status   // plato.api.PushStatus
    5: i64 seq
    6: i32 code
    7: string message
    8: TargetOrigin origin
}

// Push msg_id to the connections this state server holds among dids, the devices of uids and the
// members of session (empty: none), skipping named devices that are members of exclude_session
// (they get that session's broadcast).
struct LocalPushRequest {
    1: string app_id
    11: string key
    2: list<string> dids
    3: list<string> uids
    4: string session
    5: string exclude_session
    6: binary payload
    7: i64 msg_id
    8: i32 qos      // plato.api.QoS, decided by the coordinator's pipeline
    9: bool wait_ack
    10: i32 timeout_ms
}

struct LocalPushResponse {
    // Only connections this state server holds.
    1: list<LocalTarget> targets
}

// Several LocalPushes in one call, acted on in their order (a business PushBatch).
struct LocalPushBatchRequest {
    1: list<LocalPushRequest> pushes
}

struct LocalPushBatchResponse {
    // One per push, in the request's order.
    1: list<LocalPushResponse> results
}

enum SessionOp {
    COUNT = 0       // members held
    BIND = 1        // dids held join session
    REPLACE = 2     // dids held join; other members held leave
    UNBIND = 3      // dids held leave
    DISSOLVE = 4    // every member held leaves
    ONLINE = 5      // list members held (session) or dids held (dids)
    KICK = 6        // close dids held with Close 1202 and message
}

struct LocalDevice {
    1: string did
    2: string uid
    3: string gateway_id
    4: i64 conn_id
    5: string remote_addr
    6: list<string> sessions
}

struct LocalSessionRequest {
    1: string app_id
    6: string key
    2: SessionOp op
    3: string session
    4: list<string> dids
    5: string message
}

struct LocalSessionResponse {
    // Members of the session held after the call.
    1: i32 members
    // BIND/REPLACE: dids bound here; KICK: dids kicked here.
    2: list<string> dids
    // ONLINE.
    3: list<LocalDevice> devices
}

// A gateway asks every state server it forwards to, several times a second, whether it is alive:
// a state server that stops answering is lost, and its connections move to the others.
struct PingRequest {
    1: string gateway_id
    2: string proof   // as in DeliverRequest
}

struct PingResponse {
    // Changes when the state server restarts: a restarted one holds nothing, and its connections
    // are moved to it again (UpKind.ADOPTED).
    1: string boot
}

service State {
    DeliverResponse Deliver(1: DeliverRequest req)
    PingResponse Ping(1: PingRequest req)
    LocalPushResponse LocalPush(1: LocalPushRequest req)
    LocalPushBatchResponse LocalPushBatch(1: LocalPushBatchRequest req)
    LocalSessionResponse LocalSession(1: LocalSessionRequest req)
}
