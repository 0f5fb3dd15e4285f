// The gateway's RPC service: the state server pushes frames to device connections through it.
namespace go plato.gateway

include "common.thrift"

struct PushRequest {
    1: list<common.DownFrame> frames
}

struct PushResponse {
    // Connections the gateway no longer holds; the state server forgets them.
    1: list<i64> gone
}

service Gateway {
    PushResponse Push(1: PushRequest req)
}
