package bench

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestWorkerRangeCoversEveryDevice(t *testing.T) {
	for _, tc := range []struct{ n, w int }{{10, 1}, {10, 3}, {20_000, 2}, {7, 7}, {200_000, 14}} {
		next := 0
		for k := range tc.w {
			first, count := workerRange(tc.n, tc.w, k)
			if first != next || count < tc.n/tc.w || count > tc.n/tc.w+1 {
				t.Fatalf("n %d w %d: worker %d gets [%d, +%d), expected to start at %d", tc.n, tc.w, k, first, count, next)
			}
			next = first + count
		}
		if next != tc.n {
			t.Fatalf("n %d w %d: workers cover %d devices", tc.n, tc.w, next)
		}
	}
}

func TestSourceIPs(t *testing.T) {
	if got := []string{sourceIP(0), sourceIP(1), sourceIP(253), sourceIP(254)}; !slices.Equal(got, []string{"127.0.0.2", "127.0.0.3", "127.0.0.255", "127.0.1.0"}) {
		t.Fatalf("source IPs %v", got)
	}
}

func TestPayloadRoundTrip(t *testing.T) {
	b := newPayload(kindDirect, 42, 7)
	p, ok := parsePayload(b)
	if !ok || p.kind != kindDirect || p.idx != 42 || p.n != 7 || time.Since(time.Unix(0, p.sentWall)) > time.Minute {
		t.Fatalf("payload %+v ok %v", p, ok)
	}
	for _, bad := range [][]byte{nil, []byte(`{"from":"plato-demo","text":"x is offline"}`), append([]byte("PLB1\x09"), make([]byte, 20)...)} {
		if _, ok := parsePayload(bad); ok {
			t.Errorf("%q parsed as a bench payload", bad)
		}
	}
}

func TestEchoPushRoundTrip(t *testing.T) {
	app, dids, payload, ok := decodeEchoPush(encodeEchoPush("bench", []string{"a", "bb", ""}, []byte("hi")))
	if !ok || app != "bench" || !slices.Equal(dids, []string{"a", "bb", ""}) || string(payload) != "hi" {
		t.Fatalf("decoded %q %q %q %v", app, dids, payload, ok)
	}
	if _, _, _, ok := decodeEchoPush([]byte{0, 5, 'a'}); ok {
		t.Fatal("a truncated push decoded")
	}
}

func TestReportIsSelfContained(t *testing.T) {
	var h Histogram
	for v := int64(1); v <= 5000; v++ {
		h.Record(v * 997)
	}
	f := Figures{Connected: 3, Sent: 10, Acked: 10, Latency: latencyOf(&h), hist: &h, perSec: []uint64{5, 3, 2}, sentPerSec: []uint64{5, 3, 2}, ServerCPU: 0.5, ClientCPU: 0.25, ParentCPU: 0.125}
	b := f
	s := &Summary{Scenario: ScenarioUplink, Devices: 3, Duration: 3, Figures: f, Baseline: &b, Ratios: ratios(&f, &b), Notes: []string{"a <note> & more"}}
	var out bytes.Buffer
	if err := WriteReport(&out, s); err != nil {
		t.Fatal(err)
	}
	page := out.String()
	for _, want := range []string{"<svg", "<polyline", "99.9%", "Throughput over time", "a &lt;note&gt; &amp; more", `&#34;scenario&#34;:&#34;uplink&#34;`, "cores busy in all: server, bench, bench parent</td><td>0.875"} {
		if !strings.Contains(page, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	for _, bad := range []string{"<script", "src=", "href=", "@import"} {
		if strings.Contains(page, bad) {
			t.Errorf("report refers to something outside itself: %q", bad)
		}
	}
	if strings.Count(page, "<polyline") != 5 { // latency: plato, baseline; throughput: answered, sent, baseline
		t.Errorf("%d polylines, want 5", strings.Count(page, "<polyline"))
	}
	// An empty run still renders.
	out.Reset()
	if err := WriteReport(&out, &Summary{Scenario: ScenarioConnect}); err != nil || !strings.Contains(out.String(), "no data") {
		t.Fatalf("empty report: %v", err)
	}
}
