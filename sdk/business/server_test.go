package business

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	kclient "github.com/cloudwego/kitex/client"

	"github.com/platoim/plato/sdk/business/rpc/plato/api"
	bizservice "github.com/platoim/plato/sdk/business/rpc/plato/api/business"
	"github.com/platoim/plato/sdk/poll"
)

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// startServer serves h on a free loopback port and returns a Kitex client of it, as Plato's state
// server would be.
func startServer(t *testing.T, h Handlers) (*Server, bizservice.Client) {
	t.Helper()
	s, err := Listen("127.0.0.1:0", h, WithLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Stop(ctx); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
	cli, err := bizservice.NewClient("business", kclient.WithHostPorts(s.Addr()), kclient.WithRPCTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	return s, cli
}

func TestServerDeliverBatch(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	record := func(s string) {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, s)
	}
	note := func(ctx context.Context, e Event) {
		record(fmt.Sprintf("%s %s conn=%d reason=%d msg=%d seq=%d attempts=%d", e.Kind, e.DID, e.ConnID, e.Reason, e.MsgID, e.Seq, e.Attempts))
	}
	h := Handlers{
		Uplink: func(ctx context.Context, u Uplink) error {
			record(fmt.Sprintf("uplink %s seq=%d %s", u.DID, u.Seq, u.Payload))
			switch string(u.Payload) {
			case "refuse":
				return fmt.Errorf("checking: %w", Refuse(2042, "no thanks"))
			case "out of range":
				return Refuse(1203, "not a business code")
			case "fail":
				return errors.New("database down")
			case "panic":
				panic("boom")
			}
			return nil
		},
		Connected: note, Disconnected: note, Undelivered: note,
	}
	_, cli := startServer(t, h)
	up := func(seq int64, payload string) *api.Event {
		return &api.Event{Kind: api.EventKind_UPLINK, AppId: "a", Did: "d1", ConnId: 7, Seq: seq, Payload: []byte(payload)}
	}
	events := []*api.Event{
		{Kind: api.EventKind_CONNECTED, AppId: "a", Did: "d1", ConnId: 7},
		up(1, "hello"), up(2, "refuse"), up(3, "out of range"), up(4, "fail"), up(5, "panic"), up(6, "after"),
		{Kind: api.EventKind(99), Did: "d1"}, // a kind from a newer Plato: ignored, accepted
		{Kind: api.EventKind_UNDELIVERED, Did: "d1", ConnId: 7, MsgId: 11, Seq: 3, Attempts: 4},
		{Kind: api.EventKind_DISCONNECTED, Did: "d1", ConnId: 7, Reason: 1201},
		{Kind: api.EventKind_RESUMED, Did: "d1"}, // no handler: ignored
	}
	resp, err := cli.Deliver(context.Background(), &api.DeliverRequest{Events: events})
	if err != nil {
		t.Fatal(err)
	}
	type res struct {
		code int32
		msg  string
	}
	want := []res{{}, {}, {2042, "no thanks"}, {2000, "not a business code"}, {2000, "internal error"}, {2000, "internal error"}, {}, {}, {}, {}, {}}
	if len(resp.Results) != len(want) {
		t.Fatalf("%d results for %d events", len(resp.Results), len(want))
	}
	for i, r := range resp.Results {
		if got := (res{r.Code, r.Message}); got != want[i] {
			t.Errorf("result %d = %+v, want %+v", i, got, want[i])
		}
	}
	wantSeen := []string{
		"connected d1 conn=7 reason=0 msg=0 seq=0 attempts=0",
		"uplink d1 seq=1 hello", "uplink d1 seq=2 refuse", "uplink d1 seq=3 out of range",
		"uplink d1 seq=4 fail", "uplink d1 seq=5 panic", "uplink d1 seq=6 after",
		"undelivered d1 conn=7 reason=0 msg=11 seq=3 attempts=4",
		"disconnected d1 conn=7 reason=1201 msg=0 seq=0 attempts=0",
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(seen, wantSeen) {
		t.Errorf("handled\n%q\nwant\n%q", seen, wantSeen)
	}
}

func TestServerNilHandlers(t *testing.T) {
	_, cli := startServer(t, Handlers{})
	resp, err := cli.Deliver(context.Background(), &api.DeliverRequest{Events: []*api.Event{
		{Kind: api.EventKind_UPLINK, Payload: []byte("x")}, {Kind: api.EventKind_CONNECTED},
	}})
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range resp.Results {
		if r.Code != 0 {
			t.Errorf("result %d = %d, want accepted", i, r.Code)
		}
	}
	sr, err := cli.Sessions(context.Background(), &api.SessionsRequest{AppId: "a", Did: "d"})
	if err != nil || len(sr.Sessions) != 0 {
		t.Fatalf("Sessions = %v, %v; want none", sr, err)
	}
}

func TestServerSessions(t *testing.T) {
	gotc := make(chan Device, 1)
	_, cli := startServer(t, Handlers{Sessions: func(ctx context.Context, d Device) ([]string, error) {
		switch d.DID {
		case "broken":
			return nil, errors.New("store unavailable")
		case "panic":
			panic("boom")
		}
		gotc <- d
		return []string{"lobby", "team-7"}, nil
	}})
	resp, err := cli.Sessions(context.Background(), &api.SessionsRequest{
		AppId: "a", Did: "alice", Uid: "u1", ConnId: 9, GatewayId: "gw-1", Platform: "ios/17",
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(resp.Sessions, []string{"lobby", "team-7"}) {
		t.Errorf("sessions = %q", resp.Sessions)
	}
	got := <-gotc
	want := Device{AppID: "a", DID: "alice", UID: "u1", ConnID: 9, GatewayID: "gw-1", Platform: "ios/17"}
	if got.AppID != want.AppID || got.DID != want.DID || got.UID != want.UID || got.ConnID != want.ConnID ||
		got.GatewayID != want.GatewayID || got.Platform != want.Platform {
		t.Errorf("handler got %+v, want %+v", got, want)
	}
	for _, did := range []string{"broken", "panic"} {
		if _, err := cli.Sessions(context.Background(), &api.SessionsRequest{AppId: "a", Did: did}); err == nil {
			t.Errorf("Sessions of %s: no error", did)
		}
	}
}

func TestServerLifecycle(t *testing.T) {
	t.Run("stop before start", func(t *testing.T) {
		s, err := Listen("127.0.0.1:0", Handlers{}, WithLogger(quietLogger()))
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Stop(context.Background()); err != nil {
			t.Fatal(err)
		}
		if err := s.Start(); err == nil {
			t.Fatal("Start after Stop succeeded")
		}
	})
	t.Run("serve returns after stop", func(t *testing.T) {
		s, err := Listen("127.0.0.1:0", Handlers{}, WithLogger(quietLogger()))
		if err != nil {
			t.Fatal(err)
		}
		served := make(chan error, 1)
		go func() { served <- s.Serve() }()
		cli, err := bizservice.NewClient("business", kclient.WithHostPorts(s.Addr()))
		if err != nil {
			t.Fatal(err)
		}
		poll.Until(t, "the server to answer", func() bool {
			_, err := cli.Sessions(context.Background(), &api.SessionsRequest{})
			return err == nil
		})
		if err := s.Serve(); err == nil {
			t.Error("second Serve succeeded")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Stop(ctx); err != nil {
			t.Fatal(err)
		}
		if err := <-served; err != nil {
			t.Fatalf("Serve: %v", err)
		}
		if _, err := cli.Sessions(context.Background(), &api.SessionsRequest{}); err == nil {
			t.Error("a stopped server answered")
		}
	})
	t.Run("stop right after start", func(t *testing.T) {
		s, err := Listen("127.0.0.1:0", Handlers{}, WithLogger(quietLogger()))
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Start(); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Stop(ctx); err != nil {
			t.Fatalf("Stop: %v", err)
		}
	})
}
