package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/platoim/plato/core/platform/platformtest"
	"github.com/platoim/plato/sdk/poll"
)

// Paths of what deploy/ ships, from the repository root.
const (
	dashboardFile  = "deploy/grafana/plato.json"
	alertRulesFile = "deploy/prometheus/plato-alerts.yaml"
)

// prometheusMade are the series Prometheus makes itself for every target, not on /metrics.
var prometheusMade = map[string]bool{"up": true}

// grafanaDashboard is the part of Grafana's dashboard model the checks read.
type grafanaDashboard struct {
	Title         string          `json:"title"`
	UID           string          `json:"uid"`
	SchemaVersion int             `json:"schemaVersion"`
	Panels        []grafanaPanel  `json:"panels"`
	Time          json.RawMessage `json:"time"`
	Templating    struct {
		List []struct {
			Name       string          `json:"name"`
			Type       string          `json:"type"`
			Query      json.RawMessage `json:"query"`
			Definition string          `json:"definition"`
			Datasource *grafanaDS      `json:"datasource"`
		} `json:"list"`
	} `json:"templating"`
}

type grafanaDS struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type grafanaPanel struct {
	ID         int        `json:"id"`
	Type       string     `json:"type"`
	Title      string     `json:"title"`
	Datasource *grafanaDS `json:"datasource"`
	GridPos    *struct {
		H, W, X, Y int
	} `json:"gridPos"`
	Targets []struct {
		RefID      string     `json:"refId"`
		Expr       string     `json:"expr"`
		Datasource *grafanaDS `json:"datasource"`
	} `json:"targets"`
	Panels []grafanaPanel `json:"panels"` // a collapsed row's
}

// loadDashboard reads the dashboard, checks what Grafana needs to import it (the schema fields,
// unique panel IDs, a layout inside the 24-column grid, the Prometheus datasource as a variable
// rather than one installation's UID) and returns every PromQL expression in it.
func loadDashboard(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(platformtest.RepoRoot(), dashboardFile))
	if err != nil {
		t.Fatal(err)
	}
	var d grafanaDashboard
	dec := json.NewDecoder(strings.NewReader(string(b)))
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("%s is not valid JSON: %v", dashboardFile, err)
	}
	if d.Title == "" || d.UID == "" || d.SchemaVersion < 30 || len(d.Time) == 0 || len(d.Panels) == 0 {
		t.Errorf("%s: title %q, uid %q, schemaVersion %d, time %s, %d panels: Grafana needs them all", dashboardFile, d.Title, d.UID, d.SchemaVersion, d.Time, len(d.Panels))
	}
	// Every datasource reference anywhere is the variable.
	for _, m := range regexp.MustCompile(`"uid":\s*"([^"]*)"`).FindAllStringSubmatch(string(b), -1) {
		if m[1] != "${datasource}" && m[1] != d.UID {
			t.Errorf("%s names datasource UID %q: use the variable ${datasource}", dashboardFile, m[1])
		}
	}
	dsVar := false
	var exprs []string
	for _, v := range d.Templating.List {
		switch v.Type {
		case "datasource":
			dsVar = dsVar || (v.Name == "datasource" && string(v.Query) == `"prometheus"`)
		case "query":
			// label_values(metric, label): the metric is the first argument.
			m := regexp.MustCompile(`^label_values\(\s*([^,]+),\s*[a-zA-Z_]+\s*\)$`).FindStringSubmatch(v.Definition)
			if m == nil || v.Datasource == nil || v.Datasource.UID != "${datasource}" {
				t.Errorf("variable %s: definition %q, datasource %+v; want label_values(metric, label) on ${datasource}", v.Name, v.Definition, v.Datasource)
				continue
			}
			exprs = append(exprs, m[1])
		}
	}
	if !dsVar {
		t.Errorf("%s has no datasource variable named datasource of type prometheus", dashboardFile)
	}
	ids := map[int]bool{}
	var walk func(ps []grafanaPanel)
	walk = func(ps []grafanaPanel) {
		for _, p := range ps {
			if ids[p.ID] || p.ID == 0 {
				t.Errorf("panel %q: id %d is zero or not unique", p.Title, p.ID)
			}
			ids[p.ID] = true
			if p.Title == "" || p.Type == "" || p.GridPos == nil || p.GridPos.W <= 0 || p.GridPos.H <= 0 || p.GridPos.X+p.GridPos.W > 24 {
				t.Errorf("panel %d %q: type %q, gridPos %+v", p.ID, p.Title, p.Type, p.GridPos)
			}
			walk(p.Panels)
			if p.Type == "row" {
				continue
			}
			if len(p.Targets) == 0 || p.Datasource == nil || p.Datasource.UID != "${datasource}" || p.Datasource.Type != "prometheus" {
				t.Errorf("panel %q: %d targets, datasource %+v", p.Title, len(p.Targets), p.Datasource)
			}
			refs := map[string]bool{}
			for _, tg := range p.Targets {
				if tg.Expr == "" || tg.RefID == "" || refs[tg.RefID] || tg.Datasource == nil || tg.Datasource.UID != "${datasource}" {
					t.Errorf("panel %q: target %q (refId %q, datasource %+v)", p.Title, tg.Expr, tg.RefID, tg.Datasource)
				}
				refs[tg.RefID] = true
				exprs = append(exprs, tg.Expr)
			}
		}
	}
	walk(d.Panels)
	return exprs
}

// loadAlertRules reads the Prometheus rule file, checks each rule has what Alertmanager and its
// readers need, and returns every expression.
func loadAlertRules(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(platformtest.RepoRoot(), alertRulesFile))
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Groups []struct {
			Name  string `yaml:"name"`
			Rules []struct {
				Alert       string            `yaml:"alert"`
				Expr        string            `yaml:"expr"`
				For         string            `yaml:"for"`
				Labels      map[string]string `yaml:"labels"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		t.Fatalf("%s: %v", alertRulesFile, err)
	}
	var exprs []string
	seen := map[string]bool{}
	for _, g := range f.Groups {
		if g.Name == "" || len(g.Rules) == 0 {
			t.Errorf("group %q has no name or no rules", g.Name)
		}
		for _, r := range g.Rules {
			if !regexp.MustCompile(`^[A-Z][A-Za-z0-9]+$`).MatchString(r.Alert) || seen[r.Alert] {
				t.Errorf("alert %q: not a CamelCase name, or not unique", r.Alert)
			}
			seen[r.Alert] = true
			if _, err := time.ParseDuration(r.For); r.For != "" && err != nil {
				t.Errorf("alert %s: for %q: %v", r.Alert, r.For, err)
			}
			if !slices.Contains([]string{"critical", "warning", "info"}, r.Labels["severity"]) || r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("alert %s: severity %q, summary %q, description %q", r.Alert, r.Labels["severity"], r.Annotations["summary"], r.Annotations["description"])
			}
			if strings.TrimSpace(r.Expr) == "" {
				t.Errorf("alert %s has no expr", r.Alert)
			}
			exprs = append(exprs, r.Expr)
		}
	}
	if len(seen) == 0 {
		t.Fatalf("%s has no rules", alertRulesFile)
	}
	return exprs
}

// queriedMetrics are the metric names exprs select, with where each is used.
func queriedMetrics(t *testing.T, exprs map[string][]string) map[string][]string {
	t.Helper()
	used := map[string][]string{}
	for file, list := range exprs {
		for _, e := range list {
			names, err := promqlMetricNames(e)
			if err != nil {
				t.Errorf("%s: %v", file, err)
				continue
			}
			if len(names) == 0 {
				t.Errorf("%s: %q selects no metric", file, e)
			}
			for _, n := range names {
				if !slices.Contains(used[n], file) {
					used[n] = append(used[n], file)
				}
			}
		}
	}
	return used
}

// metricNames are the sample names on a /metrics page: a histogram's name_bucket, name_sum and
// name_count, a counter's name as exported.
func metricNames(page string) map[string]bool {
	names := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(page))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if l == "" || l[0] == '#' {
			continue
		}
		if i := strings.IndexAny(l, "{ "); i > 0 {
			names[l[:i]] = true
		}
	}
	return names
}

// TestDashboardAndAlertsQueryExistingMetrics checks deploy/'s Grafana dashboard and Prometheus
// rules (their form, see loadDashboard and loadAlertRules), then starts `plato up` as a process
// with a real plugin in its pipeline, drives a login, uplinks and pushes through it, and checks
// that every metric the dashboard and the rules query is on its /metrics.
func TestDashboardAndAlertsQueryExistingMetrics(t *testing.T) {
	used := queriedMetrics(t, map[string][]string{dashboardFile: loadDashboard(t), alertRulesFile: loadAlertRules(t)})
	if t.Failed() {
		t.FailNow()
	}

	// The shipped retransmit stage as a plugin process, so that the pipeline's metrics are there.
	pipes := t.TempDir()
	yaml := fmt.Sprintf("version: 1\nstages:\n  - name: retransmit\n    plugin: %s\n    signals: [retransmit]\n    on_failure: fail_open\n",
		platformtest.BuildPlugin(t, "plugins/retransmit"))
	if err := os.WriteFile(filepath.Join(pipes, "default.yaml"), []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := writeConfig(t, embeddedNATS, fmt.Sprintf(`state: {addr: "127.0.0.1:0"}
pipeline: {dir: %q}
demo: {enabled: true, addr: "127.0.0.1:0", login_addr: ""}
%s`, pipes, appsYAML("127.0.0.1:0", "127.0.0.1:0")))
	up := startProc(t, "up", "up", "--config", cfg)
	admin := up.waitLine(regexp.MustCompile(`admin\s+(http://\S+)`))
	// A login, uplinks both ways through the demo business server, and its pushes.
	chatBetween(t, up.waitLine(reIPConf))
	// And a device that is not speaking Plato: series by code appear with their first code.
	c, err := net.DialTimeout("tcp", up.waitLine(reGateway), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = c.Write([]byte("GET / HTTP/1.1\r\nHost: plato\r\n\r\n"))
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, _ = io.Copy(io.Discard, c) // the gateway answers Close 1001 and hangs up
	c.Close()

	var missing []string
	if !poll.Wait(30*time.Second, func() bool {
		have := metricNames(httpGet(t, admin+"/metrics"))
		missing = missing[:0]
		for name, files := range used {
			if !have[name] && !prometheusMade[name] {
				sort.Strings(files)
				missing = append(missing, name+" (in "+strings.Join(files, ", ")+")")
			}
		}
		return len(missing) == 0
	}) {
		sort.Strings(missing)
		t.Errorf("metrics queried by deploy/ but not on the running platform's /metrics:\n%s", strings.Join(missing, "\n"))
	}
	up.interrupt()
}
