package gatewaytest

import (
	"log/slog"
	"os"
	"sync"
	"testing"

	"github.com/cloudwego/kitex/pkg/klog"
)

// Logger writes to the test log when the environment sets PLATO_TEST_LOG, and nowhere otherwise.
// It also keeps Kitex's process-wide logger to warnings.
func Logger(t testing.TB) *slog.Logger {
	quietKitex()
	if os.Getenv("PLATO_TEST_LOG") == "" {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }

var kitexOnce sync.Once

// quietKitex sets Kitex's log level once: its setter is not synchronised, so it must run before the
// first Kitex server or client of the test binary, never beside one.
func quietKitex() { kitexOnce.Do(func() { klog.SetLevel(klog.LevelWarn) }) }
