package ipconf

import (
	"net/http"
	"testing"
)

// A browser page on another origin can ask for endpoints: the preflight of a request with
// Authorization is answered, and the answers (refusals included) carry Access-Control-Allow-Origin.
func TestCrossOriginList(t *testing.T) {
	s := startServer(t, Config{}, startRegistry(t))
	do := func(method, auth string) *http.Response {
		t.Helper()
		req, err := http.NewRequest(method, "http://"+s.Addr()+"/ip/list?app_id=demo&did=d1", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Origin", "http://chat.example")
		if method == http.MethodOptions {
			req.Header.Set("Access-Control-Request-Method", "GET")
			req.Header.Set("Access-Control-Request-Headers", "authorization")
		}
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	pre := do(http.MethodOptions, "")
	if pre.StatusCode != http.StatusNoContent || pre.Header.Get("Access-Control-Allow-Origin") != "*" ||
		pre.Header.Get("Access-Control-Allow-Headers") != "Authorization" || pre.Header.Get("Access-Control-Allow-Methods") != "GET" {
		t.Errorf("preflight: %d %v", pre.StatusCode, pre.Header)
	}
	// No gateway is registered: the 503 still reaches the page's script, and so does a 401.
	for _, auth := range []string{"Bearer " + jwtFor(t, "demo", "d1", "u-d1", nil), ""} {
		r := do(http.MethodGet, auth)
		if r.Header.Get("Access-Control-Allow-Origin") != "*" || r.StatusCode == http.StatusOK {
			t.Errorf("GET with %q: %d %v", auth, r.StatusCode, r.Header)
		}
	}
}
