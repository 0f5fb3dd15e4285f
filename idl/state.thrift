// The state server's RPC service: gateways deliver device events, business servers push downlinks.
namespace go plato.state

include "common.thrift"

struct DeliverRequest {
    1: string gateway_id
    2: list<common.UpEvent> events
}

struct DeliverResponse {}

// Result of a push to one device connection.
enum PushStatus {
    SENT = 0      // written to the device's gateway; the device has not ACKed yet
    ACKED = 1     // the device ACKed it (only when wait_ack was set)
    OFFLINE = 2   // the did has no logged-in connection of this app
    TIMEOUT = 3   // wait_ack was set and the device did not ACK in time
    FAILED = 4    // the gateway could not be reached or refused it
    REJECTED = 5  // a pipeline stage rejected or dropped it; code and message say why
}

struct PushTarget {
    1: string did
    2: i64 conn_id   // 0 when the did is offline
    3: PushStatus status
    4: i64 seq       // the downlink sequence number the device sees
    5: i32 code      // REJECTED: the stage's code
    6: string message
}

struct PushRequest {
    1: string app_id
    2: list<string> dids
    3: binary payload
    // Wait until every online target ACKed or timeout_ms passed.
    4: bool wait_ack
    5: i32 timeout_ms
    // Push to every did bound to this session (by a stage's Host.Bind) in addition to dids.
    6: string session
}

struct PushResponse {
    1: i64 msg_id
    2: list<PushTarget> targets
}

// A business server's request was refused: code is one of Plato's error codes.
exception StateError {
    1: i32 code
    2: string message
}

service State {
    DeliverResponse Deliver(1: DeliverRequest req)
    PushResponse Push(1: PushRequest req) throws (1: StateError err)
}
