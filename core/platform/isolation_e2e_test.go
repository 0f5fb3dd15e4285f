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
)

// TestOneAppCannotSlowAnother floods app-a, whose plugin holds every uplink 200 ms, and measures
// app-b's uplinks meanwhile: they must not queue behind app-a's (each app has lanes, business
// queues and quotas of its own), and none of them is refused.
//
// What tells isolation from sharing is app-a's call time: an app-b uplink on a lane shared with
// app-a waits behind at least one 200 ms call (with the lanes shared, app-b's p99 was 1.61 s). So
// the bound is app-b's p99 with app-a idle plus one such call (or times 1.5, if more). A tighter
// one measures the machine: app-a's flood also takes CPU from app-b, and on a loaded 2-core
// machine that alone moved app-b's p99 from 58 ms to 90 ms (load average 15), past the 1.5x + 25 ms
// this test once used. docs/performance.md has the ratio measured on a quiet machine.
func TestOneAppCannotSlowAnother(t *testing.T) {
	dir := t.TempDir()
	slow := platformtest.BuildPlugin(t, "sdk/stage/internal/testplugin")
	const hold = 200 * time.Millisecond // app-a's plugin holds each uplink this long
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
	measure := func(n int) (p99 time.Duration, refused int) {
		var lat []time.Duration
		for i := range n {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
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
			return 0, refused
		}
		return lat[len(lat)*99/100], refused
	}
	measure(20) // warm up the connections to the business server
	idle, refused := measure(200)
	if refused > 0 {
		t.Fatalf("%d of app-b's uplinks refused with app-a idle", refused)
	}

	// The flood: app-a's devices keep 8 uplinks each in flight, for as long as app-b is measured.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var sent atomic.Int64
	for d := range 20 {
		did := fmt.Sprintf("a-%d", d)
		a, err := connectAs(t, p, "app-a", did, "", platformtest.Credential(t, "app-a", did, "u"))
		if err != nil {
			t.Fatal(err)
		}
		for range 8 {
			wg.Add(1)
			go func(c *client.Client) {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
					_ = c.Send(ctx, []byte("a")) // held 200 ms by app-a's plugin, or refused 1303 when its lanes are full
					cancel()
					sent.Add(1)
				}
			}(a)
		}
	}
	time.Sleep(time.Second) // let app-a's lanes fill up behind its plugin
	flooded, refused := measure(200)
	close(stop)
	wg.Wait()
	t.Logf("app-b uplink p99: %v with app-a idle, %v with app-a flooded (%d of app-a's uplinks answered meanwhile)", idle, flooded, sent.Load())
	if refused > 0 {
		t.Errorf("%d of app-b's uplinks refused while app-a was flooded", refused)
	}
	if limit := max(idle*3/2, idle+hold); flooded > limit {
		t.Errorf("app-b's p99 went from %v to %v with app-a flooded (limit %v)", idle, flooded, limit)
	}
}
