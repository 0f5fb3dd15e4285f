package retransmitstage_test

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/platoim/plato/plugins/retransmit/retransmitstage"
	"github.com/platoim/plato/sdk/protocol"
	"github.com/platoim/plato/sdk/stage"
	"github.com/platoim/plato/sdk/stage/stagetest"
)

var testConfig = map[string]any{"initial_backoff": "2s", "max_backoff": "5s", "max_attempts": 4}

func harness(t *testing.T, host *stagetest.Host) *stagetest.Harness {
	t.Helper()
	return stagetest.New(t, retransmitstage.New(), stagetest.Options{App: "demo", Config: testConfig, Host: host})
}

func key(c stage.Conn, seq uint64) string {
	return fmt.Sprintf("inflight/%s/%d/%d", c.GatewayID, c.ConnID, seq)
}

// wantTimer checks that key's timer is pending, due in d.
func wantTimer(t *testing.T, h *stagetest.Harness, key string, d time.Duration) {
	t.Helper()
	tm, ok := h.Host.Timer("demo", key)
	if !ok {
		t.Fatalf("timer %s: not pending (pending: %v)", key, h.Host.Timers())
	}
	if got := tm.At.Sub(h.Host.Now()); got != d {
		t.Errorf("timer %s: due in %s, want %s", key, got, d)
	}
}

// wantNothingLeft checks that the stage left no timer and no state behind.
func wantNothingLeft(t *testing.T, h *stagetest.Harness, c stage.Conn, seqs ...uint64) {
	t.Helper()
	if ts := h.Host.Timers(); len(ts) != 0 {
		t.Errorf("timers left: %v", ts)
	}
	for _, seq := range seqs {
		if _, ok := h.Host.State("demo", key(c, seq)); ok {
			t.Errorf("record %s left", key(c, seq))
		}
	}
	if _, ok := h.Host.State("demo", fmt.Sprintf("conn/%s/%d", c.GatewayID, c.ConnID)); ok {
		t.Errorf("index of %s/%d left", c.GatewayID, c.ConnID)
	}
}

func downlink(t *testing.T, h *stagetest.Harness, c stage.Conn, seq, msgID uint64, payload string) {
	t.Helper()
	if r := h.Downlink(c, seq, msgID, []byte(payload)); r.Verdict != stage.Continue || r.Replace {
		t.Fatalf("downlink %d: got %+v, want continue", seq, r)
	}
}

func TestResendWithBackoffThenUndelivered(t *testing.T) {
	h := harness(t, nil)
	c := h.Conn("d1")
	downlink(t, h, c, 1, 100, "hello")
	k := key(c, 1)
	wantTimer(t, h, k, 2*time.Second)
	if _, ok := h.Host.State("demo", k); !ok {
		t.Fatalf("no in-flight record %s", k)
	}

	// Attempts 2, 3 and 4 are resends, each after twice the wait (capped at 5s).
	for i, next := range []time.Duration{4 * time.Second, 5 * time.Second, 5 * time.Second} {
		h.FireTimer("demo", k)
		rs := h.Host.Resends()
		if len(rs) != i+1 {
			t.Fatalf("after %d timers: %d resends", i+1, len(rs))
		}
		got := rs[i]
		if got.Conn != c || got.Seq != 1 || got.MsgID != 100 || string(got.Payload) != "hello" {
			t.Errorf("resend %d: got %+v", i+1, got)
		}
		wantTimer(t, h, k, next)
		if n := len(h.Host.UndeliveredReports()); n != 0 {
			t.Fatalf("undelivered reported after %d resends", i+1)
		}
	}

	// The fourth write goes unACKed too: given up, reported, forgotten.
	h.FireTimer("demo", k)
	if n := len(h.Host.Resends()); n != 3 {
		t.Errorf("resends: got %d, want 3 (max_attempts 4, the first send included)", n)
	}
	u := h.Host.UndeliveredReports()
	if len(u) != 1 || u[0].Conn != c || u[0].Seq != 1 || u[0].MsgID != 100 || u[0].Attempts != 4 {
		t.Fatalf("undelivered: got %+v", u)
	}
	wantNothingLeft(t, h, c, 1)
}

func TestAckStopsResending(t *testing.T) {
	h := harness(t, nil)
	c := h.Conn("d1")
	downlink(t, h, c, 1, 100, "a")
	downlink(t, h, c, 2, 101, "b")
	h.FireTimer("demo", key(c, 1))

	if r := h.DownlinkAck(c, 1, 100); r.Verdict != stage.Continue {
		t.Fatalf("ack: got %+v", r)
	}
	if _, ok := h.Host.Timer("demo", key(c, 1)); ok {
		t.Error("timer of the ACKed downlink still pending")
	}
	if _, ok := h.Host.State("demo", key(c, 1)); ok {
		t.Error("record of the ACKed downlink still there")
	}
	wantTimer(t, h, key(c, 2), 2*time.Second)

	// A timer that fires although the ACK cancelled it (it was already on its way) does nothing.
	if _, err := h.Process(stage.Event{Signal: stage.SignalTimer, TimerKey: key(c, 1)}); err != nil {
		t.Fatal(err)
	}
	if n := len(h.Host.Resends()); n != 1 {
		t.Errorf("resends: got %d, want 1", n)
	}

	h.DownlinkAck(c, 2, 101)
	h.DownlinkAck(c, 3, 0) // an ACK of nothing in flight is harmless
	if n := len(h.Host.UndeliveredReports()); n != 0 {
		t.Errorf("undelivered: got %d reports, want none", n)
	}
	wantNothingLeft(t, h, c, 1, 2)
}

// TestQoS: an at-most-once downlink continues untouched and untracked; at least once and the
// default (hosts and pushes without QoS) are tracked.
func TestQoS(t *testing.T) {
	h := harness(t, nil)
	c := h.Conn("d1")
	if r := h.DownlinkQoS(c, 1, 100, stage.AtMostOnce, []byte("once")); !reflect.DeepEqual(r, stage.Reply{}) {
		t.Fatalf("at most once: got %+v, want the zero reply", r)
	}
	if ts := h.Host.Timers(); len(ts) != 0 {
		t.Errorf("at most once armed timers: %v", ts)
	}
	if _, ok := h.Host.State("demo", key(c, 1)); ok {
		t.Error("at most once downlink was recorded")
	}
	if r := h.DownlinkQoS(c, 2, 101, stage.AtLeastOnce, []byte("sure")); r.Verdict != stage.Continue || r.Replace {
		t.Fatalf("at least once: got %+v", r)
	}
	wantTimer(t, h, key(c, 2), 2*time.Second)
	downlink(t, h, c, 3, 102, "default")
	wantTimer(t, h, key(c, 3), 2*time.Second)

	// The device ACKs the at-most-once one anyway: harmless. A disconnect reports only the tracked.
	h.DownlinkAck(c, 1, 100)
	h.Disconnect(c, uint16(protocol.CodeHeartbeatTimeout))
	u := h.Host.UndeliveredReports()
	if len(u) != 2 || u[0].MsgID != 101 || u[1].MsgID != 102 {
		t.Errorf("undelivered: got %+v, want msg 101 and 102", u)
	}
	if n := len(h.Host.Resends()); n != 0 {
		t.Errorf("resends: %d", n)
	}
	wantNothingLeft(t, h, c, 1, 2, 3)
}

func TestDisconnectReportsInFlight(t *testing.T) {
	h := harness(t, nil)
	c, other := h.Conn("d1"), h.Conn("d2")
	downlink(t, h, c, 1, 100, "a")
	downlink(t, h, c, 2, 101, "b")
	downlink(t, h, c, 3, 102, "c")
	downlink(t, h, other, 1, 200, "x")
	h.DownlinkAck(c, 2, 101)
	h.FireTimer("demo", key(c, 3))

	if r := h.Disconnect(c, uint16(protocol.CodeHeartbeatTimeout)); r.Verdict != stage.Continue {
		t.Fatalf("disconnect: got %+v", r)
	}
	u := h.Host.UndeliveredReports()
	if len(u) != 2 || u[0].Seq != 1 || u[0].MsgID != 100 || u[0].Attempts != 1 || u[1].Seq != 3 || u[1].MsgID != 102 || u[1].Attempts != 2 {
		t.Fatalf("undelivered: got %+v, want seq 1 (1 attempt) and seq 3 (2 attempts)", u)
	}
	for _, seq := range []uint64{1, 2, 3} {
		if _, ok := h.Host.Timer("demo", key(c, seq)); ok {
			t.Errorf("timer of seq %d still pending", seq)
		}
		if _, ok := h.Host.State("demo", key(c, seq)); ok {
			t.Errorf("record of seq %d still there", seq)
		}
	}
	// The other connection is untouched.
	wantTimer(t, h, key(other, 1), 2*time.Second)
	h.DownlinkAck(other, 1, 200)
	wantNothingLeft(t, h, c)
	wantNothingLeft(t, h, other)
}

// TestRestartContinues runs a fresh stage instance over the same host, as after the plugin process
// restarted: the records and timers are the host's, so the schedule carries on.
func TestRestartContinues(t *testing.T) {
	h1 := harness(t, nil)
	c := h1.Conn("d1")
	downlink(t, h1, c, 1, 100, "a")
	downlink(t, h1, c, 2, 101, "b")
	h1.FireTimer("demo", key(c, 1)) // attempt 2; next wait 4s

	h2 := harness(t, h1.Host)
	wantTimer(t, h2, key(c, 1), 4*time.Second)
	h2.FireTimer("demo", key(c, 1)) // attempt 3; next wait 5s (capped)
	wantTimer(t, h2, key(c, 1), 5*time.Second)
	rs := h2.Host.Resends()
	if len(rs) != 2 || rs[1].Conn != c || rs[1].Seq != 1 || string(rs[1].Payload) != "a" {
		t.Fatalf("resends: got %+v", rs)
	}
	h2.FireTimer("demo", key(c, 1)) // attempt 4, the last
	h2.FireTimer("demo", key(c, 1)) // given up
	if u := h2.Host.UndeliveredReports(); len(u) != 1 || u[0].Seq != 1 || u[0].Attempts != 4 {
		t.Fatalf("undelivered: got %+v", u)
	}

	// The index written before the restart still drives the disconnect.
	h2.Disconnect(c, uint16(protocol.CodeClientClose))
	if u := h2.Host.UndeliveredReports(); len(u) != 2 || u[1].Seq != 2 || u[1].MsgID != 101 {
		t.Fatalf("undelivered after disconnect: got %+v", u)
	}
	wantNothingLeft(t, h2, c, 1, 2)
}

func TestFailedResendUsesAnAttempt(t *testing.T) {
	host := stagetest.NewHost()
	host.Fail = func(method string) error {
		if method == "Resend" {
			return errors.New("connection gone")
		}
		return nil
	}
	h := harness(t, host)
	c := h.Conn("d1")
	downlink(t, h, c, 1, 100, "a")
	for range 4 {
		h.FireTimer("demo", key(c, 1))
	}
	if u := h.Host.UndeliveredReports(); len(u) != 1 || u[0].Attempts != 4 {
		t.Fatalf("undelivered: got %+v", u)
	}
	wantNothingLeft(t, h, c, 1)
}

func TestMaxAttemptsOne(t *testing.T) {
	h := stagetest.New(t, retransmitstage.New(), stagetest.Options{App: "demo", Config: map[string]any{"max_attempts": 1}})
	c := h.Conn("d1")
	downlink(t, h, c, 1, 100, "a")
	wantTimer(t, h, key(c, 1), retransmitstage.DefaultInitialBackoff)
	h.FireTimer("demo", key(c, 1))
	if len(h.Host.Resends()) != 0 || len(h.Host.UndeliveredReports()) != 1 {
		t.Fatalf("got %d resends and %d undelivered, want 0 and 1", len(h.Host.Resends()), len(h.Host.UndeliveredReports()))
	}
}

func TestInitErrors(t *testing.T) {
	for _, tc := range []struct {
		cfg  map[string]any
		want string
	}{
		{map[string]any{"initial_backoff": "soon"}, "initial_backoff"},
		{map[string]any{"initial_backoff": "10s", "max_backoff": "1s"}, "max_backoff"},
		{map[string]any{"max_attempts": -2}, "max_attempts"},
		{map[string]any{"max_attempt": 3}, "unknown field"},
	} {
		h := stagetest.New(t, retransmitstage.New(), stagetest.Options{App: "demo", Config: tc.cfg, SkipInit: true})
		if err := h.Init(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: got %v, want an error naming %s", tc.cfg, err, tc.want)
		}
	}
}

// TestConcurrentConnections drives many connections at once, with timers firing while their
// connections' ACKs arrive, as the host does (timers are not ordered with a connection's events).
func TestConcurrentConnections(t *testing.T) {
	h := harness(t, nil)
	conns := make([]stage.Conn, 16)
	for i := range conns {
		conns[i] = h.Conn(fmt.Sprintf("d%d", i))
	}
	var wg sync.WaitGroup
	errs := make(chan error, 2*len(conns))
	for _, c := range conns {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for seq := uint64(1); seq <= 20; seq++ {
				if _, err := h.Process(stage.Event{Signal: stage.SignalDownlink, Conn: c, Seq: seq, MsgID: seq, Payload: []byte("p")}); err != nil {
					errs <- err
					return
				}
				if _, err := h.Process(stage.Event{Signal: stage.SignalDownlinkAck, Conn: c, Seq: seq, MsgID: seq}); err != nil {
					errs <- err
					return
				}
			}
		}()
		go func() {
			defer wg.Done()
			for seq := uint64(1); seq <= 20; seq++ {
				if _, err := h.Process(stage.Event{Signal: stage.SignalTimer, TimerKey: key(c, seq)}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for _, c := range conns {
		wantNothingLeft(t, h, c)
	}
}
