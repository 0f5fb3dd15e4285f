package stage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// patience bounds every wait for something that must happen; only a hang reaches it.
const patience = 10 * time.Second

// fakeCall is a request on the tests' mux: its id and a body.
type fakeCall struct {
	id   uint64
	body string
}

// fakeReply is what the other side sends back: a response, or err to end the stream.
type fakeReply struct {
	id   uint64
	body string
	err  error
}

// fakeConn is a muxConn whose other side is the test: it reads the calls from sent and the
// cancels from cancelled, and replies through replies.
type fakeConn struct {
	sent      chan fakeCall
	cancelled chan uint64
	replies   chan fakeReply
	stuck     atomic.Bool // send, once it has delivered, blocks until the stream ends
	gone      chan struct{}
	goneOnce  sync.Once
}

var _ callCanceller = (*fakeConn)(nil)

func (c *fakeConn) end() { c.goneOnce.Do(func() { close(c.gone) }) }

func (c *fakeConn) send(r fakeCall) error {
	select {
	case c.sent <- r:
	case <-c.gone:
		return io.EOF
	}
	if c.stuck.Load() {
		<-c.gone
		return io.EOF
	}
	return nil
}

func (c *fakeConn) sendCancel(id uint64) error {
	select {
	case c.cancelled <- id:
		return nil
	case <-c.gone:
		return io.EOF
	}
}

func (c *fakeConn) recv() (uint64, string, error) {
	select {
	case r := <-c.replies:
		return r.id, r.body, r.err
	case <-c.gone:
		return 0, "", errors.New("stream ended")
	}
}

func (c *fakeConn) reply(t *testing.T, r fakeReply) {
	t.Helper()
	select {
	case c.replies <- r:
	case <-time.After(patience):
		t.Fatal("the receiver took no reply")
	}
}

// awaitCalls is the next n calls the sender sent on c.
func (c *fakeConn) awaitCalls(t *testing.T, n int) []fakeCall {
	t.Helper()
	calls := make([]fakeCall, n)
	for i := range calls {
		calls[i] = await(t, c.sent, "call sent")
	}
	return calls
}

// echo answers every call on c with "re:" and its body, each from its own goroutine so that
// answers come back in any order, until the stream ends.
func (c *fakeConn) echo() {
	for {
		select {
		case r := <-c.sent:
			go func() {
				select {
				case c.replies <- fakeReply{id: r.id, body: "re:" + r.body}:
				case <-c.gone:
				}
			}()
		case <-c.gone:
			return
		}
	}
}

// fakeMux is a mux over fakeConns; conns has each stream it opens, for the test to play the other
// side.
type fakeMux struct {
	mux[fakeCall, string]
	conns chan *fakeConn
}

func newFakeMux(t *testing.T) *fakeMux {
	m := &fakeMux{conns: make(chan *fakeConn, 8)}
	m.open = func(context.Context) (muxConn[fakeCall, string], context.CancelFunc, error) {
		c := &fakeConn{
			sent:      make(chan fakeCall),
			cancelled: make(chan uint64, 64),
			replies:   make(chan fakeReply),
			gone:      make(chan struct{}),
		}
		m.conns <- c
		return c, c.end, nil
	}
	t.Cleanup(func() { m.close(errors.New("test over")) })
	return m
}

// call makes one call over m's stream.
func (m *fakeMux) call(ctx context.Context, body string) (string, callEnd) {
	s, err := m.stream(ctx)
	if err != nil {
		panic(err) // the fake's open cannot fail, and the tests close m only at the end
	}
	id := m.nextID()
	return s.call(ctx, id, fakeCall{id: id, body: body})
}

// goCall makes the call on its own goroutine; the channel has its outcome.
func (m *fakeMux) goCall(ctx context.Context, body string) <-chan callOutcome {
	out := make(chan callOutcome, 1)
	go func() {
		resp, end := m.call(ctx, body)
		out <- callOutcome{resp, end}
	}()
	return out
}

// goCalls makes a call for each body, each on its own goroutine.
func (m *fakeMux) goCalls(ctx context.Context, bodies ...string) []<-chan callOutcome {
	outs := make([]<-chan callOutcome, len(bodies))
	for i, body := range bodies {
		outs[i] = m.goCall(ctx, body)
	}
	return outs
}

type callOutcome struct {
	resp string
	end  callEnd
}

// await is the next value from ch; the test fails when none comes.
func await[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(patience):
		t.Fatalf("%s: nothing after %v", what, patience)
		var none T
		return none
	}
}

func TestMuxRoutesByID(t *testing.T) {
	m := newFakeMux(t)
	ctx := context.Background()
	bodies := make([]string, 32)
	for i := range bodies {
		bodies[i] = fmt.Sprint("call ", i)
	}
	outs := m.goCalls(ctx, bodies...)
	c := await(t, m.conns, "stream opened")
	calls := c.awaitCalls(t, len(bodies))
	// Every call is in flight at once. An answer nobody waits for is dropped, and the others come
	// back last first, so only their ids can route them.
	c.reply(t, fakeReply{id: 1 << 40, body: "stray"})
	for i := len(calls) - 1; i >= 0; i-- {
		c.reply(t, fakeReply{id: calls[i].id, body: "re:" + calls[i].body})
	}
	for i, out := range outs {
		if o := await(t, out, "call ended"); o.end != callAnswered || o.resp != fmt.Sprint("re:call ", i) {
			t.Errorf("call %d: %+v", i, o)
		}
	}

	// Concurrent callers, answered in any order, keep getting their own answers on one stream.
	go c.echo()
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			for i := range 50 {
				body := fmt.Sprint(g, "-", i)
				if resp, end := m.call(ctx, body); end != callAnswered || resp != "re:"+body {
					t.Errorf("caller %d call %d: %q %v", g, i, resp, end)
					return
				}
			}
		})
	}
	wg.Wait()
	select {
	case <-m.conns:
		t.Error("a second stream was opened")
	default:
	}
	if n := waiters(m.cur.Load()); n != 0 {
		t.Errorf("%d waiters left registered", n)
	}
}

func TestMuxBrokenStreamFailsEveryWaiterAndReopens(t *testing.T) {
	m := newFakeMux(t)
	ctx := context.Background()
	outs := m.goCalls(ctx, "a", "b", "c", "d", "e", "f", "g", "h")
	c := await(t, m.conns, "stream opened")
	c.awaitCalls(t, len(outs))
	broken := errors.New("broken on purpose")
	c.reply(t, fakeReply{err: broken})
	for i, out := range outs {
		if o := await(t, out, "call ended"); o.end != callBroken {
			t.Errorf("caller %d: %+v, want it broken", i, o)
		}
	}
	if err := m.cur.Load().cause(); err != broken {
		t.Errorf("cause = %v", err)
	}

	// The next call opens a new stream.
	out := m.goCall(ctx, "again")
	c2 := await(t, m.conns, "stream opened")
	again := await(t, c2.sent, "call sent")
	c2.reply(t, fakeReply{id: again.id, body: "re:again"})
	if o := await(t, out, "call ended"); o.end != callAnswered || o.resp != "re:again" {
		t.Errorf("after reopening: %+v", o)
	}
}

// A call the sender never took ends as not sent (its caller may make it another way); one it took
// ends as broken (it may have taken effect).
func TestMuxCallNotSent(t *testing.T) {
	m := newFakeMux(t)
	ctx := context.Background()
	s, err := m.stream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c := await(t, m.conns, "stream opened")
	c.stuck.Store(true) // the other side stops reading after the first call
	call := func(id uint64) <-chan callOutcome {
		out := make(chan callOutcome, 1)
		go func() {
			resp, end := s.call(ctx, id, fakeCall{id: id})
			out <- callOutcome{resp, end}
		}()
		return out
	}
	sent := call(1)
	await(t, c.sent, "call sent")
	unsent := call(2)
	for deadline := time.Now().Add(patience); waiters(s) < 2; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the second call never registered")
		}
	}
	c.reply(t, fakeReply{err: errors.New("broken on purpose")})
	if o := await(t, sent, "call ended"); o.end != callBroken {
		t.Errorf("sent call: %+v, want it broken", o)
	}
	if o := await(t, unsent, "call ended"); o.end != callNotSent {
		t.Errorf("unsent call: %+v, want it not sent", o)
	}
	if _, end := s.call(ctx, 3, fakeCall{id: 3}); end != callNotSent {
		t.Errorf("call on the broken stream: %v, want not sent", end)
	}
}

// expiringCtx is a context the test expires by hand, so that a deadline passes exactly when the
// test says.
type expiringCtx struct {
	context.Context
	done chan struct{}
}

func (c *expiringCtx) Done() <-chan struct{} { return c.done }

func (c *expiringCtx) Err() error {
	select {
	case <-c.done:
		return context.DeadlineExceeded
	default:
		return nil
	}
}

// A caller whose ctx ends leaves at once; its answer, when it comes, is dropped. Only a cancelled
// caller has the other side cancel its call: an expired one's deadline went with the call.
func TestMuxLateAnswerDropped(t *testing.T) {
	m := newFakeMux(t)
	expiring := &expiringCtx{Context: context.Background(), done: make(chan struct{})}
	out := m.goCall(expiring, "expired")
	c := await(t, m.conns, "stream opened")
	expired := await(t, c.sent, "call sent")
	close(expiring.done)
	if o := await(t, out, "call ended"); o.end != callCtxEnded {
		t.Fatalf("expired call: %+v", o)
	}

	ctx, cancel := context.WithCancel(context.Background())
	out = m.goCall(ctx, "cancelled")
	cancelled := await(t, c.sent, "call sent")
	cancel()
	if o := await(t, out, "call ended"); o.end != callCtxEnded {
		t.Fatalf("cancelled call: %+v", o)
	}
	select {
	case id := <-c.cancelled:
		if id != cancelled.id {
			t.Errorf("cancel sent for call %d, want %d (the cancelled one, not the expired %d)", id, cancelled.id, expired.id)
		}
	case <-time.After(patience):
		t.Fatal("no cancel was sent for the cancelled call")
	}

	c.reply(t, fakeReply{id: expired.id, body: "re:expired"})
	c.reply(t, fakeReply{id: cancelled.id, body: "re:cancelled"})
	out = m.goCall(context.Background(), "next")
	next := await(t, c.sent, "call sent")
	c.reply(t, fakeReply{id: next.id, body: "re:next"})
	if o := await(t, out, "call ended"); o.end != callAnswered || o.resp != "re:next" {
		t.Errorf("next call: %+v", o)
	}
	if n := waiters(m.cur.Load()); n != 0 {
		t.Errorf("%d waiters left registered", n)
	}
}

func TestMuxClose(t *testing.T) {
	m := newFakeMux(t)
	out := m.goCall(context.Background(), "waiting")
	c := await(t, m.conns, "stream opened")
	await(t, c.sent, "call sent")
	closed := errors.New("closed")
	s := m.cur.Load()
	m.close(closed)
	if o := await(t, out, "call ended"); o.end != callBroken {
		t.Errorf("waiting call: %+v, want it broken", o)
	}
	if err := s.cause(); err != closed {
		t.Errorf("cause = %v", err)
	}
	if _, err := m.stream(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("stream after close: %v", err)
	}
}
