package platform_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/platoim/plato/internal/config"
	"github.com/platoim/plato/sdk/business/rpc/plato/api"
	"github.com/platoim/plato/sdk/poll"
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
