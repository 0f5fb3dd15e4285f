package ipconf

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/cloudwego/hertz/pkg/common/hlog"
)

// Hertz has one process-wide logger whose setter is not safe to call while servers run, so an
// adapter is installed once and forwards to whichever running Server last claimed it. These two
// variables are the package's only global state, forced by Hertz's design.
var (
	hertzLogOnce   sync.Once
	hertzLogTarget atomic.Pointer[slog.Logger] // nil: drop
)

// claimHertzLogs routes Hertz's logs to l from now on.
func claimHertzLogs(l *slog.Logger) {
	hertzLogOnce.Do(func() { hlog.SetLogger(hertzLogger{}) })
	hertzLogTarget.Store(l)
}

// releaseHertzLogs stops routing Hertz's logs to l, unless another Server has claimed them since:
// a stopped Server's logger (perhaps bound to a finished test) must not receive later logs.
func releaseHertzLogs(l *slog.Logger) {
	hertzLogTarget.CompareAndSwap(l, nil)
}

// hertzLogger routes Hertz's logs to slog. Hertz's Info is startup chatter ("Using network
// library=netpoll") and goes to Debug; Notice is Info. Fatal does not exit: Hertz only uses it
// for programming errors, and ending the process is the caller's decision.
type hertzLogger struct{}

var _ hlog.FullLogger = hertzLogger{}

func (hertzLogger) logf(ctx context.Context, lv slog.Level, format string, v []any) {
	if l := hertzLogTarget.Load(); l != nil && l.Enabled(ctx, lv) {
		l.Log(ctx, lv, fmt.Sprintf(format, v...))
	}
}

func (hertzLogger) log(ctx context.Context, lv slog.Level, v []any) {
	if l := hertzLogTarget.Load(); l != nil && l.Enabled(ctx, lv) {
		l.Log(ctx, lv, fmt.Sprint(v...))
	}
}

func (h hertzLogger) Trace(v ...any)  { h.log(context.Background(), slog.LevelDebug, v) }
func (h hertzLogger) Debug(v ...any)  { h.log(context.Background(), slog.LevelDebug, v) }
func (h hertzLogger) Info(v ...any)   { h.log(context.Background(), slog.LevelDebug, v) }
func (h hertzLogger) Notice(v ...any) { h.log(context.Background(), slog.LevelInfo, v) }
func (h hertzLogger) Warn(v ...any)   { h.log(context.Background(), slog.LevelWarn, v) }
func (h hertzLogger) Error(v ...any)  { h.log(context.Background(), slog.LevelError, v) }
func (h hertzLogger) Fatal(v ...any)  { h.log(context.Background(), slog.LevelError, v) }

func (h hertzLogger) Tracef(f string, v ...any) { h.logf(context.Background(), slog.LevelDebug, f, v) }
func (h hertzLogger) Debugf(f string, v ...any) { h.logf(context.Background(), slog.LevelDebug, f, v) }
func (h hertzLogger) Infof(f string, v ...any)  { h.logf(context.Background(), slog.LevelDebug, f, v) }
func (h hertzLogger) Noticef(f string, v ...any) {
	h.logf(context.Background(), slog.LevelInfo, f, v)
}
func (h hertzLogger) Warnf(f string, v ...any)  { h.logf(context.Background(), slog.LevelWarn, f, v) }
func (h hertzLogger) Errorf(f string, v ...any) { h.logf(context.Background(), slog.LevelError, f, v) }
func (h hertzLogger) Fatalf(f string, v ...any) { h.logf(context.Background(), slog.LevelError, f, v) }

func (h hertzLogger) CtxTracef(ctx context.Context, f string, v ...any) {
	h.logf(ctx, slog.LevelDebug, f, v)
}
func (h hertzLogger) CtxDebugf(ctx context.Context, f string, v ...any) {
	h.logf(ctx, slog.LevelDebug, f, v)
}
func (h hertzLogger) CtxInfof(ctx context.Context, f string, v ...any) {
	h.logf(ctx, slog.LevelDebug, f, v)
}
func (h hertzLogger) CtxNoticef(ctx context.Context, f string, v ...any) {
	h.logf(ctx, slog.LevelInfo, f, v)
}
func (h hertzLogger) CtxWarnf(ctx context.Context, f string, v ...any) {
	h.logf(ctx, slog.LevelWarn, f, v)
}
func (h hertzLogger) CtxErrorf(ctx context.Context, f string, v ...any) {
	h.logf(ctx, slog.LevelError, f, v)
}
func (h hertzLogger) CtxFatalf(ctx context.Context, f string, v ...any) {
	h.logf(ctx, slog.LevelError, f, v)
}

// SetLevel and SetOutput are no-ops: the slog handler decides both.
func (h hertzLogger) SetLevel(hlog.Level)   {}
func (h hertzLogger) SetOutput(w io.Writer) {}
