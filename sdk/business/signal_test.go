//go:build unix

package business

import (
	"context"
	"os"
	"os/signal"
	"syscall"
	"testing"
	"time"

	kclient "github.com/cloudwego/kitex/client"

	"github.com/platoim/plato/sdk/business/rpc/plato/api"
	bizservice "github.com/platoim/plato/sdk/business/rpc/plato/api/business"
)

// TestServerLeavesSignalsAlone: a SIGTERM is the host program's to handle; Kitex must not stop the
// server on it.
func TestServerLeavesSignalsAlone(t *testing.T) {
	s, cli := startServer(t, Handlers{})
	if _, err := cli.Sessions(context.Background(), &api.SessionsRequest{}); err != nil {
		t.Fatal(err)
	}
	// Catch the signal here, so that the test process survives it.
	got := make(chan os.Signal, 1)
	signal.Notify(got, syscall.SIGTERM)
	defer signal.Stop(got)
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-got:
	case <-time.After(5 * time.Second):
		t.Fatal("SIGTERM not delivered")
	}
	// A Kitex signal handler would close the listener at once: new connections must keep working.
	fresh, err := bizservice.NewClient("business", kclient.WithHostPorts(s.Addr()), kclient.WithShortConnection())
	if err != nil {
		t.Fatal(err)
	}
	for end := time.Now().Add(300 * time.Millisecond); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if _, err := fresh.Sessions(context.Background(), &api.SessionsRequest{}); err != nil {
			t.Fatalf("the server stopped on SIGTERM: %v", err)
		}
	}
}
