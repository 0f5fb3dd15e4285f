package state_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/platoim/plato/core/state"
	"github.com/platoim/plato/core/state/statetest"
)

// TestHTTPAPIFollowsHTTPAddr: a state server serves the HTTP API at state.http_addr, with the
// same apps and keys as its Kitex service, and none with the address empty.
func TestHTTPAPIFollowsHTTPAddr(t *testing.T) {
	h := statetest.Start(t, statetest.Options{})
	addr := h.State.HTTPAddr()
	if addr == "" {
		t.Fatal("no HTTP API with state.http_addr 127.0.0.1:0")
	}
	for key, want := range map[string]int{statetest.KeyOf(statetest.App): http.StatusOK, "not-the-key": http.StatusUnauthorized} {
		req, _ := http.NewRequest("POST", "http://"+addr+"/v1/apps/"+statetest.App+"/online", strings.NewReader(`{"dids":["nobody"]}`))
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("online with key %q: %d %s, want %d", key, resp.StatusCode, body, want)
		}
	}
	off := statetest.Start(t, statetest.Options{Configure: func(c *state.Config) { c.HTTPAddr = "" }})
	if a := off.State.HTTPAddr(); a != "" {
		t.Fatalf("state.http_addr empty, yet the HTTP API listens on %s", a)
	}
}
