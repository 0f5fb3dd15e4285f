package business

import (
	"errors"
	"fmt"

	"github.com/platoim/plato/sdk/business/rpc/plato/api"
)

// Plato's codes a Client call may be refused with (docs/protocol.md §12), and the business code the
// SDK itself answers an uplink with.
const (
	// CodeInvalidArgument: the request is malformed (no target, an unknown QoS, an empty session...).
	CodeInvalidArgument = 1401
	// CodeAppMismatch: the key does not match the app ID (or the app has no key in Plato's
	// state.business.keys), or the call named another app's devices.
	CodeAppMismatch = 1402
	// CodeRefused is the business code an uplink is refused with when its handler failed (an error
	// that is not a *Refusal, or a panic), and what a Refusal outside 2000-2999 becomes.
	CodeRefused = 2000
	// Business codes are 2000-2999, so they never collide with Plato's own.
	minBusinessCode = 2000
	maxBusinessCode = 2999
)

// Error is a call Plato refused. Code is one of Plato's error codes (docs/protocol.md §12):
// CodeInvalidArgument, CodeAppMismatch, and for a Push also 1303 (overloaded, retry later), 1306 (a
// pipeline stage failed) or the code of a stage that refused it. Client methods return it wrapped
// with what was being done; find it with errors.As, or CodeOf.
type Error struct {
	Code    int
	Message string
}

func (e *Error) Error() string { return fmt.Sprintf("plato refused (%d): %s", e.Code, e.Message) }

// CodeOf returns the code of the *Error in err's chain, or 0 when there is none (nil, or a transport
// error: Plato could not be reached, or did not answer in time).
func CodeOf(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return 0
}

// fromPlato turns the Thrift exception into *Error and leaves any other error as it is.
func fromPlato(err error) error {
	var pe *api.PlatoError
	if errors.As(err, &pe) {
		return &Error{Code: int(pe.Code), Message: pe.Message}
	}
	return err
}

// Refusal is an Uplink handler's answer that refuses the message: the device gets Code and Message in
// its UplinkAck. Code is yours, in 2000-2999; anything else is sent as CodeRefused.
type Refusal struct {
	Code    int
	Message string
}

func (r *Refusal) Error() string { return fmt.Sprintf("refused (%d): %s", r.Code, r.Message) }

// Refuse returns a *Refusal, for an Uplink handler to return (possibly wrapped).
func Refuse(code int, message string) error { return &Refusal{Code: code, Message: message} }

// businessCode keeps a refusal's code in the business range, as Plato would.
func businessCode(code int) int32 {
	if code < minBusinessCode || code > maxBusinessCode {
		return CodeRefused
	}
	return int32(code)
}
