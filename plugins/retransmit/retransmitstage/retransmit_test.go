package retransmitstage_test

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/platoim/plato/plugins/retransmit/retransmitstage"
	"github.com/platoim/plato/sdk/stage"
	"github.com/platoim/plato/sdk/stage/stagetest"
)

var testConfig = map[string]any{"initial_backoff": "2s", "max_backoff": "5s", "max_attempts": 4}

func harness(t *testing.T, cfg map[string]any) *stagetest.Harness {
	t.Helper()
	return stagetest.New(t, retransmitstage.New(), stagetest.Options{App: "demo", Config: cfg})
}

func want(t *testing.T, what string, got, w stage.Reply) {
	t.Helper()
	if !reflect.DeepEqual(got, w) {
		t.Errorf("%s: got %+v, want %+v", what, got, w)
	}
}

// TestResendWithBackoffThenUndelivered: writes 1 to 3 are resent after a doubling wait capped at
// max_backoff; the fourth (max_attempts) is given up on after its wait.
func TestResendWithBackoffThenUndelivered(t *testing.T) {
	h := harness(t, testConfig)
	c := h.Conn("d1")
	for attempts, w := range map[int]stage.Reply{
		1: stage.ResendAfter(2 * time.Second),
		2: stage.ResendAfter(4 * time.Second),
		3: stage.ResendAfter(5 * time.Second),
		4: stage.GiveUpAfter(5 * time.Second),
		9: stage.GiveUpAfter(5 * time.Second), // more writes than asked (an adoption's replay)
	} {
		got := h.Retransmit(c, 1, 100, stage.AtLeastOnce, attempts)
		want(t, fmt.Sprint("attempt ", attempts), got, w)
	}
	if r := h.Retransmit(c, 1, 100, stage.AtLeastOnce, 4); r.Verdict != stage.Reject {
		t.Errorf("the last attempt's answer does not give up: %+v", r)
	}
	// The stage makes no Host call: the state server keeps records and timers.
	if n := len(h.Host.Timers()); n != 0 {
		t.Errorf("%d host timers set", n)
	}
}

func TestQoS(t *testing.T) {
	h := harness(t, testConfig)
	c := h.Conn("d1")
	want(t, "at most once", h.Retransmit(c, 1, 100, stage.AtMostOnce, 1), stage.Untrack())
	want(t, "default QoS", h.Retransmit(c, 2, 101, stage.QoSDefault, 1), stage.ResendAfter(2*time.Second))
	want(t, "at least once", h.Retransmit(c, 3, 102, stage.AtLeastOnce, 1), stage.ResendAfter(2*time.Second))
}

func TestDefaults(t *testing.T) {
	h := harness(t, nil)
	c := h.Conn("d1")
	want(t, "first", h.Retransmit(c, 1, 1, stage.AtLeastOnce, 1), stage.ResendAfter(retransmitstage.DefaultInitialBackoff))
	want(t, "last", h.Retransmit(c, 1, 1, stage.AtLeastOnce, retransmitstage.DefaultMaxAttempts),
		stage.GiveUpAfter(retransmitstage.DefaultMaxBackoff))
}

func TestMaxAttemptsOne(t *testing.T) {
	h := harness(t, map[string]any{"max_attempts": 1})
	want(t, "first", h.Retransmit(h.Conn("d1"), 1, 100, stage.AtLeastOnce, 1), stage.GiveUpAfter(retransmitstage.DefaultInitialBackoff))
}

// TestHandlesOnlyRetransmit: the stage is asked by the state server and listens to nothing else,
// so a pipeline file that lists other signals for it is refused at load.
func TestHandlesOnlyRetransmit(t *testing.T) {
	p := stage.InProcess(retransmitstage.New())
	_, sigs, err := p.Describe(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(sigs) != 1 || sigs[0] != stage.SignalRetransmit {
		t.Errorf("signals %v, want [retransmit]", sigs)
	}
}

func TestBackoffBounds(t *testing.T) {
	c := retransmitstage.Config{InitialBackoff: time.Second, MaxBackoff: time.Minute, MaxAttempts: 100}
	if got := c.Backoff(0); got != time.Second {
		t.Errorf("Backoff(0) = %s", got)
	}
	if got := c.Backoff(80); got != time.Minute {
		t.Errorf("Backoff(80) = %s, want the cap", got)
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
