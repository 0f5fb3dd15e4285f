package pipeline

import (
	"context"
	"testing"
	"time"

	"github.com/platoim/plato/sdk/stage"
)

// TestRetransmitAnswerReachesTheOutcome: a stage's answer to a retransmit question (the wait, and
// resend or give up) comes back in the Outcome, and Listens tells which signals a chain has
// stages for.
func TestRetransmitAnswerReachesTheOutcome(t *testing.T) {
	dir := t.TempDir()
	policy := func(_ context.Context, _ *fnStage, ev stage.Event) stage.Reply {
		switch {
		case ev.QoS == stage.AtMostOnce:
			return stage.Untrack()
		case ev.Attempts >= 3:
			return stage.GiveUpAfter(3 * time.Second)
		}
		return stage.ResendAfter(time.Duration(ev.Attempts) * time.Second)
	}
	writePipeline(t, dir, "default", fileYAML(
		stageYAML("auth", "builtin:tag", "login, uplink"),
		stageYAML("retx", "builtin:retx", "retransmit"),
	))
	p := start(t, Config{Dir: dir, Builtins: map[string]func() stage.Stage{
		"tag": builtin("tag", tagStage), "retx": builtin("retx", policy),
	}})
	if !p.Listens("app", stage.SignalRetransmit) || !p.Listens("app", stage.SignalLogin) {
		t.Error("Listens: the chain's retransmit or login stage not seen")
	}
	if p.Listens("app", stage.SignalDownlinkAck) || p.Listens("app", stage.SignalDownlink) {
		t.Error("Listens: a signal no stage lists reported as listened to")
	}
	for _, tc := range []struct {
		qos      stage.QoS
		attempts int
		verdict  stage.Verdict
		after    time.Duration
	}{
		{stage.AtLeastOnce, 1, stage.Continue, time.Second},
		{stage.QoSDefault, 2, stage.Continue, 2 * time.Second},
		{stage.AtLeastOnce, 3, stage.Reject, 3 * time.Second},
		{stage.AtMostOnce, 1, stage.Drop, 0},
	} {
		got := make(chan Outcome, 1)
		ev := stage.Event{Signal: stage.SignalRetransmit, Conn: stage.Conn{AppID: "app", GatewayID: "gw", ConnID: 1}, Seq: 9, MsgID: 90, QoS: tc.qos, Attempts: tc.attempts}
		if err := p.RunReserved(ev, func(o Outcome) { got <- o }); err != nil {
			t.Fatal(err)
		}
		select {
		case o := <-got:
			if o.Verdict != tc.verdict || o.After != tc.after {
				t.Errorf("qos %d attempts %d: outcome %+v, want verdict %d after %s", tc.qos, tc.attempts, o, tc.verdict, tc.after)
			}
		case <-time.After(waitLimit):
			t.Fatal("no outcome")
		}
	}
}
