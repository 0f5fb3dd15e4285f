package platform_test

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/platoim/plato/internal/config"
	"github.com/platoim/plato/sdk/business/rpc/plato/api"
)

// span is the part of the stdout exporter's JSON that the test reads.
type span struct {
	Name        string
	SpanContext struct{ TraceID, SpanID string }
	Parent      struct{ TraceID, SpanID string }
	Attributes  []struct {
		Key   string
		Value struct{ Value any }
	}
}

func (s span) attr(key string) string {
	for _, a := range s.Attributes {
		if a.Key == key {
			if v, ok := a.Value.Value.(string); ok {
				return v
			}
			b, _ := json.Marshal(a.Value.Value)
			return string(b)
		}
	}
	return ""
}

func readSpans(t *testing.T, path string) []span {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []span
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var s span
		if err := json.Unmarshal(sc.Bytes(), &s); err != nil {
			t.Fatalf("a line of %s is not a JSON span: %v\n%s", path, err, sc.Text())
		}
		out = append(out, s)
	}
	return out
}

// TestUplinkTrace follows one sampled uplink: the gateway's "plato.gateway.frame" span, under it
// its "plato.signal" span at the state server, the
// "plato.stage" span of the pipeline stage call (whose traceparent the stage receives), and the
// "plato.business.deliver" span of the business call, all in one trace.
func TestUplinkTrace(t *testing.T) {
	file := filepath.Join(t.TempDir(), "spans.jsonl")
	p, biz, st := startObserved(t, func(c *config.Config) {
		c.Telemetry.Traces = config.Traces{Exporter: config.TraceExporterStdout, File: file, Sampling: 1}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	alice := dial(t, p, "alice")
	if err := alice.Send(ctx, []byte("traced")); err != nil {
		t.Fatal(err)
	}
	// Shutting down flushes the span batcher into the file.
	if err := p.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	spans := readSpans(t, file)

	var signal *span
	for i := range spans {
		if spans[i].Name == "plato.signal" && spans[i].attr("signal") == "uplink" {
			signal = &spans[i]
		}
	}
	if signal == nil {
		t.Fatalf("no plato.signal span for the uplink among %d spans", len(spans))
	}
	if signal.attr("app") != "demo" || signal.attr("code") != "0" {
		t.Errorf("signal span attributes: app %q code %q", signal.attr("app"), signal.attr("code"))
	}
	trace, root := signal.SpanContext.TraceID, signal.SpanContext.SpanID
	// The gateway sampled the frame and the state server continued its trace.
	var frame *span
	for i := range spans {
		if spans[i].SpanContext.SpanID == signal.Parent.SpanID {
			frame = &spans[i]
		}
	}
	if frame == nil || frame.Name != "plato.gateway.frame" || frame.SpanContext.TraceID != trace || frame.attr("signal") != "Uplink" {
		t.Fatalf("the uplink's signal span has parent %+v, want the gateway's plato.gateway.frame span of the Uplink in the same trace", frame)
	}
	children := map[string]*span{}
	for i := range spans {
		s := &spans[i]
		if s.Parent.SpanID == root {
			if s.SpanContext.TraceID != trace {
				t.Errorf("%s is a child of the signal span in another trace", s.Name)
			}
			children[s.Name] = s
		}
	}
	stageSpan, bizSpan := children["plato.stage"], children["plato.business.deliver"]
	if stageSpan == nil || bizSpan == nil {
		t.Fatalf("children of the uplink's signal span: %v, want plato.stage and plato.business.deliver", children)
	}
	if stageSpan.attr("stage") != "pass" || stageSpan.attr("verdict") != "continue" {
		t.Errorf("stage span attributes: stage %q verdict %q", stageSpan.attr("stage"), stageSpan.attr("verdict"))
	}
	// The business server was handed the traceparent of the delivery span.
	ups := biz.Events(api.EventKind_UPLINK, "alice")
	if len(ups) != 1 || !strings.EqualFold(ups[0].Traceparent, "00-"+trace+"-"+bizSpan.SpanContext.SpanID+"-01") {
		t.Errorf("the business server got traceparent %q, want the plato.business.deliver span's", ups[0].Traceparent)
	}
	// The stage was handed the traceparent of its call's span: a plugin continues the trace there.
	want := "00-" + trace + "-" + stageSpan.SpanContext.SpanID + "-01"
	found := false
	for _, tp := range st.traceParents() {
		found = found || strings.EqualFold(tp, want)
	}
	if !found {
		t.Errorf("the stage saw traceparents %v, want %s", st.traceParents(), want)
	}
}
