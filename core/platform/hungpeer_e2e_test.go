package platform_test

import (
	"context"
	"testing"
	"time"

	"github.com/platoim/plato/internal/config"
	"github.com/platoim/plato/sdk/business/rpc/plato/api"
	"github.com/platoim/plato/sdk/protocol"
)

// A Kitex business server that takes Deliver and never answers fails the uplinks of that call
// with 1302 (the state server's kerrors.ErrRPCTimeout mapping) after state.business.timeout, not
// sooner and not much later, though the call runs on the lane's goroutine without Kitex's RPC
// timeout (docs/adr/0013-internal-call-bounds.md); once the business answers again, so does Plato.
func TestAHungBusinessServerTimesOutTheCall(t *testing.T) {
	const timeout = 500 * time.Millisecond
	p, biz := startAll(t, func(c *config.Config) { c.State.Business.Timeout = timeout })
	alice := dial(t, p, "alice")

	release := make(chan struct{})
	biz.SetUplink(func(ev *api.Event) (int32, string) {
		if string(ev.Payload) == "hang" {
			<-release
		}
		return 0, ""
	})
	t.Cleanup(func() {
		select {
		case <-release:
		default:
			close(release)
		}
	})

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	err := alice.Send(ctx, []byte("hang"))
	took := time.Since(start)
	if code, _ := protocol.CodeOf(err); code != protocol.CodeBusinessTimeout {
		t.Fatalf("send to a business server that never answers: %v, want code %d", err, protocol.CodeBusinessTimeout)
	}
	if took < timeout {
		t.Errorf("the uplink was refused after %v, before state.business.timeout %v", took, timeout)
	}
	// Generous: a loaded machine; the bound is the timeout, not the device's 20 s.
	if took > 10*timeout+2*time.Second {
		t.Errorf("the uplink was refused after %v, want about state.business.timeout %v", took, timeout)
	}

	close(release)
	if err := alice.Send(ctx, []byte("on time")); err != nil {
		t.Fatalf("send once the business server answers again: %v", err)
	}
}
