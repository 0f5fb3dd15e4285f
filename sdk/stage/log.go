package stage

import (
	"io"
	"log/slog"
	"os"
	"sync"

	hclog "github.com/hashicorp/go-hclog"
)

// stderr is the process's real stderr, captured before plugin.Serve swaps os.Stderr for a pipe.
// go-plugin's host reads it line by line, parses hclog JSON, and relays each line at its level
// under the plugin's name. The hclog and slog loggers share it so their lines never interleave.
var stderr io.Writer = &lockedWriter{w: os.Stderr}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// hclogTime is the @timestamp layout go-plugin's host parses.
const hclogTime = "2006-01-02T15:04:05.000000Z07:00"

// newStderrLogger returns the *slog.Logger a plugin's stage gets: JSON lines on stderr shaped like
// hclog's (@timestamp, @level, @message), so the host relays them at the right level.
func newStderrLogger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{
		Level:       slog.LevelDebug,
		ReplaceAttr: hclogAttr,
	}))
}

// newHCLogger returns go-plugin's own logger for the plugin side, on the same stderr.
func newHCLogger() hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{
		Level:      hclog.Debug,
		Output:     stderr,
		JSONFormat: true,
	})
}

func hclogAttr(groups []string, a slog.Attr) slog.Attr {
	if len(groups) > 0 {
		return a
	}
	switch a.Key {
	case slog.TimeKey:
		return slog.String("@timestamp", a.Value.Time().Format(hclogTime))
	case slog.MessageKey:
		return slog.String("@message", a.Value.String())
	case slog.LevelKey:
		return slog.String("@level", hclogLevel(a.Value.Any()))
	}
	return a
}

func hclogLevel(v any) string {
	l, _ := v.(slog.Level)
	switch {
	case l < slog.LevelDebug:
		return "trace"
	case l < slog.LevelInfo:
		return "debug"
	case l < slog.LevelWarn:
		return "info"
	case l < slog.LevelError:
		return "warn"
	default:
		return "error"
	}
}
