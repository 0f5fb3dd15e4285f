// Package state is Plato's state server: it owns everything about a device connection except the
// socket (did, uid, app ID, gateway, sequence numbers, heartbeat deadline, downlinks waiting for an
// ACK), receives device frames from gateways in batches, delivers uplinks and connection events to
// business servers in batches, and pushes business downlinks to devices through their gateways.
//
// Ordering: a gateway sends one connection's events on one lane, one batch at a time, and Deliver
// processes a batch in order without blocking on I/O; business deliveries use the connection ID as
// their lane too. So a business server sees CONNECTED, then the device's uplinks in order, then
// DISCONNECTED, and a device's uplink ACKs come back in order.
//
// Concurrency: the connection registry is sharded; each connection's mutable fields are guarded by
// its own mutex. Heartbeat deadlines are timers on one timing wheel that check a last-seen timestamp,
// so a frame costs an atomic store, not a timer reset.
package state
