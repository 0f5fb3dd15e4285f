package state

import (
	"slices"
	"testing"
	"time"

	"github.com/platoim/plato/sdk/business/rpc/plato/api"
	"github.com/platoim/plato/sdk/poll"
	"github.com/platoim/plato/sdk/protocol"
	"github.com/platoim/plato/sdk/stage"
)

// TestFirstQuestionIsDeferredSkippedOnceACKedAndTheWaitStillHolds: once the stage answered a
// first wait long enough, the question after a downlink's first write waits: a downlink ACKed
// meanwhile is never asked about; one still unACKed is asked, and is resent no earlier than the
// stage's wait after its write, then reported as the policy says; one whose connection ends
// before the question is reported undelivered all the same.
func TestFirstQuestionIsDeferredSkippedOnceACKedAndTheWaitStillHolds(t *testing.T) {
	const wait = 800 * time.Millisecond
	ts, p := retransmitServer(t, wait, 2)
	ts.loginDevice(t, 1, testApp, "a", "")

	// Nothing learned yet: the first downlink is asked about at once, which teaches the wait.
	pushTo(t, ts, "a", 1, stage.AtLeastOnce)
	poll.Within(t, within, "the first question", func() bool { return len(p.attemptsAsked(1)) == 1 })
	ts.deliver(t, testGW, frameEvent(1, protocol.SigDownlinkAck, 1, nil))
	poll.Within(t, within, "the wait learned", func() bool { return ts.asks.firstWait(testApp) == wait })

	// ACKed before its question was due: never asked.
	pushTo(t, ts, "a", 2, stage.AtLeastOnce)
	untilFrame(t, ts.gw, 1, protocol.SigDownlink, 2)
	ts.deliver(t, testGW, frameEvent(1, protocol.SigDownlinkAck, 2, nil))

	// Unacked: asked later, resent no earlier than the wait, then given up on and reported.
	written := time.Now()
	pushTo(t, ts, "a", 3, stage.AtLeastOnce)
	frames := untilFrames(t, ts.gw, 1, 4, "downlinks 1-3 and the resend of 3", isDownlink)
	if resent := time.Since(written); resent < wait {
		t.Errorf("resent %v after the write, before the stage's wait of %v", resent, wait)
	}
	if f := frames[3]; f.Seq != 3 || uint16(f.Flags)&protocol.FlagRetransmit == 0 {
		t.Errorf("fourth write: seq %d flags %#x, want seq 3 flagged", f.Seq, f.Flags)
	}
	if u := untilEvents(t, ts.biz, api.EventKind_UNDELIVERED, "a", 1)[0]; u.MsgId != 3 || u.Attempts != 2 {
		t.Errorf("UNDELIVERED %+v, want msg 3 after 2 attempts", u)
	}
	if got := p.attemptsAsked(3); !slices.Equal(got, []int{1, 2}) {
		t.Errorf("asked about downlink 3 with attempts %v, want [1 2]", got)
	}
	if got := p.attemptsAsked(2); len(got) != 0 {
		t.Errorf("asked about the ACKed downlink 2 with attempts %v, want never", got)
	}

	// The connection ends while a question is still deferred: reported undelivered, once.
	pushTo(t, ts, "a", 4, stage.AtLeastOnce)
	ts.deliver(t, testGW, closedEvent(1, protocol.CodeClientClose))
	u := untilEvents(t, ts.biz, api.EventKind_UNDELIVERED, "a", 2)
	if u[1].MsgId != 4 || u[1].Attempts != 1 {
		t.Errorf("UNDELIVERED %+v, want msg 4 after 1 attempt", u[1])
	}
	time.Sleep(wait) // the deferred question comes due and finds nothing
	if n := len(ts.biz.eventsOf(api.EventKind_UNDELIVERED, "a")); n != 2 {
		t.Errorf("%d UNDELIVERED, want 2", n)
	}
}

// TestDeferredAsksAreBounded: past maxDeferredAsks the queue refuses, and the caller asks at once.
func TestDeferredAsksAreBounded(t *testing.T) {
	var d deferredAsks
	for i := range maxDeferredAsks {
		want := askQueued
		if i == 0 {
			want = askArm
		}
		if got := d.add(deferredAsk{seq: uint64(i), due: 1}); got != want {
			t.Fatalf("question %d: %v, want %v", i, got, want)
		}
	}
	if d.add(deferredAsk{due: 1}) != askFull {
		t.Fatal("took a question past the bound")
	}
	due, more := d.takeDue(1, nil)
	if len(due) != maxDeferredAsks || more || !slices.IsSortedFunc(due, func(a, b deferredAsk) int { return int(a.seq) - int(b.seq) }) {
		t.Fatalf("took %d (more %v), want all %d in order", len(due), more, maxDeferredAsks)
	}
	if d.add(deferredAsk{due: 1}) != askArm {
		t.Fatal("a question once emptied does not arm the sweep again")
	}
}
