package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/platoim/plato/core/platform/platformtest"
	"github.com/platoim/plato/sdk/business/rpc/plato/api"
	"github.com/platoim/plato/sdk/client"
	"github.com/platoim/plato/sdk/poll"
	"github.com/platoim/plato/sdk/protocol"
	"github.com/platoim/plato/sdk/token"
)

// TestOverloadIsRefusedPerMessage offers uplinks, open loop, at three times what the business
// server can take (a token bucket of overloadCapacity a second), through a state server and a
// gateway running as processes. The excess must be answered UplinkAck 1303 one by one, while the
// business keeps being fed at its capacity: no connection closed, no uplink left unanswered or
// failed otherwise, every uplink ACKed 0 delivered, and every disconnect reported afterwards.
func TestOverloadIsRefusedPerMessage(t *testing.T) {
	const (
		devices          = 30
		overloadCapacity = 300 // uplinks a second the business takes
		offered          = 3 * overloadCapacity
		loadFor          = 4 * time.Second
	)
	ctx := context.Background()
	cfg, biz := startShared(t, "")
	bucket := rate.NewLimiter(overloadCapacity, 1)
	biz.SetUplink(func(*api.Event) (int32, string) {
		_ = bucket.Wait(ctx)
		return 0, ""
	})
	stAddr := freePort(t)
	st := startProcEnv(t, "state", []string{"PLATO_STATE__ID=state-1", "PLATO_STATE__ADDR=" + stAddr}, "state", "--config", cfg)
	st.waitLine(reRunning)
	// A small bound on uplinks in flight, so the queue in front of the slow business stays short.
	gw := startProcEnv(t, "gateway", []string{"PLATO_GATEWAY__MAX_UPLINKS_IN_FLIGHT=64"}, "gateway", "--config", cfg)
	gwAddr := gw.waitLine(reGateway)

	signer, err := token.NewSigner([]byte(platformtest.Secret), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	clients := make([]*client.Client, devices)
	for i := range clients {
		did := fmt.Sprintf("ov-%02d", i)
		tok, _ := signer.Issue("bench", did, did, time.Now(), time.Time{})
		dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		clients[i], err = client.Dial(dctx, client.Config{
			Endpoints: []string{gwAddr}, Token: tok, AppID: "bench", DID: did,
			LoginTimeout: 20 * time.Second, AckTimeout: 60 * time.Second,
		})
		cancel()
		if err != nil {
			t.Fatalf("dial %s: %v", did, err)
		}
		t.Cleanup(func() { clients[i].Close() })
	}

	// Open loop: every device sends on its own ticker, never waiting for an answer.
	var ok, refused atomic.Int64
	var otherMu sync.Mutex
	var other []error
	var sends sync.WaitGroup
	stop := time.Now().Add(loadFor)
	every := time.Second * devices / offered
	for _, c := range clients {
		sends.Go(func() {
			tk := time.NewTicker(every)
			defer tk.Stop()
			for time.Now().Before(stop) {
				<-tk.C
				sends.Go(func() {
					sctx, cancel := context.WithTimeout(ctx, 90*time.Second)
					defer cancel()
					err := c.Send(sctx, []byte("x"))
					switch code, _ := protocol.CodeOf(err); {
					case err == nil:
						ok.Add(1)
					case code == protocol.CodeOverloaded:
						refused.Add(1)
					default:
						otherMu.Lock()
						other = append(other, err)
						otherMu.Unlock()
					}
				})
			}
		})
	}
	sends.Wait()
	t.Logf("offered %d/s for %v: %d delivered, %d refused 1303, %d otherwise", offered, loadFor, ok.Load(), refused.Load(), len(other))
	if len(other) > 0 {
		t.Fatalf("%d uplinks failed with something else than 1303, the first: %v", len(other), other[0])
	}
	if refused.Load() == 0 {
		t.Fatal("no uplink was refused at three times the capacity: the excess was queued")
	}
	// The business was kept busy: a fleet that closes connections or answers late collapses far
	// below its capacity. Half of it is a bound no loaded machine misses.
	if min := int64(overloadCapacity * loadFor.Seconds() / 2); ok.Load() < min {
		t.Fatalf("%d uplinks delivered in %v, want at least %d (half the business's capacity)", ok.Load(), loadFor, min)
	}
	for i, c := range clients {
		select {
		case <-c.Done():
			t.Fatalf("device %d was closed under overload: %v", i, c.Err())
		default:
		}
	}
	if n := len(biz.Events(api.EventKind_UPLINK, "")); int64(n) != ok.Load() {
		t.Fatalf("the business got %d uplinks, the devices were told %d were delivered", n, ok.Load())
	}
	for _, c := range clients {
		c.Close()
	}
	poll.Within(t, 30*time.Second, "a DISCONNECTED for every device", func() bool {
		return len(biz.Events(api.EventKind_DISCONNECTED, "")) >= devices
	})
}
