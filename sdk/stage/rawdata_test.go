package stage_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/platoim/plato/sdk/stage"
)

// These tests run the data socket (rawdata.go) against the real test plugin process.

// echoes sends a few batches and checks every message comes back rewritten to itself.
func echoes(t *testing.T, p stage.Processor) {
	t.Helper()
	for i := range 3 {
		evs := []stage.Event{uplink("d1", uint64(3*i), "a"), uplink("d2", uint64(3*i+1), "reject"), uplink("d1", uint64(3*i+2), "host")}
		replies, err := process(p, 10*time.Second, evs...)
		if err != nil {
			t.Fatalf("batch %d: %v", i, err)
		}
		if string(replies[0].Payload) != "a" || replies[1].Code != 2001 || string(replies[2].Payload) != "stored" {
			t.Fatalf("batch %d: %+v", i, replies)
		}
	}
}

func TestDataSocketNegotiated(t *testing.T) {
	r := startPlugin(t)
	echoes(t, r.proc)
	if got := stage.DataPath(r.proc); got != stage.PathSocket {
		t.Fatalf("data path %q, want %q", got, stage.PathSocket)
	}
	// Batches of many sizes, concurrently, come back whole and to their own caller.
	errs := make(chan error, 8)
	for g := range 8 {
		go func() {
			n := 1 + g*37
			evs := make([]stage.Event, n)
			for i := range evs {
				evs[i] = uplink(fmt.Sprintf("d%d", g), uint64(i), fmt.Sprintf("m-%d-%d", g, i))
			}
			replies, err := process(r.proc, 10*time.Second, evs...)
			if err == nil {
				for i := range replies {
					if want := fmt.Sprintf("m-%d-%d", g, i); string(replies[i].Payload) != want {
						err = fmt.Errorf("reply %d: %q, want %q", i, replies[i].Payload, want)
						break
					}
				}
			}
			errs <- err
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

// A plugin built before the data socket (PLATO_STAGE_RAW=off leaves it out) answers Open with
// Unimplemented; the host sends its batches on the gRPC stream.
func TestDataSocketOldPlugin(t *testing.T) {
	r := startPluginWith(t, stage.VersionedPlugins(), "PLATO_STAGE_RAW=off")
	echoes(t, r.proc)
	if got := stage.DataPath(r.proc); got != stage.PathGRPC {
		t.Fatalf("data path %q, want %q", got, stage.PathGRPC)
	}
}

// A host built before the data socket never asks for it; the new plugin serves the gRPC stream.
func TestDataSocketOldHost(t *testing.T) {
	r := startPluginWith(t, stage.GRPCOnlyHostPlugins())
	echoes(t, r.proc)
	if got := stage.DataPath(r.proc); got != stage.PathGRPC {
		t.Fatalf("data path %q, want %q", got, stage.PathGRPC)
	}
}

// A plugin that writes a frame it should not is cut off: its batch fails with the reason, the
// Processor reports the Fault, and every later batch fails at once rather than reopening.
func TestDataSocketGarbageFromPlugin(t *testing.T) {
	for _, c := range []struct{ payload, want string }{
		{"garbage-frame", "bad frame on the data socket: frame of 4294967295 bytes, more than the limit"},
		{"garbage-results", "malformed result on the data socket"},
	} {
		t.Run(c.payload, func(t *testing.T) {
			r := startPlugin(t)
			echoes(t, r.proc)
			waiting := make(chan error, 1)
			go func() { // a batch in flight when the garbage comes fails too
				_, err := process(r.proc, 20*time.Second, uplink("d9", 1, "sleep"))
				waiting <- err
			}()
			time.Sleep(100 * time.Millisecond)
			_, err := process(r.proc, 10*time.Second, uplink("d1", 1, c.payload))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("garbage batch: %v, want %q", err, c.want)
			}
			select {
			case err := <-waiting:
				if err == nil || errors.Is(err, context.DeadlineExceeded) {
					t.Errorf("the batch in flight: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("the batch in flight was not failed")
			}
			f, ok := r.proc.(stage.Fault)
			if !ok || f.Fault() == nil || !strings.Contains(f.Fault().Error(), c.want) {
				t.Fatalf("Fault: %v", f)
			}
			start := time.Now()
			if _, err := process(r.proc, 10*time.Second, uplink("d1", 2, "a")); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("a batch after the fault: %v", err)
			} else if d := time.Since(start); d > 3*time.Second {
				t.Errorf("a batch after the fault took %v", d)
			}
		})
	}
}

// Batches larger than the socket's buffer are written in part by their caller and finished by
// the sender goroutine; concurrent ones must not interleave.
func TestDataSocketLargeBatches(t *testing.T) {
	r := startPlugin(t)
	echoes(t, r.proc)
	errs := make(chan error, 4)
	for g := range 4 {
		go func() {
			evs := make([]stage.Event, 32)
			for i := range evs {
				evs[i] = uplink("big", uint64(i), strings.Repeat(string(rune('a'+g)), 64<<10)+fmt.Sprint(i))
			}
			replies, err := process(r.proc, 30*time.Second, evs...)
			if err == nil {
				for i := range replies {
					if string(replies[i].Payload) != string(evs[i].Payload) {
						err = fmt.Errorf("caller %d reply %d: %d bytes, not its payload", g, i, len(replies[i].Payload))
						break
					}
				}
			}
			errs <- err
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if got := stage.DataPath(r.proc); got != stage.PathSocket {
		t.Fatalf("data path %q", got)
	}
}

// A caller alone in flight reads its result itself (stream_mux_lead.go); when its ctx ends first,
// by deadline or by cancel, it leaves at once, the late result is still read (Answered counts
// it), and the calls after it, alone or together, get their own results. The plugin runs a lone
// batch in its reader (rawserve.go), so the slow batch must not hold up the ones behind it.
func TestDataSocketCallerLeavesWhileReading(t *testing.T) {
	r := startPlugin(t)
	echoes(t, r.proc)
	live := r.proc.(stage.Liveness)

	// By deadline: the plugin's "sleep" answers 200 ms after the deadline it was sent.
	before := live.Answered()
	start := time.Now()
	if _, err := process(r.proc, 300*time.Millisecond, uplink("d1", 1, "sleep")); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("sleep: %v, want the deadline", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("the deadline took %v", d)
	}
	echoes(t, r.proc) // sent while the late result is due: the receiver reads for them
	for deadline := time.Now().Add(10 * time.Second); live.Answered() < before+3+1; {
		if time.Now().After(deadline) {
			t.Fatalf("answered %d, want %d: the late result was not read", live.Answered(), before+4)
		}
		time.Sleep(10 * time.Millisecond)
	}

	// By cancel, with no deadline: the plugin sleeps on (30 s) while later batches pass it. The
	// plugin's takeover timer ticks while batches come and stops after a tick with none, so the
	// slow batch comes right after others (the timer ticking), and after a pause (the timer stopped).
	for _, pause := range []time.Duration{0, 5 * time.Millisecond} {
		echoes(t, r.proc)
		time.Sleep(pause)
		ctx, cancel := context.WithCancel(context.Background())
		left := make(chan error, 1)
		go func() { left <- r.proc.Process(ctx, []stage.Event{uplink("d1", 2, "sleep")}, make([]stage.Reply, 1)) }()
		time.Sleep(100 * time.Millisecond) // let it reach the plugin
		echoes(t, r.proc)                  // behind a batch the plugin runs for 30 s
		cancel()
		select {
		case err := <-left:
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("cancelled call (pause %v): %v", pause, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("a cancelled call did not leave (pause %v)", pause)
		}
	}
	echoes(t, r.proc)
}
