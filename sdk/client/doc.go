// Package client is Plato's device SDK: it asks ipconf for gateway endpoints and a token, holds one
// long connection to a gateway, sends uplink messages and receives downlink ones. docs/protocol.md
// describes the wire protocol it speaks.
//
// # Lifecycle
//
// Dial returns a logged-in Client; it makes one pass over the endpoints and fails if none accepts.
// Done is closed, and Err says why, when the client is over for good: Close was called (Err is
// nil), or its connection ended and it does not reconnect. Without Config.Reconnect that is the end
// of the first connection, whatever the reason (a *protocol.Error such as 1203 "replaced by a newer
// login", an I/O error, a server silent for three heartbeat intervals); the application may Dial
// again.
//
// # Reconnecting
//
// With Config.Reconnect the client replaces a connection that ended, unless the reason is final:
//
//   - Final: Close 1202 (kicked) or 1203 (replaced: another device took the did, and coming back
//     would take it back); a protocol violation, 1001-1009 from either side (a bug that a new
//     connection would repeat); a token or app refusal (1101-1105) that persists with a token just
//     fetched from ipconf, or that cannot be renewed (Config.Token or Config.Endpoints set); ipconf
//     refusing the credential (1101-1105, 14xx, or the business's 2000-2999).
//   - Anything else reconnects: I/O errors and silence, 1201, 1204, 1205, 1206, 1207, 1210, 1211,
//     1303, 1307, 1308, business codes, ipconf unreachable or without a gateway (1301, 1302, 1305).
//
// Before each attempt it pauses a random time between 0 and min(ReconnectMax, ReconnectMin·2ⁿ) for
// the nth attempt ("full jitter"), so devices dropped together by a gateway restart come back spread
// out; n keeps growing across connections that last less than ReconnectMax. Each attempt dials the
// next endpoint of the current list; when the list is used up, or the token expired or was refused
// (1101-1105), it first asks ipconf for a fresh list and token (Config.Endpoints are gone round
// again instead).
//
// When the server keeps the lost connection for a while (it broke without a Close, the client heard
// nothing for three heartbeat intervals, or the server closed it with one of the resumable codes of
// docs/protocol.md §11.1: 1201, 1204, 1205, 1207, 1210, 1303, 1307), each attempt sends Resume
// naming the lost connection's conn_id and the highest downlink seq handed to the application on
// it; after any other code it sends Login straight away. When the server resumes (ResumeAck 0), the
// session carries on: downlinks resume after that seq, the uplink seq continues, and uplinks whose
// UplinkAck never came are sent again with their own seqs, before any new one; an UplinkAck 1008
// for such a resend means the server had it, and Send reports success. When the server cannot resume
// (1208), the client sends Login on the same socket: a new connection, whose downlink seqs start at
// 1 again. After any Login the uplinks that were waiting fail with ErrOutcomeUnknown (wrapping why the old
// connection ended): the server may or may not have delivered them, and only the application knows
// whether sending again is safe. The window of recent msg_ids survives reconnects, so a
// retransmitted downlink is still delivered only once.
//
// A Redirect (§11.2) is followed at once: the client Resumes at the endpoints it names, with its
// token when it brings one, and only then sends Close 1209 on the old connection, which it stops
// reading at the Redirect. When none of those endpoints answers it closes the old socket without a
// Close, so the server keeps the state, and reconnects as after any drop.
//
// Send called while the client reconnects waits for the new connection, for as long as its ctx
// allows; its ack timeout runs only while the uplink is on a live connection. Messages keeps
// delivering across reconnects, in order, and is closed only with Done.
//
// Config.OnState follows all this: Connecting (each attempt, Dial's included), Connected (a Login),
// Resumed, Disconnected (with the reason) and, last, Closed (with Err). A failed Dial ends the series
// with Closed too.
//
// # Concurrency
//
// Every method is safe for concurrent use. Uplinks get their sequence numbers and are written under a
// per-connection lock, so they reach the server in increasing order however many goroutines call
// Send. One reader goroutine per connection reads every frame and hands downlinks over in order,
// either to Config.OnDownlink or to the channel returned by Messages; while it waits for the
// application, nothing else is read (not even UplinkAcks), which is the backpressure the server sees.
// When its connection ends, the same goroutine reconnects and hands over to the new connection's
// reader. One heartbeat goroutine per connection sends a Heartbeat whenever nothing was written for
// the interval the server asked for plus up to 10% at random, so that devices which logged in
// together do not beat in step; any other frame counts as a heartbeat. Config.OnState runs on a
// goroutine of its own, one call at a time and in order; it must not block for long, nor call Close.
//
// # Buffers
//
// A Message's Payload belongs to the receiver; Send does not keep its payload after it returns (with
// Reconnect it sends a copy).
package client
