package stage

import "errors"

// ErrClosed is returned by a Processor's Process after Close, and to the calls that were waiting
// when Close ran.
var ErrClosed = errors.New("stage processor closed")

// BatchError is a batch the stage itself failed, in process or out: a handler panicked. It tells
// the host that the stage, not the transport, is at fault. Errors from the transport (the plugin
// died, the stream broke) and from the caller's context are not BatchErrors.
type BatchError struct {
	// Message says what went wrong, e.g. "panic: index out of range".
	Message string
}

// Error implements error.
func (e *BatchError) Error() string { return "stage failed the batch: " + e.Message }
