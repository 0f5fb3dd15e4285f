package gateway

import (
	"time"

	"go.opentelemetry.io/otel/attribute"
)

// processStart is the origin of monoNow: read once, never changed.
var processStart = time.Now()

// monoNow is the monotonic clock in nanoseconds since the process started: an int64 that a
// pending uplink and its UplinkAck carry instead of a 24-byte time.Time. Never 0 in practice, which
// marks "not known" (an uplink passed from an older process by an upgrade).
func monoNow() int64 { return int64(time.Since(processStart)) + 1 }

// pendingUplink is an uplink forwarded to the state server and not answered yet: its sequence
// number, and when it was read (monoNow).
type pendingUplink struct {
	seq, readAt int64
}

// pendingSeqs are the sequence numbers of pending, for a new process taking the connection over
// (handover.go): read times stay behind, the monotonic clock is this process's.
func pendingSeqs(pending []pendingUplink) []int64 {
	if pending == nil {
		return nil
	}
	seqs := make([]int64, len(pending))
	for i, p := range pending {
		seqs[i] = p.seq
	}
	return seqs
}

// pendingOf is pendingSeqs the other way, on the new process: their read times are not known, so
// their UplinkAcks are not observed.
func pendingOf(seqs []int64) []pendingUplink {
	if seqs == nil {
		return nil
	}
	pending := make([]pendingUplink, len(seqs))
	for i, s := range seqs {
		pending[i] = pendingUplink{seq: s}
	}
	return pending
}

// appUsage is app's usage on this gateway, with its latency series resolved: app is a declared
// app, so the series are as many as the configuration's apps.
func (gw *Gateway) appUsage(app string) *appUsage {
	u := gw.usage.Of(app)
	u.mu.Lock()
	if !u.resolved {
		u.uplinkLatency = gw.uplinkLatency.Observer(attribute.String("app", app))
		u.resolved = true
	}
	u.mu.Unlock()
	return u
}

// observeUplinks observes the latency of the uplinks whose UplinkAcks in q were just written to
// the socket: from the uplink read to its answer written, the state server, its pipeline and the
// business server included.
func observeUplinks(u *appUsage, q []outFrame) {
	now := monoNow()
	for _, o := range q {
		if o.readAt != 0 {
			u.uplinkLatency.Observe(time.Duration(now - o.readAt))
		}
	}
}
