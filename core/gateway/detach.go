package gateway

import (
	"errors"
	"reflect"
	"runtime"
	"sync/atomic"
	"unsafe"

	"github.com/cloudwego/netpoll"
)

// detachedInput is carry followed by every byte netpoll read from nc's socket and nobody consumed,
// for a connection Detach took off its poller; nc's reader is released. Detach removes the socket
// from epoll but does not wait for the poller: one already reading it finishes its read and adds
// the bytes to the buffer later, and a readiness event it took before may start another read. The
// operator is quiesced first (quiescePoller), so that what is buffered then is all the process
// read; taken earlier, the rest went nowhere and the next process read the stream from a wrong
// offset. err says the poller could not be waited for (netpoll's layout changed, which passBatch
// checks before it detaches): the bytes are returned all the same.
func detachedInput(nc netpoll.Connection, carry []byte) (input []byte, err error) {
	err = quiescePoller(nc)
	input = carry
	r := nc.Reader()
	if n := r.Len(); n > 0 {
		if b, err := r.Next(n); err == nil {
			input = append(append([]byte(nil), input...), b...)
		}
	}
	_ = r.Release()
	return input, err
}

// quiescePoller waits until no poller is reading or writing nc's socket, and keeps one from
// starting: netpoll's FDOperator is "in use" (1) while registered, "doing" (2) while a poller acts
// on it, and a poller acts only on an operator it moves from 1 to 2. Moving it from 1 to 0 is what
// netpoll's own close does (FDOperator.unused, in Free), a step later: after the close callbacks,
// which need the bytes.
func quiescePoller(nc netpoll.Connection) error {
	state, err := pollerState(nc)
	if err != nil || state == nil {
		return err
	}
	for !atomic.CompareAndSwapInt32(state, 1, 0) {
		if atomic.LoadInt32(state) == 0 {
			return nil
		}
		runtime.Gosched()
	}
	return nil
}

// pollerState is the state word of nc's FDOperator; nil when it has none. netpoll v0.7.2 keeps the
// operator in unexported fields: passBatch checks this before it detaches a connection, and a test
// (TestDetachedInputMissesNoByte) fails should the layout change.
func pollerState(nc netpoll.Connection) (*int32, error) {
	v := reflect.ValueOf(nc)
	if v.Kind() != reflect.Pointer || v.IsNil() || v.Elem().Kind() != reflect.Struct {
		return nil, errors.New("unexpected netpoll connection")
	}
	f := v.Elem().FieldByName("operator")
	if !f.IsValid() || f.Type() != reflect.TypeOf((*netpoll.FDOperator)(nil)) {
		return nil, errors.New("unexpected netpoll connection layout")
	}
	sf, ok := reflect.TypeOf(netpoll.FDOperator{}).FieldByName("state")
	if !ok || sf.Type.Kind() != reflect.Int32 {
		return nil, errors.New("unexpected netpoll operator layout")
	}
	op := *(**netpoll.FDOperator)(unsafe.Pointer(f.UnsafeAddr()))
	if op == nil {
		return nil, nil
	}
	return (*int32)(unsafe.Add(unsafe.Pointer(op), sf.Offset)), nil
}
