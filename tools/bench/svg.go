package bench

import (
	"fmt"
	"html/template"
	"math"
	"strings"
)

// A small SVG line-chart writer for the HTML report: axes, ticks, one polyline per series, a
// legend. Enough to read a percentile curve and a throughput trace; no library, no script.

type point struct{ x, y float64 }

type series struct {
	name   string
	color  string
	dashed bool
	points []point
}

const (
	colorPlato = "#1f6feb"
	colorBase  = "#d97706"
	colorSent  = "#8b949e"

	chartW, chartH             = 900, 360
	padL, padR, padT, padB     = 80, 20, 40, 50
	plotW, plotH               = chartW - padL - padR, chartH - padT - padB
	yTicks                     = 5
	maxXTicks                  = 12
	legendRow, legendX, legend = 16, chartW - padR - 220, 10
)

// svgChart draws series with x from 0 to the largest x and y from 0 to a round number above the
// largest y. xLabel, when set, labels integer x ticks (and hides the others); otherwise x ticks are
// round numbers.
func svgChart(title, xName, yName string, ss []series, xLabel func(float64) string) string {
	var xmax, ymax float64
	n := 0
	for _, s := range ss {
		for _, p := range s.points {
			xmax, ymax = max(xmax, p.x), max(ymax, p.y)
			n++
		}
	}
	var b strings.Builder
	esc := template.HTMLEscapeString
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="system-ui,sans-serif" font-size="12">`, chartW, chartH, chartW, chartH)
	fmt.Fprintf(&b, `<text x="%d" y="20" font-size="15" font-weight="600">%s</text>`, padL, esc(title))
	if n == 0 {
		fmt.Fprintf(&b, `<text x="%d" y="%d">no data</text></svg>`, padL, padT+plotH/2)
		return b.String()
	}
	if xmax <= 0 {
		xmax = 1
	}
	ystep := niceStep(ymax / yTicks)
	ytop := ystep * math.Max(1, math.Ceil(ymax/ystep))
	px := func(x float64) float64 { return padL + x/xmax*plotW }
	py := func(y float64) float64 { return padT + plotH - y/ytop*plotH }
	// Grid and y ticks.
	for y := 0.0; y <= ytop*1.0001; y += ystep {
		fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#e5e5e5"/>`, padL, padL+plotW, py(y), py(y))
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end" dy="4">%s</text>`, padL-6, py(y), esc(num(round3(y))))
	}
	// X ticks.
	xstep := niceStep(xmax / maxXTicks)
	if xLabel != nil {
		xstep = 1
	}
	for x := 0.0; x <= xmax*1.0001; x += xstep {
		label := num(round3(x))
		if xLabel != nil {
			label = xLabel(x)
		}
		fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%d" y2="%d" stroke="#999"/>`, px(x), px(x), padT+plotH, padT+plotH+5)
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`, px(x), padT+plotH+18, esc(label))
	}
	fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#999"/>`, padL, padT, plotW, plotH)
	fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle">%s</text>`, padL+plotW/2, chartH-8, esc(xName))
	fmt.Fprintf(&b, `<text transform="translate(16 %d) rotate(-90)" text-anchor="middle">%s</text>`, padT+plotH/2, esc(yName))
	dashOf := func(s series) string {
		if s.dashed {
			return ` stroke-dasharray="5 4"`
		}
		return ""
	}
	for _, s := range ss {
		if len(s.points) == 0 {
			continue
		}
		var pts strings.Builder
		for _, p := range s.points {
			fmt.Fprintf(&pts, "%.1f,%.1f ", px(p.x), py(p.y))
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="2"%s points="%s"/>`, s.color, dashOf(s), strings.TrimSpace(pts.String()))
	}
	// The legend last, on a light box, so no curve runs through it.
	fmt.Fprintf(&b, `<rect x="%d" y="%d" width="214" height="%d" fill="#fff" fill-opacity="0.85"/>`, legendX-6, padT+2, len(ss)*legendRow+6)
	for i, s := range ss {
		ly := padT + legend + i*legendRow
		fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%d" y2="%d" stroke="%s" stroke-width="2"%s/>`, legendX, legendX+24, ly, ly, s.color, dashOf(s))
		fmt.Fprintf(&b, `<text x="%d" y="%d" dy="4">%s</text>`, legendX+30, ly, esc(s.name))
	}
	b.WriteString(`</svg>`)
	return b.String()
}

// niceStep rounds a step up to 1, 2 or 5 times a power of ten.
func niceStep(raw float64) float64 {
	if raw <= 0 || math.IsNaN(raw) || math.IsInf(raw, 0) {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= raw {
			return m * p
		}
	}
	return 10 * p
}
