package gateway_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/platoim/plato/core/gateway/gatewaytest"
	"github.com/platoim/plato/internal/opsapi"
)

// The ops API of a gateway alone: every refusal is JSON with the status that says why, and
// nothing is moved when there is nowhere to move it.
func TestOpsAPIRefusals(t *testing.T) {
	h := gatewaytest.New(t, gatewaytest.Options{})
	h.Login("demo", "device-1")
	srv := httptest.NewServer(h.Gateway.OpsHandler("k"))
	defer srv.Close()
	call := func(method, path, body, key string) (int, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
			t.Fatalf("%s %s: answer not JSON: %v", method, path, err)
		}
		return resp.StatusCode, out
	}
	code, st := call("GET", opsapi.PathStatus, "", "k")
	if code != 200 || st["conns"] != float64(1) || st["draining"] != false {
		t.Fatalf("status: %d %v", code, st)
	}
	for _, tc := range []struct {
		method, path, body, key string
		want                    int
		says                    string
	}{
		{"GET", opsapi.PathStatus, "", "", 401, "missing ops key"},
		{"POST", opsapi.PathMigrate, `{"count":1}`, "nope", 403, "wrong ops key"},
		{"POST", opsapi.PathMigrate, `{}`, "k", 400, "say which devices"},
		{"POST", opsapi.PathMigrate, `{"count":-1}`, "k", 400, "negative"},
		{"POST", opsapi.PathMigrate, `{"count":1,"colour":"red"}`, "k", 400, "unknown field"},
		{"POST", opsapi.PathMigrate, `{"count":`, "k", 400, "not the JSON"},
		{"POST", opsapi.PathMigrate, `{"count":1}`, "k", 409, "only live gateway"},
		{"POST", opsapi.PathMigrate, `{"count":1,"to":"gw-nowhere"}`, "k", 404, "gw-nowhere is not live"},
		{"POST", opsapi.PathMigrate, `{"count":1,"to":"` + h.Gateway.OpsStatus().Gateway + `"}`, "k", 400, "to itself"},
		{"POST", opsapi.PathDrain, `{}`, "k", 409, "only live gateway"},
		{"GET", "/api/v1/gateway/nope", "", "k", 404, "no such operation"},
	} {
		code, out := call(tc.method, tc.path, tc.body, tc.key)
		if msg, _ := out["error"].(string); code != tc.want || !strings.Contains(msg, tc.says) {
			t.Errorf("%s %s %s: %d %q, want %d saying %q", tc.method, tc.path, tc.body, code, msg, tc.want, tc.says)
		}
	}
	if st := h.Gateway.OpsStatus(); st.Conns != 1 || st.Draining {
		t.Fatalf("after the refusals: %+v, want the device still here and no drain", st)
	}
	// Undrain of a gateway that does not drain is harmless.
	if code, st := call("DELETE", opsapi.PathDrain, "", "k"); code != 200 || st["draining"] != false {
		t.Fatalf("undrain: %d %v", code, st)
	}
}
