// Package client is Plato's device SDK: it asks ipconf for gateway endpoints and a token, holds one
// long connection to a gateway, sends uplink messages and receives downlink ones. docs/protocol.md
// describes the wire protocol it speaks.
//
// # Lifecycle
//
// Dial returns a logged-in Client. The connection ends when the server closes it (Err then returns a
// *protocol.Error such as 1203 "replaced by a newer login"), on an I/O error or a server that stays
// silent for three heartbeat intervals, or when Close is called. The SDK does not reconnect by itself:
// watch Done and Dial again, so the application decides about backoff and about messages in flight.
//
// # Concurrency
//
// Every method is safe for concurrent use. Frames are written under one mutex, so uplink sequence
// numbers reach the server in increasing order however many goroutines call Send. One reader goroutine
// reads every frame and hands downlinks over in order, either to Config.OnDownlink or to the channel
// returned by Messages; while it waits for the application, nothing else is read (not even UplinkAcks),
// which is the backpressure the server sees. One heartbeat goroutine sends a Heartbeat whenever nothing
// was written for the interval the server asked for.
//
// # Buffers
//
// A Message's Payload belongs to the receiver; Send does not keep its payload after it returns.
package client
