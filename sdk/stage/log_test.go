package stage

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"testing"
	"time"
)

// The plugin's log lines must parse the way go-plugin's host parses them (hclog JSON).
func TestLogLinesAreHCLogJSON(t *testing.T) {
	var buf bytes.Buffer
	l := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug, ReplaceAttr: hclogAttr}))
	l.Warn("disk low", "free", 3, slog.Group("g", "k", "v"))
	var m map[string]any
	if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
		t.Fatalf("%v: %s", err, buf.String())
	}
	if m["@level"] != "warn" || m["@message"] != "disk low" || m["free"] != 3.0 {
		t.Errorf("line = %s", buf.String())
	}
	if _, err := time.Parse(hclogTime, m["@timestamp"].(string)); err != nil {
		t.Errorf("@timestamp: %v", err)
	}
	for lvl, want := range map[slog.Level]string{slog.LevelDebug - 4: "trace", slog.LevelDebug: "debug", slog.LevelInfo: "info", slog.LevelError + 4: "error"} {
		if got := hclogLevel(lvl); got != want {
			t.Errorf("level %v = %q, want %q", lvl, got, want)
		}
	}
}
