package pipeline

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/platoim/plato/sdk/poll"
	"github.com/platoim/plato/sdk/stage"
)

// seqChecker is a stage that fails the test's expectations (recorded, checked at the end) when it
// sees a connection's signals out of order.
type seqChecker struct {
	mu   sync.Mutex
	last map[uint64]uint64
	errs []string
}

func newSeqChecker() *seqChecker { return &seqChecker{last: map[uint64]uint64{}} }

func (c *seqChecker) see(stageName string, ev stage.Event) {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := ev.Conn.ConnID
	if last, ok := c.last[k]; ok && ev.Seq <= last {
		c.errs = append(c.errs, fmt.Sprintf("stage %s: conn %d seq %d after %d", stageName, k, ev.Seq, last))
	}
	c.last[k] = ev.Seq
}

// sleepy sleeps a random few hundred microseconds: enough to let lanes overtake each other.
func sleepy() {
	if rand.IntN(4) == 0 {
		time.Sleep(time.Duration(rand.IntN(300)) * time.Microsecond)
	}
}

func TestOrderPerConnection(t *testing.T) {
	dir := t.TempDir()
	checkers := map[string]*seqChecker{"a": newSeqChecker(), "b": newSeqChecker(), "c": newSeqChecker(), "x": newSeqChecker()}
	checking := func(ctx context.Context, st *fnStage, ev stage.Event) stage.Reply {
		sleepy()
		checkers[st.req.Stage].see(st.req.Stage, ev)
		return tagStage(ctx, st, ev)
	}
	cfg := Config{
		Dir: dir, Lanes: 8, BatchSize: 32, QueueLimit: 64,
		Builtins: map[string]func() stage.Stage{"check": builtin("check", checking)},
	}
	writePipeline(t, dir, "appA", fileYAML(
		stageYAML("a", "builtin:check", "uplink, login", "batch: {max_size: 7}"),
		stageYAML("b", "builtin:check", "uplink"),
		stageYAML("c", "builtin:check", "uplink", "batch: {max_size: 3}"),
	))
	writePipeline(t, dir, "default", fileYAML(stageYAML("x", "builtin:check", "uplink")))
	p := start(t, cfg)

	const conns, perConn, producers = 240, 60, 12
	rec := newRecorder()
	var wg sync.WaitGroup
	for w := range producers {
		wg.Go(func() {
			// Each producer owns some connections and interleaves them, so a lane sees many
			// connections and apps mixed in one batch.
			for seq := uint64(1); seq <= perConn; seq++ {
				for c := uint64(w); c < conns; c += producers {
					app := "appA"
					if c%3 == 0 {
						app = "other"
					}
					ev := uplink(app, c, seq, fmt.Sprintf("p%d", seq))
					if err := runRetry(p, ev, rec.done(c, seq)); err != nil {
						t.Error(err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	poll.Until(t, "every done", func() bool { return rec.count() == conns*perConn })
	rec.check(t)
	for name, c := range checkers {
		for _, e := range c.errs {
			t.Errorf("%s: %s", name, e)
		}
	}
	for c, l := range rec.byConn {
		for i, r := range l {
			want := fmt.Sprintf("p%d|a|b|c", i+1)
			if c%3 == 0 {
				want = fmt.Sprintf("p%d|x", i+1)
			}
			if r.out.Verdict != stage.Continue || string(r.out.Payload) != want {
				t.Fatalf("conn %d #%d: %+v payload %q, want continue %q", c, i, r.out, r.out.Payload, want)
			}
		}
	}
}

// TestOrderAcrossSignals checks that a connection's signals of different kinds, which different
// stages handle, still come out in Run order.
func TestOrderAcrossSignals(t *testing.T) {
	dir := t.TempDir()
	slow := func(ctx context.Context, st *fnStage, ev stage.Event) stage.Reply {
		time.Sleep(time.Duration(rand.IntN(200)) * time.Microsecond)
		return stage.Reply{}
	}
	writePipeline(t, dir, "default", fileYAML(
		stageYAML("logins", "builtin:slow", "login"),
		stageYAML("ups", "builtin:slow", "uplink, heartbeat"),
		stageYAML("downs", "builtin:slow", "downlink, downlink_ack, disconnect"),
	))
	p := start(t, Config{Dir: dir, Lanes: 4, Builtins: map[string]func() stage.Stage{"slow": builtin("slow", slow)}})
	sigs := []stage.Signal{stage.SignalLogin, stage.SignalUplink, stage.SignalHeartbeat, stage.SignalDownlink, stage.SignalDownlinkAck, stage.SignalDisconnect}
	rec := newRecorder()
	const conns, perConn = 50, 120
	for seq := uint64(1); seq <= perConn; seq++ {
		for c := uint64(0); c < conns; c++ {
			ev := uplink("app", c, seq, "x")
			ev.Signal = sigs[rand.IntN(len(sigs))]
			if err := runRetry(p, ev, rec.done(c, seq)); err != nil {
				t.Fatal(err)
			}
		}
	}
	poll.Until(t, "every done", func() bool { return rec.count() == conns*perConn })
	rec.check(t)
}
