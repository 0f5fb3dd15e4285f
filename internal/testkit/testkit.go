// Package testkit holds the helpers the roles' test packages share (core/platform/platformtest,
// core/gateway/gatewaytest, core/state/statetest): a test logger, a Kitex server on a free loopback
// port, and a fake business server that records what Plato delivers to it.
package testkit

import (
	"log/slog"
	"os"
	"sync"
	"testing"

	"github.com/cloudwego/kitex/pkg/klog"
)

// Logger writes to the test log when the environment sets PLATO_TEST_LOG, and nowhere otherwise.
// It also keeps Kitex's process-wide logger to warnings (QuietKitex).
func Logger(t testing.TB) *slog.Logger {
	QuietKitex()
	if os.Getenv("PLATO_TEST_LOG") == "" {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }

var kitexOnce sync.Once

// QuietKitex keeps Kitex's process-wide logger to warnings. Its setter is not synchronised, so it
// runs once per test binary, and must be called before the binary's first Kitex server or client
// starts, never beside one: Logger and Listen call it.
func QuietKitex() { kitexOnce.Do(func() { klog.SetLevel(klog.LevelWarn) }) }
