package bench

import (
	"fmt"
	"html/template"
	"io"
	"math"
	"strconv"
)

// WriteReport writes a self-contained HTML page for s: the figures side by side with the baseline,
// the latency percentile curve, and throughput per second. Charts are inline SVG; the page loads
// nothing from anywhere, so it can be mailed or attached to an issue as is.
func WriteReport(w io.Writer, s *Summary) error {
	js, err := s.JSON()
	if err != nil {
		return err
	}
	lat := []series{{name: "plato", color: colorPlato, points: percentileCurve(s.hist)}}
	thr := []series{{name: "plato acked/s", color: colorPlato, points: perSecond(s.perSec)}}
	if s.Scenario != ScenarioConnect && len(s.sentPerSec) > 0 {
		thr = append(thr, series{name: "plato sent/s", color: colorSent, dashed: true, points: perSecond(s.sentPerSec)})
	}
	if b := s.Baseline; b != nil {
		lat = append(lat, series{name: "baseline", color: colorBase, points: percentileCurve(b.hist)})
		thr = append(thr, series{name: "baseline acked/s", color: colorBase, points: perSecond(b.perSec)})
	}
	latTitle, latX := "Latency by percentile", "percentile"
	if s.Scenario == ScenarioConnect {
		latTitle = "Connect latency (token request to LoginAck) by percentile"
	}
	data := reportData{
		Title:      fmt.Sprintf("plato bench %s: %d devices, %gs", s.Scenario, s.Devices, s.Duration),
		Rows:       reportRows(s),
		Notes:      s.Notes,
		Latency:    template.HTML(svgChart(latTitle, latX, "ms", lat, percentileAxis)),
		Throughput: template.HTML(svgChart("Throughput over time", "second", "per second", thr, nil)),
		JSON:       string(js),
	}
	if s.Scenario == ScenarioConnect {
		data.Throughput = ""
	}
	return reportPage.Execute(w, data)
}

type reportData struct {
	Title      string
	Rows       []reportRow
	Notes      []string
	Latency    template.HTML
	Throughput template.HTML
	JSON       string
}

type reportRow struct{ Name, Plato, Baseline, Ratio string }

func reportRows(s *Summary) []reportRow {
	type metric struct {
		name  string
		ratio string
		get   func(f *Figures) float64
	}
	ms := []metric{
		{"connected", "", func(f *Figures) float64 { return float64(f.Connected) }},
		{"sent", "", func(f *Figures) float64 { return float64(f.Sent) }},
		{"acked / received", "", func(f *Figures) float64 { return float64(f.Acked) }},
		{"refused", "", func(f *Figures) float64 { return float64(f.Refused) }},
		{"lost", "", func(f *Figures) float64 { return float64(f.Lost) }},
		{"duplicated", "", func(f *Figures) float64 { return float64(f.Duplicated) }},
		{"msgs per second", "msgs_per_sec", func(f *Figures) float64 { return f.MsgsPerSec }},
		{"latency p50 (µs)", "latency_p50", func(f *Figures) float64 { return f.Latency.P50 }},
		{"latency p90 (µs)", "", func(f *Figures) float64 { return f.Latency.P90 }},
		{"latency p99 (µs)", "latency_p99", func(f *Figures) float64 { return f.Latency.P99 }},
		{"latency p99.9 (µs)", "", func(f *Figures) float64 { return f.Latency.P999 }},
		{"latency max (µs)", "", func(f *Figures) float64 { return f.Latency.Max }},
		{"connects per second", "connect_rate", func(f *Figures) float64 { return f.ConnectRate }},
		{"server bytes per connection", "bytes_per_conn", func(f *Figures) float64 { return f.BytesPerConn }},
		{"bench bytes per connection", "", func(f *Figures) float64 { return f.ClientBytesPerConn }},
		// What the machine was busy with: a baseline at --baseline-rate is compared at like load.
		{"cores busy in all: server, bench, bench parent", "", (*Figures).coresBusy},
	}
	var rows []reportRow
	for _, m := range ms {
		r := reportRow{Name: m.name, Plato: num(m.get(&s.Figures))}
		if s.Baseline != nil {
			r.Baseline = num(m.get(s.Baseline))
			if v, ok := s.Ratios[m.ratio]; ok {
				r.Ratio = num(v)
			}
		}
		rows = append(rows, r)
	}
	if ff := s.Failover; ff != nil {
		rows = append(rows, failoverRows(ff)...)
	}
	return rows
}

// failoverRows are the failover scenario's figures, one value each.
func failoverRows(ff *FailoverFigures) []reportRow {
	pair := func(a, b float64) string { return num(a) + " / " + num(b) }
	return []reportRow{
		{Name: "failover: devices on the killed state server", Plato: strconv.Itoa(ff.Killed.Devices)},
		{Name: "failover: every device working again (ms after the kill)", Plato: num(ff.EveryDeviceWorkingMs)},
		{Name: "failover: recovery p50 / p99 (ms), all devices", Plato: pair(ff.Recovery.All.P50, ff.Recovery.All.P99)},
		{Name: "failover: recovery p50 / p99 (ms), the killed server's", Plato: pair(ff.Recovery.Killed.P50, ff.Recovery.Killed.P99)},
		{Name: "failover: devices that logged in again", Plato: strconv.Itoa(ff.Relogins.Devices)},
		{Name: "failover: CONNECTED events beyond one per device", Plato: strconv.Itoa(ff.Relogins.BusinessConnectedMinusN)},
		{Name: "failover: ACKed uplinks lost", Plato: strconv.FormatUint(ff.Uplinks.AckedLost, 10)},
		{Name: "failover: UplinkAcks 1210", Plato: strconv.FormatUint(ff.Uplinks.Ack1210, 10)},
		{Name: "failover: pushes accepted / delivered / reported undelivered", Plato: fmt.Sprintf("%d / %d / %d", ff.Pushes.Accepted, ff.Pushes.Delivered, ff.Pushes.UndeliveredReported)},
		{Name: "failover: pushes unaccounted for", Plato: strconv.FormatUint(ff.Pushes.Unaccounted, 10)},
		{Name: "failover: errors after the restart", Plato: strconv.Itoa(ff.Restart.Errors)},
	}
}

func num(v float64) string {
	if v == math.Trunc(v) && math.Abs(v) < 1e15 {
		return strconv.FormatInt(int64(v), 10)
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}

// percentileCurve samples h along a log scale of 1/(1-q): x = 0 is the median's left end (q = 0),
// x = 1 is 90%, 2 is 99%, 3 is 99.9%, as far as the number of values supports. y is milliseconds.
func percentileCurve(h *Histogram) []point {
	if h == nil || h.Count() == 0 {
		return nil
	}
	xmax := min(5, math.Log10(float64(h.Count())))
	var pts []point
	const steps = 200
	for i := 0; i <= steps; i++ {
		x := xmax * float64(i) / steps
		q := 1 - math.Pow(10, -x)
		pts = append(pts, point{x, float64(h.Quantile(q)) / 1e6})
	}
	return append(pts, point{xmax, float64(h.Max()) / 1e6})
}

func perSecond(counts []uint64) []point {
	pts := make([]point, len(counts))
	for i, c := range counts {
		pts[i] = point{float64(i), float64(c)}
	}
	return pts
}

// percentileAxis labels x = 0, 1, 2... as 0%, 90%, 99%...
func percentileAxis(x float64) string {
	labels := []string{"0%", "90%", "99%", "99.9%", "99.99%", "99.999%"}
	if i := int(x); float64(i) == x && i < len(labels) {
		return labels[i]
	}
	return ""
}

var reportPage = template.Must(template.New("report").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{{.Title}}</title>
<style>
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:960px;color:#222;padding:0 1em}
table{border-collapse:collapse;margin:1em 0}td,th{padding:.25em .8em;border-bottom:1px solid #ddd;text-align:right}
td:first-child,th:first-child{text-align:left}svg{display:block;margin:1.5em 0}
pre{white-space:pre-wrap;word-break:break-all;background:#f6f6f6;padding:1em;font-size:12px}
</style></head><body>
<h1>{{.Title}}</h1>
<table><tr><th>figure</th><th>plato</th><th>baseline</th><th>plato / baseline</th></tr>
{{range .Rows}}<tr><td>{{.Name}}</td><td>{{.Plato}}</td><td>{{.Baseline}}</td><td>{{.Ratio}}</td></tr>
{{end}}</table>
{{.Latency}}
{{.Throughput}}
<h2>Notes</h2><ul>{{range .Notes}}<li>{{.}}</li>{{end}}</ul>
<details><summary>JSON summary</summary><pre>{{.JSON}}</pre></details>
</body></html>
`))
