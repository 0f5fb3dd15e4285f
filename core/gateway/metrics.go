package gateway

import (
	"sync/atomic"

	"github.com/platoim/plato/idl/kitex_gen/plato/common"
	"github.com/platoim/plato/sdk/protocol"
)

// metrics are the gateway's counters; Stats exposes a snapshot and the load report reads them.
type metrics struct {
	accepted, closed, logins, loginsRefused atomic.Int64
	framesIn, bytesIn, bytesOut             atomic.Int64
	protocolErrors, slowConsumers           atomic.Int64
	forwardRefused, deliverErrors           atomic.Int64
}

// Stats is a snapshot of the gateway's counters since it started.
type Stats struct {
	Conns          int
	Accepted       int64
	Closed         int64
	Logins         int64
	LoginsRefused  int64
	FramesIn       int64
	BytesIn        int64
	BytesOut       int64
	ProtocolErrors int64
	SlowConsumers  int64
	ForwardRefused int64
	DeliverErrors  int64
}

// Stats returns the current counters.
func (gw *Gateway) Stats() Stats {
	m := &gw.metrics
	return Stats{
		Conns: gw.conns.len(), Accepted: m.accepted.Load(), Closed: m.closed.Load(), Logins: m.logins.Load(),
		LoginsRefused: m.loginsRefused.Load(), FramesIn: m.framesIn.Load(), BytesIn: m.bytesIn.Load(),
		BytesOut: m.bytesOut.Load(), ProtocolErrors: m.protocolErrors.Load(), SlowConsumers: m.slowConsumers.Load(),
		ForwardRefused: m.forwardRefused.Load(), DeliverErrors: m.deliverErrors.Load(),
	}
}

// closeCode reads the reason out of a Close or LoginAck frame the state server sends before closing.
func closeCode(f *common.DownFrame) protocol.Code {
	switch protocol.Signal(f.Signal) {
	case protocol.SigClose:
		var m protocol.Close
		if m.Decode(f.Body) == nil {
			return m.Code
		}
	case protocol.SigLoginAck:
		var m protocol.LoginAck
		if m.Decode(f.Body) == nil {
			return m.Code
		}
	}
	return protocol.CodeClientClose
}
