package platform_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/platoim/plato/core/platform/platformtest"
	"github.com/platoim/plato/internal/config"
	"github.com/platoim/plato/sdk/business/rpc/plato/api"
	"github.com/platoim/plato/sdk/poll"
	"github.com/platoim/plato/sdk/protocol"
)

// The gateway asks for UplinkAcks in the Deliver reply: with a business server that answers within
// state.uplink_ack_wait every one comes back that way, no Push call, and the gateway observes the
// uplink's latency when it writes it. One the business answers later than the wait goes by Push;
// the next quick answer rides the reply again.
func TestUplinkAcksRideTheDeliverReply(t *testing.T) {
	p, biz := startAll(t, func(c *config.Config) { c.State.UplinkAckWait = time.Second })
	alice := dial(t, p, "alice")
	admin := p.Admin.Addr()
	count := func(name string, labels ...string) float64 { return scrapeMetrics(t, admin).sum(name, labels...) }
	latency0 := count("plato_gateway_uplink_latency_seconds_count", `app="demo"`)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	send := func(payload string) {
		t.Helper()
		if err := alice.Send(ctx, []byte(payload)); err != nil {
			t.Fatalf("send %q: %v", payload, err)
		}
	}
	for i := range 10 {
		send(fmt.Sprintf("quick %d", i))
	}
	if n := len(biz.Events(api.EventKind_UPLINK, "alice")); n != 10 {
		t.Fatalf("business has %d uplinks, want 10", n)
	}
	reply, push := count("plato_state_uplink_acks_sent_total", `path="reply"`), count("plato_state_uplink_acks_sent_total", `path="push"`)
	if reply != 10 || push != 0 {
		t.Fatalf("acks in replies %v, by push %v; want 10 and 0", reply, push)
	}
	if got := count("plato_gateway_reply_uplink_acks_total"); got != 10 {
		t.Errorf("gateway counted %v acks in replies, want 10", got)
	}
	// The histogram is observed once the flush is done, just after the device may read the ack.
	poll.Until(t, "the gateway to observe the 10 uplinks' latency", func() bool {
		return count("plato_gateway_uplink_latency_seconds_count", `app="demo"`)-latency0 == 10
	})

	biz.SetAnswer(func(ev *api.Event) *api.Result_ {
		if bytes.Equal(ev.Payload, []byte("slow")) {
			time.Sleep(1500 * time.Millisecond) // longer than the wait
		}
		return nil
	})
	send("slow")
	if got := count("plato_state_uplink_acks_sent_total", `path="push"`); got != 1 {
		t.Fatalf("acks by push %v after an answer later than the wait, want 1", got)
	}
	if got := count("plato_state_deliver_waits_total", `result="timeout"`); got != 1 {
		t.Errorf("waits timed out %v, want 1", got)
	}
	send("quick again")
	if got := count("plato_state_uplink_acks_sent_total", `path="reply"`); got != 11 {
		t.Errorf("acks in replies %v once the business is quick again, want 11", got)
	}
}

// A device's heartbeats through a real gateway and state server: no stage acts on heartbeats, so
// each HeartbeatAck is decided in the Deliver call that carried the heartbeat and rides its reply.
// The device reads every answer, and the state server makes no Push call for them.
func TestHeartbeatAcksRideTheDeliverReply(t *testing.T) {
	p, _ := startAll(t, nil)
	admin := p.Admin.Addr()
	count := func(name string, labels ...string) float64 { return scrapeMetrics(t, admin).sum(name, labels...) }
	c := rawDial(t, p.Gateway.Addr())
	c.login(mustSigner(t, platformtest.Secret), "hb")
	pushCalls := func() float64 { return count("plato_state_gateway_call_seconds_count", `method="push"`) }
	// The LoginAck's Push call is counted when it returns, after the device may have read it.
	poll.Until(t, "the LoginAck's Push call to be counted", func() bool { return pushCalls() >= 1 })
	pushes := pushCalls()
	const beats = 5
	for seq := uint64(1); seq <= beats; seq++ {
		c.send(protocol.SigHeartbeat, 100+seq, nil)
		if f := c.next(); f.Signal != protocol.SigHeartbeatAck || f.Seq != 100+seq {
			t.Fatalf("got %s, want HeartbeatAck of seq %d", f, 100+seq)
		}
	}
	if reply, push := count("plato_state_heartbeat_acks_sent_total", `path="reply"`), count("plato_state_heartbeat_acks_sent_total", `path="push"`); reply != beats || push != 0 {
		t.Fatalf("HeartbeatAcks in replies %v, by push %v; want %d and 0", reply, push, beats)
	}
	if got := count("plato_gateway_reply_heartbeat_acks_total"); got != beats {
		t.Errorf("gateway counted %v HeartbeatAcks in replies, want %d", got, beats)
	}
	if got := count("plato_gateway_reply_uplink_acks_total"); got != 0 {
		t.Errorf("gateway counted %v UplinkAcks in replies, want 0: the heartbeats' are counted apart", got)
	}
	if got := pushCalls(); got != pushes {
		t.Errorf("Push calls went from %v to %v over %d heartbeats, want no change", pushes, got, beats)
	}
}
