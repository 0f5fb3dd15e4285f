// What a business server implements: Plato delivers uplinks and connection events to it, and asks it
// which sessions a device joins. Business servers import the generated code from
// github.com/platoim/plato/sdk/business/rpc (or use sdk/business, which wraps it).
namespace go plato.business

enum EventKind {
    UPLINK = 0        // a device sent a message; answer accepted (code 0) or refused
    CONNECTED = 1     // a device logged in
    DISCONNECTED = 2  // a device connection closed
    UNDELIVERED = 3   // a downlink was given up on (the retransmit stage ran out of attempts, or the connection closed first)
    RESUMED = 4       // a device resumed its previous connection (reserved: Resume is answered 1208 today)
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

service Business {
    DeliverResponse Deliver(1: DeliverRequest req)
    SessionsResponse Sessions(1: SessionsRequest req)
}
