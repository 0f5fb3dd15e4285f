package pipeline

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
)

func TestHCLogger(t *testing.T) {
	var buf bytes.Buffer
	l := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo})).With("stage", "auth", "app", "chat")
	h := newHCLogger(l).Named("auth-plugin").With("pid", 42)
	h.Debug("hidden")
	h.Info("plugin line", "k", "v")
	h.Warn("dangling", "key")
	h.Log(hclog.Off, "never")
	out := buf.String()
	for _, want := range []string{
		`level=INFO msg="plugin line" stage=auth app=chat logger=auth-plugin pid=42 k=v`,
		`level=WARN msg=dangling stage=auth app=chat logger=auth-plugin pid=42 key=(missing)`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "hidden") || strings.Contains(out, "never") {
		t.Errorf("filtered lines were written:\n%s", out)
	}
	if h.IsDebug() || !h.IsInfo() || h.GetLevel() != hclog.Info {
		t.Errorf("levels: debug %v info %v level %v", h.IsDebug(), h.IsInfo(), h.GetLevel())
	}
}
