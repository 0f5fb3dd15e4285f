package platform_test

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/platoim/plato/core/platform/platformtest"
	"github.com/platoim/plato/sdk/business/rpc/plato/api"
	"github.com/platoim/plato/sdk/client"
	"github.com/platoim/plato/sdk/protocol"
)

// TestMetricsAreExportedAsDocumented drives real traffic (logins, uplinks, a downlink with its ACK,
// a forged token, a garbage frame, a close) through an in-process platform, scrapes /metrics over
// HTTP, and checks the exported metrics against the table of docs/observability.md both ways: every
// documented metric is exported with its documented type, and every exported plato_ metric is
// documented. Then that the counters of that traffic moved.
func TestMetricsAreExportedAsDocumented(t *testing.T) {
	p, _, _ := startObserved(t, nil)
	if p.Admin == nil {
		t.Fatal("no admin server")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	alice, bob := dial(t, p, "alice"), dial(t, p, "bob")
	for i := range 3 {
		if err := alice.Send(ctx, fmt.Appendf(nil, "hello %d", i)); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	resp, err := platformtest.StateClient(t, p.State.Addr()).Push(ctx, &api.PushRequest{Caller: platformtest.Caller("demo"), Dids: []string{"bob"}, Payload: []byte("hi"), WaitAck: true, TimeoutMs: 5000})
	if err != nil || resp.Targets[0].Status != api.PushStatus_ACKED {
		t.Fatalf("push: %v %+v", err, resp)
	}
	<-bob.Messages()
	dial(t, p, "carol").Close()
	rawFrames(t, p.Gateway.Addr(), forgedLogin())
	rawFrames(t, p.Gateway.Addr(), []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
	// A Resume of a connection nobody kept.
	if ack := rawDial(t, p.Gateway.Addr()).resume(mustSigner(t, platformtest.Secret), "erin", 1, 0); ack.Code != protocol.CodeResumeRejected {
		t.Fatalf("Resume of nothing: %+v", ack)
	}
	// A device without a credential at ipconf.
	if _, err := client.FetchEndpoints(ctx, nil, "http://"+p.IPConf.Addr(), "demo", "dave", ""); err == nil {
		t.Fatal("ipconf answered a device without a credential")
	}

	// What the traffic must have moved; closes are counted once the sockets are gone, so poll.
	moved := []struct {
		name   string
		labels []string
		min    float64
	}{
		{"plato_gateway_connections", nil, 2},
		{"plato_gateway_connections_accepted_total", nil, 5},
		{"plato_gateway_connections_closed_total", []string{`reason="1101"`}, 1},
		{"plato_gateway_connections_closed_total", []string{`reason="1001"`}, 1},
		{"plato_gateway_logins_total", []string{`result="ok"`, `code="0"`}, 3},
		{"plato_gateway_logins_total", []string{`result="refused"`, `code="1101"`}, 1},
		{"plato_gateway_frames_in_total", []string{`signal="Uplink"`}, 3},
		{"plato_gateway_frames_out_total", []string{`signal="UplinkAck"`}, 3},
		{"plato_gateway_frames_out_total", []string{`signal="Downlink"`}, 1},
		{"plato_gateway_bytes_in_total", nil, 1},
		{"plato_gateway_bytes_out_total", nil, 1},
		{"plato_gateway_protocol_errors_total", []string{`code="1001"`}, 1},
		{"plato_gateway_resumes_total", []string{`code="1208"`}, 1},
		{"plato_state_resumes_total", []string{`code="1208"`}, 1},
		{"plato_state_connections", nil, 2},
		{"plato_state_logins_total", nil, 3},
		{"plato_state_connections_closed_total", []string{`reason="1209"`}, 1},
		{"plato_state_frames_in_total", nil, 4},
		{"plato_state_uplinks_total", []string{`code="0"`}, 3},
		{"plato_state_downlinks_sent_total", nil, 1},
		{"plato_state_downlink_acks_total", nil, 1},
		{"plato_state_downlink_ack_latency_seconds_count", nil, 1},
		{"plato_ipconf_requests_total", []string{`status="200"`}, 3},
		{"plato_ipconf_requests_total", []string{`status="401"`}, 1},
		{"plato_ipconf_credentials_refused_total", []string{`code="1101"`}, 1},
		{"plato_gateway_app_connections", []string{`app="demo"`}, 2},
		{"plato_state_app_uplinks_total", []string{`app="demo"`, `result="ok"`}, 3},
		{"plato_state_app_pushes_total", []string{`app="demo"`}, 1},
		{"plato_ipconf_gateways", nil, 1},
		{"plato_nats_connected", nil, 1},
		{"plato_pipeline_stage_calls_total", []string{`app="default"`, `stage="pass"`}, 4},
		{"plato_pipeline_stage_latency_seconds_count", []string{`stage="pass"`}, 4},
		{"plato_gateway_uplink_latency_seconds_count", []string{`app="demo"`}, 3},
		{"plato_gateway_state_call_seconds_count", []string{`method="deliver"`, `result="ok"`}, 1},
		{"plato_state_gateway_call_seconds_count", []string{`method="push"`, `result="ok"`}, 1},
		{"plato_in_process_calls_total", []string{`method="deliver"`}, 1},
		{"plato_in_process_calls_total", []string{`method="push"`}, 1},
		{"plato_state_business_call_seconds_count", []string{`app="demo"`, `result="ok"`}, 1},
		{"plato_ipconf_request_seconds_count", []string{`route="/ip/list"`}, 3},
	}
	var s scrape
	var missing []string
	deadline := time.Now().Add(10 * time.Second)
	for {
		s, missing = scrapeMetrics(t, p.Admin.Addr()), nil
		for _, m := range moved {
			if got := s.sum(m.name, m.labels...); got < m.min {
				missing = append(missing, fmt.Sprintf("%s%v = %v, want at least %v", m.name, m.labels, got, m.min))
			}
		}
		if len(missing) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, m := range missing {
		t.Error(m)
	}

	documented := documentedMetrics(t)
	for name, typ := range documented {
		switch got, ok := s.types[name]; {
		case !ok:
			t.Errorf("%s is in docs/observability.md but not exported", name)
		case got != typ:
			t.Errorf("%s is exported as a %s, documented as a %s", name, got, typ)
		}
	}
	var undocumented []string
	for name := range s.types {
		if strings.HasPrefix(name, "plato_") && documented[name] == "" {
			undocumented = append(undocumented, name)
		}
	}
	sort.Strings(undocumented)
	for _, name := range undocumented {
		t.Errorf("%s is exported but not in the table of docs/observability.md", name)
	}
}

func TestHealthz(t *testing.T) {
	p, _, _ := startObserved(t, nil)
	resp, err := http.Get("http://" + p.Admin.Addr() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/healthz: %s", resp.Status)
	}
	p.Admin.Draining()
	if resp, err = http.Get("http://" + p.Admin.Addr() + "/healthz"); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("/healthz while draining: %s, want 503", resp.Status)
	}
}
