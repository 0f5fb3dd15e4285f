package platform_test

import (
	"context"
	"runtime"
	"runtime/metrics"
	"testing"
	"time"

	"github.com/platoim/plato/core/platform/platformtest"
	"github.com/platoim/plato/internal/config"
	"github.com/platoim/plato/sdk/client"
	"github.com/platoim/plato/sdk/poll"
	"github.com/platoim/plato/sdk/protocol"
)

// A gateway whose heap is over its overload.memory_limit refuses Logins with 1303 before looking
// at them, and ipconf lists it as overloaded, after any other; a device already logged in keeps
// its connection, and its uplinks are refused 1303 one by one.
func TestAnOverloadedGatewayRefusesLoginsAndTellsIPConf(t *testing.T) {
	p, _ := startAll(t, func(c *config.Config) { c.Gateway.Overload.MemoryLimit = heapNow() + overloadMargin })
	alice := dial(t, p, "alice")
	pressHeap()
	ipconf := "http://" + p.IPConf.Addr()
	poll.Within(t, 20*time.Second, "ipconf to list the gateway as overloaded", func() bool {
		l, err := client.FetchEndpoints(context.Background(), nil, ipconf, "demo", "probe", platformtest.Credential(t, "demo", "probe", "probe"))
		return err == nil && len(l.Endpoints) == 1 && l.Endpoints[0].Overloaded
	})
	raw := rawDial(t, p.Gateway.Addr())
	ack := raw.login(mustSigner(t, platformtest.Secret), "bob")
	if ack.Code != protocol.CodeOverloaded {
		t.Fatalf("login on an overloaded gateway: %+v, want 1303", ack)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := alice.Send(ctx, []byte("hi")); codeOf(err) != protocol.CodeOverloaded {
		t.Fatalf("uplink on an overloaded gateway: %v, want 1303", err)
	}
	select {
	case <-alice.Done():
		t.Fatalf("a logged-in device was closed for overload: %v", alice.Err())
	default:
	}
	releaseHeap()
	poll.Within(t, 20*time.Second, "the gateway to take uplinks again", func() bool {
		return alice.Send(ctx, []byte("again")) == nil
	})
}

// overloadMargin is how far above the heap at a test's start its roles' memory limit is set; the
// ballast of pressHeap is twice as large, so it presses them whatever the platform allocates.
const overloadMargin = 256 << 20

func heapNow() int64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	return int64(s[0].Value.Uint64())
}

// ballast is package-level so that the compiler keeps the allocation.
var ballast []byte

// pressHeap allocates a ballast over the roles' memory limit. The pages are never touched, so the
// machine does not pay for them, but the heap counts them.
func pressHeap() { ballast = make([]byte, 2*overloadMargin) }

// releaseHeap drops the ballast and has the GC take it back, so the pressure falls at the next
// sample.
func releaseHeap() {
	ballast = nil
	runtime.GC()
}
