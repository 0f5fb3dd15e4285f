// Package natsdtest runs NATS servers for tests that take them away and bring them back: a lone
// server, or the nodes of a cluster, each on loopback ports picked once so that it restarts on the
// same addresses with the same JetStream directory, as an operator's restart would.
package natsdtest

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/platoim/plato/internal/natsd"
	"github.com/platoim/plato/internal/testkit"
)

// startTimeout bounds one start, and a cluster's wait for JetStream.
const startTimeout = 60 * time.Second

// Node is one NATS server that can be stopped and started again on the same ports.
type Node struct {
	t   testing.TB
	cfg natsd.Config
	log *slog.Logger

	mu  sync.Mutex
	srv *natsd.Server
}

// Standalone starts a lone server with JetStream on a port of its own; it stops with the test.
func Standalone(t testing.TB, log *slog.Logger) *Node {
	t.Helper()
	n := &Node{t: t, log: log, cfg: natsd.Config{Host: "127.0.0.1", Port: FreePort(t), StoreDir: t.TempDir(), ServerName: "natsdtest"}}
	n.Start()
	t.Cleanup(n.Stop)
	return n
}

// Cluster starts a cluster of size nodes, each knowing the others' route addresses, and waits
// until JetStream answers on every node; they stop with the test.
func Cluster(t testing.TB, size int, log *slog.Logger) []*Node {
	t.Helper()
	ports := make([]int, size)
	for i := range ports {
		ports[i] = FreePort(t)
	}
	dir := t.TempDir()
	nodes := make([]*Node, size)
	for i := range nodes {
		var routes []string
		for j, p := range ports {
			if j != i {
				routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", p))
			}
		}
		nodes[i] = &Node{t: t, log: log, cfg: natsd.Config{
			Host: "127.0.0.1", Port: FreePort(t), StoreDir: filepath.Join(dir, fmt.Sprint(i)), ServerName: fmt.Sprintf("natsdtest-%d", i),
			Cluster: natsd.Cluster{Name: "natsdtest", Host: "127.0.0.1", Port: ports[i], Routes: routes},
		}}
	}
	// Each start returns once its node listens, whatever its routes: start them together so that
	// the cluster forms once.
	var wg sync.WaitGroup
	for _, n := range nodes {
		wg.Add(1)
		go func() { defer wg.Done(); n.start() }()
	}
	wg.Wait()
	for _, n := range nodes {
		if n.server() == nil {
			t.FailNow()
		}
		t.Cleanup(n.Stop)
	}
	deadline := time.Now().Add(startTimeout)
	for _, n := range nodes {
		for !n.server().JetStreamReady() {
			if time.Now().After(deadline) {
				t.Fatalf("the cluster's JetStream was not ready within %v", startTimeout)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return nodes
}

// URLs is every node's client URL, comma-separated, as nats.url takes them.
func URLs(nodes []*Node) string {
	urls := make([]string, len(nodes))
	for i, n := range nodes {
		urls[i] = n.URL()
	}
	return strings.Join(urls, ",")
}

// URL is the node's client URL; it does not change across restarts.
func (n *Node) URL() string { return fmt.Sprintf("nats://%s:%d", n.cfg.Host, n.cfg.Port) }

// Name is the node's server name, as JetStream's cluster information gives it.
func (n *Node) Name() string { return n.cfg.ServerName }

// Start starts the node (again), failing the test if it cannot.
func (n *Node) Start() {
	n.t.Helper()
	n.start()
	if n.server() == nil {
		n.t.FailNow()
	}
}

func (n *Node) start() {
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	srv, err := natsd.Start(ctx, n.cfg, n.log)
	if err != nil {
		n.t.Errorf("starting NATS %s: %v", n.cfg.ServerName, err)
		return
	}
	n.mu.Lock()
	n.srv = srv
	n.mu.Unlock()
}

// Stop shuts the node down and waits until it is gone: its clients see their connection drop,
// and JetStream state kept in memory is lost. Stopping a stopped node does nothing.
func (n *Node) Stop() {
	n.mu.Lock()
	srv := n.srv
	n.srv = nil
	n.mu.Unlock()
	if srv != nil {
		srv.Shutdown()
		srv.WaitForShutdown()
	}
}

func (n *Node) server() *natsd.Server {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.srv
}

// FreePort is a loopback port nothing listens on, below the kernel's ephemeral range
// (testkit.FreeAddr): a port from that range could be taken by another test's outgoing connection
// between this pick and the node's bind, which made a cluster test fail under a second test run.
func FreePort(t testing.TB) int {
	t.Helper()
	_, port, err := net.SplitHostPort(testkit.FreeAddr(t))
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(port)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
