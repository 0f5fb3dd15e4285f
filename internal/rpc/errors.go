package rpc

import (
	"errors"
	"syscall"

	"github.com/cloudwego/kitex/pkg/kerrors"
	"github.com/cloudwego/netpoll"
)

// ErrKind classifies a failed Kitex call for metrics: a handful of values, so it can be an
// attribute, and an index into a fixed array of counters.
type ErrKind uint8

// The kinds, from the most to the least specific.
const (
	ErrTimeout ErrKind = iota // the call's deadline passed
	ErrConnect                // no connection could be had (peer down, socket missing)
	ErrNetwork                // the connection broke, or the peer answered with a transport error
	ErrOther                  // anything else (a handler's error, a Kitex internal error)
	NumErrKinds
)

var errKindNames = [NumErrKinds]string{"timeout", "connect", "network", "other"}

func (k ErrKind) String() string {
	if k < NumErrKinds {
		return errKindNames[k]
	}
	return "other"
}

// KindOf classifies err, the error of a Kitex client call.
func KindOf(err error) ErrKind {
	switch {
	case kerrors.IsTimeoutError(err):
		return ErrTimeout
	case errors.Is(err, kerrors.ErrGetConnection), errors.Is(err, kerrors.ErrNoConnection):
		return ErrConnect
	case errors.Is(err, kerrors.ErrRemoteOrNetwork):
		return ErrNetwork
	}
	return ErrOther
}

// Refused reports whether err is a connection the peer's host refused: no process listens at its
// address any more, so whatever it held in memory is gone. netpoll reports a refused dial as its
// ErrConnClosed, not ECONNREFUSED.
func Refused(err error) bool {
	if errors.Is(err, syscall.ECONNREFUSED) {
		return true
	}
	return errors.Is(err, kerrors.ErrGetConnection) && errors.Is(err, netpoll.ErrConnClosed)
}
