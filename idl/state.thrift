// The state server's internal RPC service: gateways deliver device events. Business servers use
// the Plato service (plato.thrift) on the same address.
namespace go plato.state

include "common.thrift"

struct DeliverRequest {
    1: string gateway_id
    2: list<common.UpEvent> events
}

struct DeliverResponse {}

service State {
    DeliverResponse Deliver(1: DeliverRequest req)
}
