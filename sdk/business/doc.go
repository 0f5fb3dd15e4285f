// Package business is what a business server imports to work with Plato, in plain Go: no Thrift, no
// Kitex setup.
//
// Plato and a business server call each other:
//
//   - Plato calls you. Server implements the Business service from Handlers, plain functions: Uplink
//     gets each message a device sent (return nil to accept it, Refuse(code, message) to refuse it
//     with your own code in 2000-2999, which the device sees in its UplinkAck); Sessions answers which
//     sessions (chats, groups, rooms) a device joins when it logs in; Connected, Disconnected,
//     Undelivered and Resumed are notifications. Point Plato's apps.<app>.business at the
//     server's address.
//   - You call Plato. Client calls Plato's RPC on a state server: Push downlinks to dids, uids or a
//     session, Bind and Unbind devices to sessions, Kick devices, ask who is Online. Every call
//     presents the app ID and key of ClientConfig; Plato refuses a wrong key, or another app's
//     devices, with code 1402 (*Error).
//
// docs/business.md in Plato's repository is the integration guide; Plato's demo chat server
// (examples/demo) is a complete example built on this package alone.
//
// # Concurrency
//
// Plato delivers events in batches over several lanes, one call in flight per lane; a connection
// always uses the same lane. So the events of one connection reach the handlers in order (CONNECTED,
// its uplinks in sequence, DISCONNECTED), one at a time, and the events of one batch are handled in
// the order they came; but batches of different lanes, and Sessions calls, run concurrently. Handlers
// must be safe for concurrent use. An uplink's ACK waits for its batch, and so do the uplinks of
// other devices behind it in the lane: keep Uplink quick, and do slow work (pushing to others,
// storage that may stall) off the call, bounded.
//
// A Client is safe for concurrent use; create one per app and keep it.
//
// # Failures
//
// An Uplink handler's error that is not a *Refusal, or its panic, refuses that one uplink with
// CodeRefused (2000) and is logged; the rest of the batch is handled as usual. A panic in a
// notification handler is logged and ignored. A Sessions handler's error or panic fails the call, and
// the sessionbind stage's failure policy decides what happens to the login.
//
// # Buffers
//
// An Uplink's Payload is a copy owned by the handler: keep it as long as you like. Push does not keep
// or change the payload it is given after it returns.
//
// # Signals
//
// Kitex servers stop by themselves on SIGINT and SIGTERM unless told otherwise; Server tells them
// otherwise, so the program that embeds it decides when to Stop.
package business
