package gateway

// What the external tests (package gateway_test, on gatewaytest) reach inside a gateway. Nothing
// here is part of the gateway's API.

import (
	"time"

	"github.com/nats-io/nats.go"

	"github.com/platoim/plato/sdk/protocol"
)

// BeforeFrame makes gw call f before it handles each complete device frame, on the goroutine that
// read it, as the code a hostile frame reaches would run: a test panics in f to play a bug. Call it
// before Start (gatewaytest.Options.BeforeStart).
func BeforeFrame(gw *Gateway, f func(h protocol.Header, body []byte)) {
	next := gw.onFrame
	gw.onFrame = func(c *conn, h protocol.Header, body []byte) {
		f(h, body)
		next(c, h, body)
	}
}

// MalformedBroadcasts is how many broadcasts gw dropped for reason ("decode", "too_large").
func MalformedBroadcasts(gw *Gateway, reason string) int64 {
	for i, r := range malformedReasons {
		if r == reason {
			return gw.metrics.broadcastsMalformed[i].Load()
		}
	}
	panic("no malformed broadcast reason " + reason)
}

// AwaitsAcks reports whether gw forwards device ACKs of broadcast msgID now.
func AwaitsAcks(gw *Gateway, msgID uint64) bool { return gw.acks.has(msgID, time.Now()) }

// BroadcastSubscription is gw's NATS subscription to broadcasts; nil before Start or without NATS.
func BroadcastSubscription(gw *Gateway) *nats.Subscription { return gw.sub.Load() }

// Holds reports whether gw's connection table has connection id.
func Holds(gw *Gateway, id uint64) bool { return gw.conns.get(id) != nil }

// ConnIDs lists the connections in gw's table, logged in or not, in no particular order.
func ConnIDs(gw *Gateway) []uint64 {
	var ids []uint64
	gw.conns.each(func(c *conn) { ids = append(ids, c.id) })
	return ids
}

// ConnSessions is what connection id remembers of its sessions; held is false when gw no longer
// has the connection.
func ConnSessions(gw *Gateway, id uint64) (sessions []string, held bool) {
	c := gw.conns.get(id)
	if c == nil {
		return nil, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sessionsLocked(), true
}

// ConnHasCold reports whether connection id holds a connCold (conncold.go); held is false when gw
// no longer has the connection.
func ConnHasCold(gw *Gateway, id uint64) (cold, held bool) {
	c := gw.conns.get(id)
	if c == nil {
		return false, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cold != nil, true
}

// IdleWriters reports the flush workers gw keeps waiting (taskrun.Runner): a test that counts
// goroutines leaves them out, as it leaves out netpoll's (NetpollIdleWorkers).
func IdleWriters(gw *Gateway) int { return gw.writers.Idle() }

// RaceEnabled reports whether the test binary runs with the race detector, which allocates: the
// allocation tests skip themselves then.
const RaceEnabled = raceEnabled

// FramesIn is how many frames of signal sig gw has read from devices.
func FramesIn(gw *Gateway, sig protocol.Signal) int64 { return gw.metrics.framesIn.Load(uint8(sig)) }

// Flushing reports whether a flush of connection id is under way (writehere.go): after a Push has
// returned, only a writer finishing what the socket did not take.
func Flushing(gw *Gateway, id uint64) bool {
	c := gw.conns.get(id)
	if c == nil {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.flushing
}
