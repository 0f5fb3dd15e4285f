package bench

import (
	"encoding/json"
	"slices"
	"testing"
)

func TestSummaryJSONShape(t *testing.T) {
	var h Histogram
	for v := int64(1); v <= 1000; v++ {
		h.Record(v * 1000) // 1 µs .. 1 ms
	}
	plato := Figures{Connected: 10, Sent: 100, Acked: 98, Lost: 2, MsgsPerSec: 98, Latency: latencyOf(&h), ConnectRate: 500, BytesPerConn: 4096}
	base := Figures{Connected: 10, Sent: 200, Acked: 200, MsgsPerSec: 196, Latency: Latency{P50: 100, P99: 250}, ConnectRate: 1000, BytesPerConn: 2048}
	s := Summary{Scenario: ScenarioUplink, Devices: 10, Duration: 1, Mode: "closed", Window: 1, Figures: plato, Baseline: &base, Ratios: ratios(&plato, &base), Workers: 2, Notes: []string{"n"}}
	b, err := s.JSON()
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"scenario", "devices", "duration", "sent", "acked", "lost", "duplicated", "msgs_per_sec", "latency_us", "connect_rate", "bytes_per_conn", "baseline", "ratios", "workers", "notes"} {
		if _, ok := m[k]; !ok {
			t.Errorf("summary JSON lacks %q: %s", k, b)
		}
	}
	lat := m["latency_us"].(map[string]any)
	for _, k := range []string{"p50", "p90", "p99", "p999", "max"} {
		if _, ok := lat[k]; !ok {
			t.Errorf("latency_us lacks %q", k)
		}
	}
	// Nanoseconds in, microseconds out, each percentile within the histogram's 1/128.
	within := func(v any, exact float64) bool {
		f, _ := v.(float64)
		return f >= exact && f <= exact*(1+1.0/subCount)
	}
	if !within(lat["p50"], 500) || !within(lat["p99"], 990) || lat["max"] != 1000.0 || lat["mean"] != 500.5 {
		t.Errorf("latency_us %v, want p50 500, p99 990, max 1000, mean 500.5 (µs)", lat)
	}
	got := m["ratios"].(map[string]any)
	for k, v := range map[string]float64{"msgs_per_sec": 0.5, "connect_rate": 0.5, "bytes_per_conn": 2} {
		if got[k] != v {
			t.Errorf("ratio %s = %v, want %v", k, got[k], v)
		}
	}
	if !within(got["latency_p50"], 5) || !within(got["latency_p99"], 3.96) {
		t.Errorf("latency ratios %v %v, want about 5 and 3.96", got["latency_p50"], got["latency_p99"])
	}
	if slices.Contains([]byte(string(b)), '\n') {
		t.Error("the summary is not one line")
	}
}

func TestRatiosSkipMissingFigures(t *testing.T) {
	if r := ratios(&Figures{MsgsPerSec: 5}, &Figures{}); r != nil {
		t.Fatalf("ratios against an empty baseline: %v", r)
	}
}
