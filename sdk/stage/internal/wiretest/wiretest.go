// Package wiretest lets sdk/stage's own test plugin misbehave on the data socket, so that the
// host's defences can be tested against a real process. Only code of the sdk/stage module can
// import it: no stage built outside this module can implement it by accident.
package wiretest

// RawResults is implemented by a test stage that wants to replace the frame answering a batch on
// the data socket. RawResultFrame is given the payload of the batch's first event and returns
// the bytes to write instead of the length-prefixed Results (header included), or ok false to
// answer normally.
type RawResults interface {
	RawResultFrame(payload []byte) (frame []byte, ok bool)
}
