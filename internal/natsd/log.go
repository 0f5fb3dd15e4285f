package natsd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
)

// levelTrace is below slog's Debug: nats tracing logs every protocol message.
const levelTrace = slog.LevelDebug - 4

// logger routes nats-server logs to slog. It implements server.Logger.
type logger struct {
	l            *slog.Logger
	debug, trace bool
	// fatal carries the first fatal error to Start; later ones are only logged.
	fatal chan error
}

func newLogger(l *slog.Logger) *logger {
	ctx := context.Background()
	return &logger{
		l: l,
		// Debug and trace formatting is costly inside nats; only switch it on if it would be kept.
		debug: l.Enabled(ctx, slog.LevelDebug),
		trace: l.Enabled(ctx, levelTrace),
		fatal: make(chan error, 1),
	}
}

func (g *logger) log(level slog.Level, format string, v []any) {
	ctx := context.Background()
	if !g.l.Enabled(ctx, level) {
		return
	}
	g.l.Log(ctx, level, fmt.Sprintf(format, v...))
}

// Noticef is nats' startup banner and routine notices: Debug, so `plato up` prints only what
// Plato itself says at Info (where NATS listens and its data directory).
func (g *logger) Noticef(format string, v ...any) { g.log(slog.LevelDebug, format, v) }

func (g *logger) Warnf(format string, v ...any) { g.log(slog.LevelWarn, format, v) }

func (g *logger) Errorf(format string, v ...any) { g.log(slog.LevelError, format, v) }

// Fatalf logs at Error and hands the error to Start instead of exiting the process.
func (g *logger) Fatalf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	g.l.Error(msg, "fatal", true)
	select {
	case g.fatal <- errors.New(msg):
	default:
	}
}

func (g *logger) Debugf(format string, v ...any) { g.log(slog.LevelDebug, format, v) }

func (g *logger) Tracef(format string, v ...any) { g.log(levelTrace, format, v) }
