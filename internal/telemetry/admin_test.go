package telemetry

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// TestHealthzStatuses: /healthz answers 503 while starting, then what the health function says:
// 200 ok, 503 unhealthy for an error, 200 degraded with its detail for a *Degraded, and 503 once
// draining.
func TestHealthzStatuses(t *testing.T) {
	var health atomic.Value // func() error
	health.Store(func() error { return nil })
	a, err := StartAdmin("127.0.0.1:0", prometheus.NewRegistry(), func() error { return health.Load().(func() error)() }, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Shutdown(t.Context())
	type answer struct {
		Status string
		Error  string
		Detail map[string]any
	}
	get := func() (int, answer) {
		t.Helper()
		resp, err := http.Get("http://" + a.Addr() + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var ans answer
		if err := json.NewDecoder(resp.Body).Decode(&ans); err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, ans
	}
	if code, ans := get(); code != http.StatusServiceUnavailable || ans.Status != "starting" {
		t.Errorf("before ready: %d %+v", code, ans)
	}
	a.SetReady()
	if code, ans := get(); code != http.StatusOK || ans.Status != "ok" || ans.Error != "" || ans.Detail != nil {
		t.Errorf("healthy: %d %+v", code, ans)
	}
	health.Store(func() error { return errors.New("not connected to NATS") })
	if code, ans := get(); code != http.StatusServiceUnavailable || ans.Status != "unhealthy" || ans.Error != "not connected to NATS" {
		t.Errorf("unhealthy: %d %+v", code, ans)
	}
	health.Store(func() error {
		return fmt.Errorf("wrapped: %w", &Degraded{Message: "stage chat/auth crash-looping", Detail: map[string]any{"failing_stages": []string{"chat/auth"}}})
	})
	code, ans := get()
	if code != http.StatusOK || ans.Status != "degraded" || ans.Error != "stage chat/auth crash-looping" || fmt.Sprint(ans.Detail["failing_stages"]) != "[chat/auth]" {
		t.Errorf("degraded: %d %+v", code, ans)
	}
	a.Draining()
	if code, ans := get(); code != http.StatusServiceUnavailable || ans.Status != "stopping" {
		t.Errorf("draining: %d %+v", code, ans)
	}
}
