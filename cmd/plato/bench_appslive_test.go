package main

import (
	"testing"
	"time"
)

// TestBenchAppsLive runs `plato bench apps-live` as the built binary, which starts its own platform
// as processes and sets and deletes apps in NATS KV. It asserts behaviour, never speed: every app
// set was served by ipconf, the gateway and the state server, and every delete refused by ipconf.
func TestBenchAppsLive(t *testing.T) {
	var s struct {
		benchHeader
		AppsLive *struct {
			Conditions struct {
				Changes int `json:"changes"`
			} `json:"conditions"`
			IPConf      quantiles `json:"ipconf_ms"`
			Login       quantiles `json:"login_ms"`
			BusinessKey quantiles `json:"business_key_ms"`
			Deleted     quantiles `json:"deleted_ms"`
			Served      quantiles `json:"served_ms"`
			Missed      int       `json:"missed"`
		} `json:"apps_live"`
	}
	run := runBenchScenario(t, 2*time.Minute, &s, "apps-live", "--changes", "3")
	f := s.AppsLive
	if s.Scenario != "apps-live" || f == nil || f.Conditions.Changes != 3 {
		run.fatal()
	}
	if f.Missed != 0 {
		run.fail("%d probes missed", f.Missed)
	}
	for name, q := range map[string]quantiles{"ipconf": f.IPConf, "login": f.Login, "business key": f.BusinessKey, "deleted": f.Deleted, "served": f.Served} {
		if q.Max <= 0 || q.P50 > q.Max {
			run.fail("%s: %+v", name, q)
		}
	}
	if f.Served.Max < max(f.IPConf.Max, f.Login.Max, f.BusinessKey.Max) {
		run.fail("served is not the last of the three")
	}
	if !s.loadAverageNoted() {
		run.fail("no load average")
	}
}
