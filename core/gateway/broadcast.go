package gateway

import (
	"fmt"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/platoim/plato/internal/fanout"
	"github.com/platoim/plato/internal/overload"
	"github.com/platoim/plato/sdk/delivery"
	"github.com/platoim/plato/sdk/protocol"
)

// Reasons a broadcast is dropped as malformed (plato_gateway_broadcasts_malformed_total).
const (
	malformedDecode = iota
	malformedTooLarge
	numMalformed
)

var malformedReasons = [numMalformed]string{"decode", "too_large"}

// malformedLogEvery limits the warning about malformed broadcasts: whoever can publish on the
// subject could otherwise fill the log.
const malformedLogEvery = 10 * time.Second

// subscribeBroadcasts subscribes this gateway to every session broadcast. It is a plain
// subscription, not a queue group: each gateway writes a broadcast to the members it holds. NATS
// calls onBroadcast on one goroutine, in publish order.
func (gw *Gateway) subscribeBroadcasts() error {
	nc := gw.cfg.NATS
	if nc == nil {
		return nil
	}
	sub, err := nc.Subscribe(fanout.Subject, gw.onBroadcast)
	if err != nil {
		return fmt.Errorf("gateway: subscribing to %s: %w", fanout.Subject, err)
	}
	// Once the server has the subscription, a broadcast published after Start reaches this gateway.
	if err := nc.FlushTimeout(gw.cfg.RPCTimeout); err != nil {
		_ = sub.Unsubscribe()
		return fmt.Errorf("gateway: subscribing to %s: %w", fanout.Subject, err)
	}
	gw.sub.Store(sub)
	return nil
}

// broadcastsLost is how many broadcasts NATS dropped before this gateway read them, because its
// fan-out fell behind the subscription's pending limits. The count of a closed subscription can no
// longer be read: the last one read stays.
func (gw *Gateway) broadcastsLost() int64 {
	if sub := gw.sub.Load(); sub != nil {
		if n, err := sub.Dropped(); err == nil {
			gw.metrics.broadcastsLost.Store(int64(n))
		}
	}
	return gw.metrics.broadcastsLost.Load()
}

// stopBroadcasts drains the subscription, letting a fan-out under way finish, so that no broadcast
// is written once Shutdown starts closing connections.
func (gw *Gateway) stopBroadcasts(limit time.Duration) {
	if sub := gw.sub.Load(); sub != nil {
		gw.broadcastsLost()
		closed := sub.StatusChanged(nats.SubscriptionClosed)
		if err := sub.Drain(); err != nil {
			gw.log.Debug("draining the broadcast subscription failed", "err", err)
		} else {
			t := time.NewTimer(limit)
			select {
			case <-closed:
			case <-t.C:
				gw.log.Warn("broadcast subscription did not drain in time", "limit", limit)
				_ = sub.Unsubscribe()
			}
			t.Stop()
		}
	}
	// The subscription may report closed while its last callback still runs.
	gw.fanMu.Lock()
	gw.fanStopped = true
	gw.fanMu.Unlock()
}

// onBroadcast fans one NATS message out to the session's local members.
func (gw *Gateway) onBroadcast(msg *nats.Msg) {
	defer gw.guard(nil, "broadcast")
	gw.fanMu.Lock()
	defer gw.fanMu.Unlock()
	if gw.fanStopped {
		return
	}
	gw.metrics.broadcastsIn.Add(1)
	if gw.overload.Active(overload.ShedBroadcasts) {
		// The last action of a pressed gateway: broadcasts are at most once, and a member that
		// misses one misses what any other drop would have cost it.
		gw.metrics.broadcastsShed.Add(1)
		return
	}
	var m fanout.Message
	if err := m.Decode(msg.Data); err != nil {
		gw.dropBroadcast(malformedDecode, err, len(msg.Data))
		return
	}
	gw.fanOut(&m)
}

// fanOut queues m on every logged-in member of its session and reports how many it reached. The
// frame is encoded once and shared: per member it costs a queue append.
func (gw *Gateway) fanOut(m *fanout.Message) int {
	if 8+len(m.Payload) > gw.cfg.MaxBody {
		gw.dropBroadcast(malformedTooLarge, fmt.Errorf("payload of %d bytes exceeds the device maximum of %d", len(m.Payload), gw.cfg.MaxBody-8), len(m.Payload))
		return 0
	}
	members := gw.sessions.members(sessionKey(m.AppID, m.Session))
	if len(members) == 0 {
		return 0
	}
	if m.QoS == delivery.AtLeastOnce {
		// Before any frame goes out, so that no member's ACK can arrive before it is expected.
		gw.acks.add(m.MsgID, time.Now())
	}
	frame := encodeBroadcast(m)
	n := 0
	// members is a snapshot no lock guards; enqueueing takes only each member's own lock.
	for _, c := range members {
		if c.enqueueBroadcast(frame) {
			n++
		}
	}
	return n
}

// encodeBroadcast builds the Downlink frame of a broadcast: flagged, and with the msg ID as its
// seq, since it is outside every connection's downlink sequence.
func encodeBroadcast(m *fanout.Message) []byte {
	frame := make([]byte, protocol.HeaderLen, protocol.HeaderLen+8+len(m.Payload))
	frame = (&protocol.Downlink{MsgID: m.MsgID, Payload: m.Payload}).Append(frame)
	protocol.PutHeader(frame, protocol.Header{
		Signal: protocol.SigDownlink, Flags: protocol.FlagBroadcast, Seq: m.MsgID,
		Length: uint32(len(frame) - protocol.HeaderLen),
	})
	return frame
}

func (gw *Gateway) dropBroadcast(reason int, err error, size int) {
	gw.metrics.broadcastsMalformed[reason].Add(1)
	if gw.malformedLog.allow(time.Now(), malformedLogEvery) {
		gw.log.Warn("dropping malformed broadcast (logged at most every "+malformedLogEvery.String()+")",
			"subject", fanout.Subject, "bytes", size, "err", err)
		return
	}
	gw.log.Debug("dropping malformed broadcast", "subject", fanout.Subject, "bytes", size, "err", err)
}

// logLimiter lets one caller through per interval.
type logLimiter struct{ last atomic.Int64 }

func (l *logLimiter) allow(now time.Time, every time.Duration) bool {
	last := l.last.Load()
	t := now.UnixNano()
	return t-last >= int64(every) && l.last.CompareAndSwap(last, t)
}
