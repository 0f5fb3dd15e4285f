package main

import (
	"fmt"
	"regexp"
	"slices"
	"testing"
)

// promqlMetricNames lists the metric names a PromQL expression selects, in order of appearance,
// once each. It is a lexer, not a full parser: it skips strings, label matchers ({...}), ranges
// and subqueries ([...]), numbers and durations, Grafana variables ($x, ${x}), the label lists of
// by/without/on/ignoring/group_left/group_right, and names followed by "(" (functions and
// aggregations); every other identifier that is not a keyword is a metric name. It fails on
// unterminated strings and brackets, so a broken expression is reported, not half-read.
func promqlMetricNames(expr string) ([]string, error) {
	var names []string
	i := 0
	for i < len(expr) {
		c := expr[i]
		switch {
		case c == '"' || c == '\'' || c == '`':
			j, err := skipPromQLString(expr, i)
			if err != nil {
				return nil, err
			}
			i = j
		case c == '{':
			j, err := skipPromQLBlock(expr, i, '{', '}')
			if err != nil {
				return nil, err
			}
			i = j
		case c == '[':
			j, err := skipPromQLBlock(expr, i, '[', ']')
			if err != nil {
				return nil, err
			}
			i = j
		case c == '#': // a comment runs to the end of the line
			for i < len(expr) && expr[i] != '\n' {
				i++
			}
		case c == '$':
			i++
			if i < len(expr) && expr[i] == '{' {
				j, err := skipPromQLBlock(expr, i, '{', '}')
				if err != nil {
					return nil, err
				}
				i = j
				continue
			}
			for i < len(expr) && isPromQLIdent(expr[i]) {
				i++
			}
		case isPromQLDigit(c) || (c == '.' && i+1 < len(expr) && isPromQLDigit(expr[i+1])):
			// Numbers, durations (5m, 1h30m), hex and exponents (1e-3).
			for i < len(expr) && (isPromQLIdent(expr[i]) || expr[i] == '.' ||
				((expr[i] == '+' || expr[i] == '-') && (expr[i-1] == 'e' || expr[i-1] == 'E') && !isPromQLDuration(expr, i))) {
				i++
			}
		case isPromQLIdentStart(c):
			j := i
			for j < len(expr) && isPromQLIdent(expr[j]) {
				j++
			}
			word := expr[i:j]
			k := j
			for k < len(expr) && (expr[k] == ' ' || expr[k] == '\t' || expr[k] == '\n' || expr[k] == '\r') {
				k++
			}
			i = j
			switch {
			case promqlGrouping[word]:
				if k < len(expr) && expr[k] == '(' {
					end, err := skipPromQLBlock(expr, k, '(', ')')
					if err != nil {
						return nil, err
					}
					i = end
				}
			case k < len(expr) && expr[k] == '(':
				// A function or an aggregation: its arguments are read next.
			case promqlKeywords[word]:
			default:
				if !slices.Contains(names, word) {
					names = append(names, word)
				}
			}
		default:
			i++
		}
	}
	return names, nil
}

// promqlGrouping are the keywords followed by a list of label names, not metrics.
var promqlGrouping = map[string]bool{"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true}

// promqlKeywords are the words that are never metric names where they stand: binary operators,
// modifiers, aggregations written before their "by" clause, and the special numbers.
var promqlKeywords = map[string]bool{
	"and": true, "or": true, "unless": true, "bool": true, "offset": true, "atan2": true, "inf": true, "nan": true,
	"Inf": true, "NaN": true,
	"sum": true, "min": true, "max": true, "avg": true, "group": true, "stddev": true, "stdvar": true, "count": true,
	"count_values": true, "bottomk": true, "topk": true, "quantile": true, "limitk": true, "limit_ratio": true,
}

func isPromQLDigit(c byte) bool { return c >= '0' && c <= '9' }
func isPromQLIdentStart(c byte) bool {
	return c == '_' || c == ':' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}
func isPromQLIdent(c byte) bool { return isPromQLIdentStart(c) || isPromQLDigit(c) }

// isPromQLDuration reports whether the sign at expr[i] follows a duration unit rather than an
// exponent: "5m-1" is not an exponent, "1e-3" is. Only a number made of digits then e is.
func isPromQLDuration(expr string, i int) bool {
	j := i - 2
	for j >= 0 && isPromQLDigit(expr[j]) {
		j--
	}
	return j >= 0 && isPromQLIdent(expr[j])
}

// skipPromQLString returns the index after the string starting at expr[i].
func skipPromQLString(expr string, i int) (int, error) {
	q := expr[i]
	for j := i + 1; j < len(expr); j++ {
		switch {
		case expr[j] == '\\' && q != '`':
			j++
		case expr[j] == q:
			return j + 1, nil
		}
	}
	return 0, fmt.Errorf("unterminated string at %d in %q", i, expr)
}

// skipPromQLBlock returns the index after the block opened by expr[i] == open, strings and nested
// blocks of the same kind included.
func skipPromQLBlock(expr string, i int, open, close byte) (int, error) {
	depth := 0
	for j := i; j < len(expr); j++ {
		switch c := expr[j]; c {
		case '"', '\'', '`':
			end, err := skipPromQLString(expr, j)
			if err != nil {
				return 0, err
			}
			j = end - 1
		case open:
			depth++
		case close:
			if depth--; depth == 0 {
				return j + 1, nil
			}
		}
	}
	return 0, fmt.Errorf("unterminated %c at %d in %q", open, i, expr)
}

func TestPromQLMetricNames(t *testing.T) {
	for _, tc := range []struct {
		expr string
		want []string
	}{
		{`up{job="plato"} == 0`, []string{"up"}},
		{`histogram_quantile(0.99, sum by (app, le) (rate(plato_gateway_uplink_latency_seconds_bucket{app=~"$app"}[$__rate_interval]))) > 1`,
			[]string{"plato_gateway_uplink_latency_seconds_bucket"}},
		{`sum(rate(a_total[5m])) by (code) / ignoring(code) group_left sum(rate(b_total[5m]))`, []string{"a_total", "b_total"}},
		{`max(x) < max_over_time(max(x{role="gateway"})[1h:1m])`, []string{"x"}},
		{`a or b unless c and on(instance) d offset 5m`, []string{"a", "b", "c", "d"}},
		{`sum without (le) (y) * 1e-3 + 0x1F - .5 - 5m`, []string{"y"}},
		{`count_values("le", z) > bool 2`, []string{"z"}},
		{`label_replace(w, "dst", "$1", "src", "(.*)")`, []string{"w"}},
		{`plato_x{code=~"13.."} # a comment naming not_a_metric`, []string{"plato_x"}},
		{`v{a="}{[\"]"} + ${var} + $var + v`, []string{"v"}},
		{`ns:rule:rate5m > 0`, []string{"ns:rule:rate5m"}},
		{`vector(1)`, nil},
	} {
		got, err := promqlMetricNames(tc.expr)
		if err != nil {
			t.Errorf("%s: %v", tc.expr, err)
			continue
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: got %q, want %q", tc.expr, got, tc.want)
		}
	}
	for _, bad := range []string{`x{a="b}`, `rate(x[5m`, `"open`, `x{a="b"`} {
		if _, err := promqlMetricNames(bad); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
}

var metricNameRe = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*$`)

// Whatever the expression, the lexer ends, does not panic, and only returns identifiers.
func FuzzPromQLMetricNames(f *testing.F) {
	for _, s := range []string{
		`up == 0`, `histogram_quantile(0.5, sum by (le) (rate(a_bucket[5m])))`, `x{a="\""}[1h:1m] offset 1d`,
		`$__rate_interval ${a:csv}`, "`raw` '1' 1e+5 0x10", `sum without(a)(b) / on() group_right(c) d`, `{`, `[`, `"`, `(`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, expr string) {
		names, err := promqlMetricNames(expr)
		if err != nil {
			return
		}
		for _, n := range names {
			if !metricNameRe.MatchString(n) || promqlKeywords[n] || promqlGrouping[n] {
				t.Fatalf("%q: returned %q", expr, n)
			}
		}
	})
}
