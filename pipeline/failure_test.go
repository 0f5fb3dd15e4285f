package pipeline

import (
	"context"
	"strings"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/platoim/plato/sdk/poll"
	"github.com/platoim/plato/sdk/stage"
)

// flakyStage fails the batch (a panic) on "error" and outlives its timeout on "slow".
func flakyStage(ctx context.Context, st *fnStage, ev stage.Event) stage.Reply {
	switch string(ev.Payload) {
	case "error":
		panic("flaky: asked to fail")
	case "slow":
		<-ctx.Done()
	case "slow-deaf": // ignores its context, as an in-process stage may
		time.Sleep(80 * time.Millisecond)
	case "fail": // reports a failure for this signal alone
		return stage.FailWith("its database is down")
	}
	return tagStage(ctx, st, ev)
}

// counters reads the pipeline's counters as "name{reason}" -> value, summed over other attributes.
func counters(t *testing.T, r *sdkmetric.ManualReader) map[string]int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, dp := range d.DataPoints {
					k := m.Name
					if v, ok := dp.Attributes.Value("reason"); ok {
						k += "{" + v.AsString() + "}"
					}
					if v, ok := dp.Attributes.Value("stage"); ok {
						k += "/" + v.AsString()
					}
					out[k] += dp.Value
				}
			case metricdata.Histogram[float64]:
				for _, dp := range d.DataPoints {
					out[m.Name+"_count"] += int64(dp.Count)
				}
			}
		}
	}
	return out
}

func TestFailurePolicies(t *testing.T) {
	dir := t.TempDir()
	// Each policy twice: with a short timeout for the payloads that are late by construction
	// ("slow", "slow-deaf"), and with loadedTimeout for those that must not time out even when a
	// loaded machine stalls the test process ("error", "fail", "ok"). The stage is "flaky" in
	// all four, so the counters below add up over them.
	for _, policy := range []string{"closed", "open"} {
		for app, timeout := range map[string]string{policy: loadedTimeout, policy + "-slow": "timeout: 50ms"} {
			writePipeline(t, dir, app, fileYAML(
				stageYAML("flaky", "builtin:flaky", "uplink", timeout, "on_failure: fail_"+policy),
				stageYAML("after", "builtin:tag", "uplink"),
			))
		}
	}
	reader := sdkmetric.NewManualReader()
	meter := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)).Meter("test")
	builtins := map[string]func() stage.Stage{"flaky": builtin("flaky", flakyStage), "tag": builtin("tag", tagStage)}
	p, err := New(context.Background(), Config{Dir: dir, Builtins: builtins}, nil, testLogger(t), meter)
	if err != nil {
		t.Fatal(err)
	}
	defer closeOK(t, p)

	for _, payload := range []string{"error", "slow", "slow-deaf"} {
		closed, open := "closed", "open"
		if payload != "error" {
			closed, open = "closed-slow", "open-slow"
		}
		o := runWait(t, p, uplink(closed, 1, 1, payload))
		if o.Verdict != stage.Reject || o.Code != CodePipelineFailed || o.Stage != "flaky" || !strings.Contains(o.Message, "flaky") {
			t.Errorf("fail_closed %s: %+v", payload, o)
		}
		wantReason := "timeout"
		if payload == "error" {
			wantReason = "error"
		}
		if !strings.Contains(o.Message, wantReason) {
			t.Errorf("fail_closed %s: message %q does not say %s", payload, o.Message, wantReason)
		}
		o = runWait(t, p, uplink(open, 1, 1, payload))
		if o.Verdict != stage.Continue || string(o.Payload) != payload+"|after" {
			t.Errorf("fail_open %s: %+v %q, want the stage skipped", payload, o, o.Payload)
		}
	}
	// A signal the stage failed (FailWith) gets the policy alone.
	if o := runWait(t, p, uplink("closed", 1, 3, "fail")); o.Verdict != stage.Reject || o.Code != CodePipelineFailed ||
		o.Stage != "flaky" || !strings.Contains(o.Message, "its database is down") {
		t.Errorf("fail_closed FailWith: %+v", o)
	}
	if o := runWait(t, p, uplink("open", 1, 3, "fail")); o.Verdict != stage.Continue || string(o.Payload) != "fail|after" {
		t.Errorf("fail_open FailWith: %+v %q, want the stage skipped", o, o.Payload)
	}
	// A failure only affects the batch it happened in.
	if o := runWait(t, p, uplink("closed", 1, 2, "ok")); o.Verdict != stage.Continue || string(o.Payload) != "ok|flaky|after" {
		t.Errorf("after failures: %+v %q", o, o.Payload)
	}

	got := counters(t, reader)
	for k, want := range map[string]int64{
		"plato_pipeline_stage_failures_total{error}/flaky":   2 + 2, // panics, FailWith
		"plato_pipeline_stage_failures_total{timeout}/flaky": 4,
		"plato_pipeline_stage_skipped_total/flaky":           3 + 1,
		"plato_pipeline_stage_calls_total/flaky":             7 + 2,
		"plato_pipeline_stage_latency_seconds_count":         9 + 5, // flaky, and after (4 open + 1 ok)
	} {
		if got[k] != want {
			t.Errorf("%s = %d, want %d (all: %v)", k, got[k], want, got)
		}
	}
}

// TestFailureDoesNotWait: a batch behind a failing one is not held up beyond the timeout.
func TestFailureDoesNotWait(t *testing.T) {
	dir := t.TempDir()
	writePipeline(t, dir, "app", fileYAML(stageYAML("flaky", "builtin:flaky", "uplink", "timeout: 30ms")))
	p := start(t, Config{Dir: dir, Lanes: 1, Builtins: map[string]func() stage.Stage{"flaky": builtin("flaky", flakyStage)}})
	rec := newRecorder()
	begin := time.Now()
	for seq := uint64(1); seq <= 20; seq++ {
		payload := "ok"
		if seq%5 == 0 {
			payload = "slow"
		}
		if err := runRetry(p, uplink("app", 1, seq, payload), rec.done(1, seq)); err != nil {
			t.Fatal(err)
		}
	}
	poll.Until(t, "every done", func() bool { return rec.count() == 20 })
	rec.check(t)
	if el := time.Since(begin); el > 2*time.Second {
		t.Errorf("20 signals with 4 timeouts of 30ms took %v", el)
	}
}
