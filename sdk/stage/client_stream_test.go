package stage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/platoim/plato/sdk/stage/internal/pb"
)

// echoStage rewrites every uplink to its own payload; "sleep" waits for ctx, "slow" ignores it
// and takes 100ms.
type echoStage struct{}

func (echoStage) Info() Info                              { return Info{Name: "echo"} }
func (echoStage) Init(context.Context, InitRequest) error { return nil }
func (echoStage) OnUplink(ctx context.Context, ev *UplinkEvent) Reply {
	switch string(ev.Payload) {
	case "sleep":
		<-ctx.Done()
	case "slow":
		time.Sleep(100 * time.Millisecond)
	}
	return Rewrite(ev.Payload)
}

// pair is a remote Processor wired to a server over an in-memory connection, counting the
// Process streams the server saw. A batch whose first payload is "break" makes the server end
// its stream with an error.
type pair struct {
	proc    *remote
	streams atomic.Int32
}

func newPair(t testing.TB) *pair {
	t.Helper()
	p := &pair{}
	srv := grpc.NewServer(grpc.StreamInterceptor(func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		p.streams.Add(1)
		return h(srv, &breakingStream{ServerStream: ss, breaks: func(m any) bool {
			w, ok := m.(*wireMsg)
			return ok && bytes.Contains(w.b, []byte("break"))
		}})
	}))
	pb.RegisterStageServer(srv, newServer(echoStage{}, newStderrLogger(), nil))
	p.proc = newRemote(serveInMemory(t, srv), nil)
	t.Cleanup(func() { _ = p.proc.Close() })
	return p
}

func uplinks(payloads ...string) []Event {
	evs := make([]Event, len(payloads))
	for i, p := range payloads {
		evs[i] = Event{Signal: SignalUplink, Conn: Conn{AppID: "a", DID: "d"}, Payload: []byte(p)}
	}
	return evs
}

func TestProcessSharesOneStream(t *testing.T) {
	p := newPair(t)
	var wg sync.WaitGroup
	var failed atomic.Int32
	for g := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 20 {
				want := fmt.Sprintf("%d-%d", g, i)
				replies := make([]Reply, 2)
				err := p.proc.Process(context.Background(), uplinks(want, want+"b"), replies)
				if err != nil || string(replies[0].Payload) != want || string(replies[1].Payload) != want+"b" {
					failed.Add(1)
					t.Errorf("caller %d call %d: %v %+v", g, i, err, replies)
					return
				}
			}
		}()
	}
	wg.Wait()
	if n := p.streams.Load(); n != 1 {
		t.Errorf("server saw %d streams, want 1", n)
	}
}

func TestBrokenStreamFailsWaitersAndReopens(t *testing.T) {
	p := newPair(t)
	if err := p.proc.Process(context.Background(), uplinks("warm"), make([]Reply, 1)); err != nil {
		t.Fatal(err)
	}
	// Callers waiting on the stream when it breaks all get the stream's error, promptly.
	const waiters = 8
	errs := make(chan error, waiters)
	for range waiters {
		go func() { errs <- p.proc.Process(context.Background(), uplinks("sleep"), make([]Reply, 1)) }()
	}
	time.Sleep(100 * time.Millisecond) // let them reach the plugin
	err := p.proc.Process(context.Background(), uplinks("break"), make([]Reply, 1))
	if status.Code(err) != codes.DataLoss || !strings.Contains(err.Error(), "stage stream broken") {
		t.Fatalf("breaking call: %v", err)
	}
	for range waiters {
		select {
		case err := <-errs:
			if status.Code(err) != codes.DataLoss {
				t.Errorf("waiter: %v, want the stream's DataLoss error", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("a waiter hung after the stream broke")
		}
	}
	// The next call opens a new stream.
	replies := make([]Reply, 1)
	if err := p.proc.Process(context.Background(), uplinks("again"), replies); err != nil || string(replies[0].Payload) != "again" {
		t.Fatalf("after reopen: %v %+v", err, replies)
	}
	if n := p.streams.Load(); n != 2 {
		t.Errorf("streams = %d, want 2", n)
	}
}

func TestCloseFailsWaiters(t *testing.T) {
	p := newPair(t)
	errc := make(chan error, 1)
	go func() { errc <- p.proc.Process(context.Background(), uplinks("sleep"), make([]Reply, 1)) }()
	time.Sleep(50 * time.Millisecond)
	_ = p.proc.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, ErrClosed) {
			t.Errorf("waiter: %v, want ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("waiter hung after Close")
	}
	if err := p.proc.Process(context.Background(), uplinks("x"), make([]Reply, 1)); !errors.Is(err, ErrClosed) {
		t.Errorf("after Close: %v", err)
	}
}

func TestLateResultIsDiscarded(t *testing.T) {
	p := newPair(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	if err := p.proc.Process(ctx, uplinks("slow"), make([]Reply, 1)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
	// The plugin answers the expired batch later; that result has no waiter and must not reach
	// the next caller.
	time.Sleep(150 * time.Millisecond)
	replies := make([]Reply, 1)
	if err := p.proc.Process(context.Background(), uplinks("next"), replies); err != nil || string(replies[0].Payload) != "next" {
		t.Fatalf("next: %v %+v", err, replies)
	}
	if n := waiters(p.proc.batches.cur.Load()); n != 0 {
		t.Errorf("%d waiters left registered", n)
	}
}

func TestShortRepliesSlice(t *testing.T) {
	for name, proc := range map[string]Processor{"remote": newPair(t).proc, "inprocess": InProcess(echoStage{})} {
		if err := proc.Process(context.Background(), uplinks("a", "b"), make([]Reply, 1)); err == nil {
			t.Errorf("%s: no error for a short replies slice", name)
		}
		if err := proc.Process(context.Background(), nil, nil); err != nil {
			t.Errorf("%s: empty batch: %v", name, err)
		}
	}
}
