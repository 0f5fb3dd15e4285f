// Types shared by Plato's internal RPC services.
namespace go plato.common

// Kind of an UpEvent a gateway forwards to the state server.
enum UpKind {
    FRAME = 0   // a frame the device sent (signal, seq, body as on the wire)
    CLOSED = 1  // the device connection closed; reason is a protocol close code
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
}

// Kind of a DownFrame the state server asks a gateway to act on.
enum DownAction {
    SEND = 0            // write the frame to the connection
    LOGIN_OK = 1        // write the frame and index the connection by did: login accepted
    SEND_AND_CLOSE = 2  // write the frame (a Close) and close the connection
}

struct DownFrame {
    1: i64 conn_id
    2: DownAction action
    3: i8 signal
    4: i16 flags
    5: i64 seq
    6: binary body
    7: string did
}
