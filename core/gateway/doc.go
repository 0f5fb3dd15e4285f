// Package gateway is Plato's device-facing TCP server. It keeps sockets and frames and nothing else:
// it parses the fixed header, checks the login token as a cheap first gate, forwards every frame to
// the state server that owns the connection in micro-batches over Kitex, and writes the frames the
// state server pushes back.
//
// Concurrency and memory rules:
//   - Sockets live on netpoll's reactor: no goroutine per connection. A goroutine exists for a
//     connection only while netpoll runs its OnRequest (a frame is arriving) or while a flusher drains
//     its write queue.
//   - Each conn has one mutex guarding its write queue and lifecycle fields. Exactly one flusher at a
//     time writes to the socket (netpoll's writer is not safe for concurrent use); other writers
//     append to the queue, bounded by gateway.write_queue, past which the device is closed as a slow
//     consumer (code 1205) instead of growing memory. The state server's frames and the answers
//     held during a read are flushed on the goroutine that queued them, with one non-blocking write
//     while the socket takes the whole batch; the rest, and every other flush, runs on a writer task
//     (writehere.go).
//   - The connection table is sharded by connection ID; the did index maps app ID + did to the
//     connection that logged in last.
//   - The session index (index.go) maps app ID + session to connections, kept in step by the state
//     server's Sessions calls; a connection leaves all its sessions when it closes. Session
//     broadcasts arrive on NATS (internal/fanout) and are written to the local members as one encoded
//     frame shared by every member's queue.
package gateway
