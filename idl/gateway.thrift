// The gateway's RPC service: the state server pushes frames to device connections through it.
namespace go plato.gateway

include "common.thrift"

struct PushRequest {
    1: list<common.DownFrame> frames
    // Proves the caller is a state server of this fleet: its ID, and hex HMAC-SHA256 over
    // "plato-state\0" + state_id keyed with auth.token_secret (internal/peerauth).
    2: string state_id
    3: string proof
}

struct PushResponse {
    // Connections the gateway no longer holds; the state server forgets them.
    1: list<i64> gone
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
}

service Gateway {
    PushResponse Push(1: PushRequest req)
    // Keeps the gateway's session -> connections index in step with the state server's, so that a
    // session broadcast is fanned out locally.
    SessionsResponse Sessions(1: SessionsRequest req)
}
