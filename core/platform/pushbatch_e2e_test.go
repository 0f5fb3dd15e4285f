package platform_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/platoim/plato/core/platform/platformtest"
	"github.com/platoim/plato/sdk/business"
	"github.com/platoim/plato/sdk/client"
	"github.com/platoim/plato/sdk/protocol"
)

func businessClient(t *testing.T, addr, app, key string) *business.Client {
	t.Helper()
	bc, err := business.NewClient(business.ClientConfig{Addr: addr, AppID: app, Key: key, Timeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bc.Close() })
	return bc
}

// receive reads n messages from c, failing after a generous deadline.
func receiveN(t *testing.T, c *client.Client, n int, who string) []client.Message {
	t.Helper()
	out := make([]client.Message, 0, n)
	deadline := time.After(30 * time.Second)
	for len(out) < n {
		select {
		case m := <-c.Messages():
			out = append(out, m)
		case <-deadline:
			t.Fatalf("%s got %d of %d messages", who, len(out), n)
		}
	}
	return out
}

// nothingMore checks that c receives no further message for a while (no duplicate arrives).
func nothingMore(t *testing.T, c *client.Client, who string) {
	t.Helper()
	select {
	case m := <-c.Messages():
		t.Fatalf("%s got an extra message %q (seq %d)", who, m.Payload, m.Seq)
	case <-time.After(300 * time.Millisecond):
	}
}

// TestPushBatchEndToEnd pushes batches through Plato's RPC (sdk/business over a real socket), the
// pipeline with the retransmit plugin process, and the gateway to devices on real sockets.
func TestPushBatchEndToEnd(t *testing.T) {
	pp := startWithPipeline(t, "")
	const devices = 5
	dids := make([]string, devices)
	conns := make([]*client.Client, devices)
	for i := range dids {
		dids[i] = fmt.Sprintf("pb-%d", i)
		conns[i] = dial(t, pp.Platform, dids[i])
	}
	bc := businessClient(t, pp.State.Addr(), "demo", platformtest.KeyOf("demo"))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	t.Run("each push arrives once, in order, with its own result", func(t *testing.T) {
		const n = 40
		pushes := make([]business.Push, n)
		for i := range pushes {
			pushes[i] = business.Push{DIDs: []string{dids[i%devices]}, Payload: fmt.Appendf(nil, "m%d", i), QoS: business.QoSAtLeastOnce}
		}
		// One more to every device and one to an offline did.
		pushes = append(pushes, business.Push{DIDs: append([]string{"pb-offline"}, dids...), Payload: []byte("all"), WaitAck: true, Timeout: 10 * time.Second})
		res, err := bc.PushBatch(ctx, pushes)
		if err != nil {
			t.Fatalf("PushBatch: %v", err)
		}
		if len(res) != len(pushes) {
			t.Fatalf("%d results for %d pushes", len(res), len(pushes))
		}
		msgIDs := map[int64]bool{}
		for i, r := range res[:n] {
			if r.Err != nil {
				t.Fatalf("push %d: %v", i, r.Err)
			}
			if len(r.Result.Targets) != 1 || r.Result.Targets[0].DID != dids[i%devices] || r.Result.Targets[0].Status != business.StatusSent {
				t.Fatalf("push %d: targets %+v, want SENT to %s", i, r.Result.Targets, dids[i%devices])
			}
			if msgIDs[r.Result.MsgID] {
				t.Fatalf("push %d: msg_id %d given twice", i, r.Result.MsgID)
			}
			msgIDs[r.Result.MsgID] = true
		}
		last := res[n]
		if last.Err != nil {
			t.Fatalf("push to all: %v", last.Err)
		}
		if got := last.Result.Targets; len(got) != devices+1 || got[0].Status != business.StatusOffline {
			t.Fatalf("push to all: targets %+v, want pb-offline OFFLINE then %d devices", got, devices)
		}
		for _, tg := range last.Result.Targets[1:] {
			if tg.Status != business.StatusAcked {
				t.Fatalf("push to all (wait_ack): %s is %v, want ACKED", tg.DID, tg.Status)
			}
		}
		for d, c := range conns {
			got := receiveN(t, c, n/devices+1, dids[d])
			var want []string
			for i := d; i < n; i += devices {
				want = append(want, fmt.Sprintf("m%d", i))
			}
			want = append(want, "all")
			for k, m := range got {
				if string(m.Payload) != want[k] {
					t.Fatalf("%s message %d: %q, want %q (batch order)", dids[d], k, m.Payload, want[k])
				}
				if k > 0 && m.Seq <= got[k-1].Seq {
					t.Fatalf("%s: seq %d after %d", dids[d], m.Seq, got[k-1].Seq)
				}
			}
			nothingMore(t, c, dids[d])
		}
	})

	t.Run("a bad push gets its own error and the others go", func(t *testing.T) {
		pushes := []business.Push{
			{DIDs: []string{dids[0]}, Payload: []byte("before")},
			{Payload: []byte("nobody")},                             // no target
			{DIDs: []string{dids[0]}, Payload: make([]byte, 1<<20)}, // larger than a device frame
			{DIDs: []string{"bad\x00did"}, Payload: []byte("x")},
			{DIDs: []string{dids[0]}, Payload: []byte("after")},
		}
		res, err := bc.PushBatch(ctx, pushes)
		if err != nil {
			t.Fatalf("PushBatch: %v", err)
		}
		for _, i := range []int{1, 2, 3} {
			if code := business.CodeOf(res[i].Err); code != int(protocol.CodeInvalidArgument) {
				t.Fatalf("push %d: %v, want code %d", i, res[i].Err, protocol.CodeInvalidArgument)
			}
		}
		for _, i := range []int{0, 4} {
			if res[i].Err != nil || res[i].Result.Targets[0].Status != business.StatusSent {
				t.Fatalf("push %d: %+v %v, want SENT", i, res[i].Result, res[i].Err)
			}
		}
		got := receiveN(t, conns[0], 2, dids[0])
		if string(got[0].Payload) != "before" || string(got[1].Payload) != "after" {
			t.Fatalf("%s got %q, %q", dids[0], got[0].Payload, got[1].Payload)
		}
		nothingMore(t, conns[0], dids[0])
	})

	t.Run("another app's key is refused", func(t *testing.T) {
		other := businessClient(t, pp.State.Addr(), "demo", platformtest.KeyOf("app-a"))
		_, err := other.PushBatch(ctx, []business.Push{{DIDs: []string{dids[0]}, Payload: []byte("stolen")}})
		if code := business.CodeOf(err); code != int(protocol.CodeAppMismatch) {
			t.Fatalf("PushBatch with app-a's key for demo: %v, want code %d", err, protocol.CodeAppMismatch)
		}
		// app-a's own key and app: demo's devices are not app-a's, so they are offline to it.
		appA := businessClient(t, pp.State.Addr(), "app-a", platformtest.KeyOf("app-a"))
		res, err := appA.PushBatch(ctx, []business.Push{{DIDs: []string{dids[0]}, Payload: []byte("stolen")}})
		if err != nil || res[0].Err != nil || res[0].Result.Targets[0].Status != business.StatusOffline {
			t.Fatalf("app-a pushing to demo's did: %+v %v, want OFFLINE", res, err)
		}
		nothingMore(t, conns[0], dids[0])
	})

	t.Run("concurrent batches keep each batch's order per device", func(t *testing.T) {
		const senders, batches, per = 4, 3, 30
		var wg sync.WaitGroup
		errs := make(chan error, senders*batches)
		for g := range senders {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for b := range batches {
					pushes := make([]business.Push, per)
					for i := range pushes {
						pushes[i] = business.Push{DIDs: []string{dids[i%devices]}, Payload: fmt.Appendf(nil, "g%d %d", g, b*per+i)}
					}
					res, err := bc.PushBatch(ctx, pushes)
					if err != nil {
						errs <- err
						return
					}
					for i, r := range res {
						if r.Err != nil || r.Result.Targets[0].Status != business.StatusSent {
							errs <- fmt.Errorf("sender %d batch %d push %d: %+v %v", g, b, i, r.Result, r.Err)
							return
						}
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		for d, c := range conns {
			got := receiveN(t, c, senders*batches*per/devices, dids[d])
			last := map[int]int{}
			for g := range senders {
				last[g] = -1
			}
			for _, m := range got {
				var g, k int
				if _, err := fmt.Sscanf(string(m.Payload), "g%d %d", &g, &k); err != nil || !strings.HasPrefix(string(m.Payload), "g") {
					t.Fatalf("%s: unexpected message %q", dids[d], m.Payload)
				}
				if k <= last[g] {
					t.Fatalf("%s: sender %d's message %d after %d", dids[d], g, k, last[g])
				}
				last[g] = k
			}
			nothingMore(t, c, dids[d])
		}
	})
}
