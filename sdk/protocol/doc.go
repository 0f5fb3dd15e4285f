// Package protocol is Plato's device wire protocol: the fixed frame header, the signals, their bodies
// and the error codes. docs/protocol.md is the normative description; this package is its Go encoding.
//
// A frame is a 20-byte header followed by a body of at most the receiver's maximum size:
//
//	0      2        3       4       6          8                16            20
//	+------+--------+-------+-------+----------+----------------+-------------+------
//	| 'PL' | version| signal| flags | reserved | sequence (u64) | length (u32)| body
//	+------+--------+-------+-------+----------+----------------+-------------+------
//
// All integers are big-endian. The length is checked against the maximum before any body byte is
// read, so a hostile length never causes an unbounded read or allocation.
//
// Decoders here never panic on input: every malformed frame or body is an *Error carrying the code
// the receiver closes the connection with.
package protocol
