package state

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/platoim/plato/sdk/business/rpc/plato/api"
	"github.com/platoim/plato/sdk/poll"
)

// flakyLink fails its first fails Deliver calls, then records the events.
type flakyLink struct {
	fakeBusiness
	mu    sync.Mutex
	calls int
	fails int
	got   []*api.Event
}

func (f *flakyLink) Deliver(_ context.Context, req *api.DeliverRequest) (*api.DeliverResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.calls <= f.fails {
		return nil, errors.New("business down")
	}
	f.got = append(f.got, req.Events...)
	return &api.DeliverResponse{}, nil
}

func (f *flakyLink) counts() (calls, got int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls, len(f.got)
}

func newTestRetry(t *testing.T, fails int) (*eventRetry, *flakyLink, *testServer) {
	ts := newTestServer(t)
	fl := &flakyLink{fails: fails}
	l := &businessLink{addr: "flaky", cli: fl}
	r := newEventRetry(ts.Server, l)
	r.base, r.maxDelay, r.attempts, r.queueMax = time.Millisecond, 8*time.Millisecond, 4, 10
	t.Cleanup(r.stop)
	return r, fl, ts
}

func events(n int) []*api.Event {
	evs := make([]*api.Event, n)
	for i := range evs {
		evs[i] = &api.Event{Kind: api.EventKind_DISCONNECTED, Did: "d", ConnId: int64(i)}
	}
	return evs
}

func TestRetryDeliversOnceTheBusinessIsBack(t *testing.T) {
	r, fl, ts := newTestRetry(t, 2)
	r.add(events(3))
	poll.Within(t, 10*time.Second, "the events to get through on the third try", func() bool {
		_, got := fl.counts()
		return got == 3
	})
	if calls, _ := fl.counts(); calls != 3 {
		t.Fatalf("%d calls, want 3 (two failures, then one batch)", calls)
	}
	if n := ts.metrics.businessGaveUp.Load(); n != 0 {
		t.Fatalf("%d events given up", n)
	}
	poll.Within(t, 10*time.Second, "the retry goroutine to end with its queue", func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		return !r.running
	})
}

func TestRetryGivesUpAfterItsAttempts(t *testing.T) {
	r, fl, ts := newTestRetry(t, 1<<30)
	r.add(events(3))
	poll.Within(t, 10*time.Second, "the events to be given up", func() bool {
		return ts.metrics.businessGaveUp.Load() == 3
	})
	if calls, _ := fl.counts(); calls != 4 {
		t.Fatalf("%d calls, want 4 (the attempts, each carrying the 3 events)", calls)
	}
}

func TestRetryQueueIsBounded(t *testing.T) {
	r, _, ts := newTestRetry(t, 1<<30)
	r.base = time.Hour // nothing leaves the queue during the test
	r.add(events(25))
	if n := ts.metrics.businessGaveUp.Load(); n != 15 {
		t.Fatalf("%d events given up at once, want the 15 over the bound of 10", n)
	}
	r.stop()
	if n := ts.metrics.businessGaveUp.Load(); n != 25 {
		t.Fatalf("%d events given up after stop, want all 25", n)
	}
	r.add(events(1))
	if n := ts.metrics.businessGaveUp.Load(); n != 26 {
		t.Fatalf("an event added after stop was not given up: %d", n)
	}
}
