package natsd

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// syncBuffer collects log output from the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestStartRandomPortWithJetStream(t *testing.T) {
	var logs syncBuffer
	// NATS' routine notices are logged at debug level (Plato's own line says where it listens).
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	s, err := Start(ctx, Config{Port: 0, StoreDir: t.TempDir()}, logger)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	defer func() {
		s.Shutdown()
		s.WaitForShutdown()
	}()
	if !strings.HasPrefix(s.ClientURL(), "nats://127.0.0.1:") || strings.HasSuffix(s.ClientURL(), ":4222") {
		t.Errorf("ClientURL = %q, want a random port on 127.0.0.1", s.ClientURL())
	}

	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer nc.Close()
	js, err := nc.JetStream()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.AccountInfo(); err != nil {
		t.Fatalf("jetstream not available: %v", err)
	}
	if !strings.Contains(logs.String(), "component=nats") {
		t.Errorf("nats logs were not routed to slog; got:\n%s", logs.String())
	}
}

func TestStartPortTaken(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	_, err = Start(ctx, Config{Port: port, StoreDir: t.TempDir()}, slog.New(slog.DiscardHandler))
	if err == nil {
		t.Fatal("Start succeeded on a taken port")
	}
	t.Logf("error: %v", err)
	if !strings.Contains(err.Error(), "address already in use") {
		t.Errorf("error %q does not say the address is in use", err)
	}
	if d := time.Since(start); d >= ReadyTimeout {
		t.Errorf("took %v to fail; want a fast failure", d)
	}
}

func TestStartNeedsStoreDir(t *testing.T) {
	if _, err := Start(context.Background(), Config{}, nil); err == nil {
		t.Fatal("Start without StoreDir succeeded")
	}
}

func TestClusterConfigIsChecked(t *testing.T) {
	ctx := context.Background()
	quiet := slog.New(slog.DiscardHandler)
	for name, c := range map[string]Cluster{
		"routes without a name":  {Routes: []string{"nats-route://127.0.0.1:6222"}},
		"a route that is no URL": {Name: "c", Routes: []string{"::"}},
		"a bad port":             {Name: "c", Port: 70000},
	} {
		if _, err := Start(ctx, Config{StoreDir: t.TempDir(), Cluster: c}, quiet); err == nil {
			t.Errorf("%s: started", name)
		}
	}
	s, err := Start(ctx, Config{StoreDir: t.TempDir()}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { s.Shutdown(); s.WaitForShutdown() }()
	if s.ClusterURL() != "" || !s.JetStreamReady() {
		t.Errorf("a lone server: cluster URL %q, JetStream ready %v", s.ClusterURL(), s.JetStreamReady())
	}
}
