package platform_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/platoim/plato/core/platform/platformtest"
	"github.com/platoim/plato/internal/config"
	"github.com/platoim/plato/sdk/client"
	"github.com/platoim/plato/sdk/poll"
)

// TestOneAppCannotSlowAnother floods app-a, whose plugin holds every uplink 1 s, and sends app-b's
// uplinks meanwhile: they must not queue behind app-a's (each app has lanes, business queues and
// quotas of its own), and none of them is refused.
//
// What tells isolation from sharing is app-a's call time: an app-b uplink on a lane shared with
// app-a waits behind at least one 1 s call. So the test asserts that no app-b uplink took that
// long, a bound no scheduling delay of a loaded machine comes near, rather than comparing
// latencies, which measures the machine (app-a's flood also takes CPU from app-b).
// docs/performance.md has the p99 ratio measured on a quiet machine.
func TestOneAppCannotSlowAnother(t *testing.T) {
	dir := t.TempDir()
	slow := platformtest.BuildPlugin(t, "sdk/stage/internal/testplugin")
	const hold = time.Second // app-a's plugin holds each uplink this long
	yaml := fmt.Sprintf("version: 1\nstages:\n  - name: slow\n    plugin: %s\n    signals: [uplink]\n    timeout: 30s\n    config: {delay_ms: %d}\n", slow, hold.Milliseconds())
	if err := os.WriteFile(filepath.Join(dir, "app-a.yaml"), []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "default.yaml"), []byte("version: 1\nstages: []\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p, _ := startAll(t, func(c *config.Config) {
		c.Pipeline.Dir = dir
		c.Pipeline.PluginDir = filepath.Dir(slow)
	})
	b, err := connectAs(t, p, "app-b", "b-1", "", platformtest.Credential(t, "app-b", "b-1", "u"))
	if err != nil {
		t.Fatal(err)
	}
	measure := func(n int) (p99, slowest time.Duration, refused int) {
		var lat []time.Duration
		for i := range n {
			ctx, cancel := context.WithTimeout(context.Background(), 4*hold)
			start := time.Now()
			err := b.Send(ctx, fmt.Appendf(nil, "b %d", i))
			cancel()
			if err != nil {
				refused++
				continue
			}
			lat = append(lat, time.Since(start))
		}
		slices.Sort(lat)
		if len(lat) == 0 {
			return 0, 0, refused
		}
		return lat[len(lat)*99/100], lat[len(lat)-1], refused
	}
	measure(20) // warm up the connections to the business server
	idle, _, refused := measure(200)
	if refused > 0 {
		t.Fatalf("%d of app-b's uplinks refused with app-a idle", refused)
	}

	// The flood: app-a's devices keep 2 uplinks each in flight, for as long as app-b is measured. The
	// plugin takes a lane's uplinks one after another, so that is a backlog of seconds on every lane
	// app-a's devices hash to.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var sent atomic.Int64
	// Every app-a device logs in before the flood: a login behind app-a's held uplinks would wait
	// for them too.
	var flooders []*client.Client
	for d := range 20 {
		did := fmt.Sprintf("a-%d", d)
		a, err := connectAs(t, p, "app-a", did, "", platformtest.Credential(t, "app-a", did, "u"))
		if err != nil {
			t.Fatal(err)
		}
		flooders = append(flooders, a)
	}
	for _, a := range flooders {
		for range 2 {
			wg.Add(1)
			go func(c *client.Client) {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
					_ = c.Send(ctx, []byte("a")) // held by app-a's plugin, or refused 1303 when its lanes are full
					cancel()
					sent.Add(1)
				}
			}(a)
		}
	}
	time.Sleep(time.Second) // let app-a's lanes fill up behind its plugin
	flooded, slowest, refused := measure(200)
	close(stop)
	wg.Wait()
	// A flood send may have given up waiting (the client's ACK timeout) with its uplink still in a
	// lane: let app-a's backlog run out, so that the platform's shutdown has little left to drain.
	poll.Within(t, time.Minute, "app-a's lanes to empty", func() bool { return p.Pipelines.Fill() == 0 })
	t.Logf("app-b uplink p99: %v with app-a idle, %v with app-a flooded (slowest %v; %d of app-a's uplinks answered meanwhile)", idle, flooded, slowest, sent.Load())
	if refused > 0 {
		t.Errorf("%d of app-b's uplinks refused while app-a was flooded", refused)
	}
	if slowest >= hold {
		t.Errorf("an app-b uplink took %v with app-a flooded: it waited behind app-a's %v plugin call", slowest, hold)
	}
}
