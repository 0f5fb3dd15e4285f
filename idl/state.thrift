// The state server's internal RPC service: gateways deliver device events. Business servers use
// the Plato service (plato.thrift) on the same address.
namespace go plato.state

include "common.thrift"

struct DeliverRequest {
    1: string gateway_id
    2: list<common.UpEvent> events
    // Proves the caller is a gateway of this fleet: hex HMAC-SHA256 over "plato-gateway\0" +
    // gateway_id, keyed with auth.token_secret (internal/peerauth).
    3: string proof
}

struct DeliverResponse {}

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

service State {
    DeliverResponse Deliver(1: DeliverRequest req)
    LocalPushResponse LocalPush(1: LocalPushRequest req)
    LocalSessionResponse LocalSession(1: LocalSessionRequest req)
}
