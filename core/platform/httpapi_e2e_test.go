package platform_test

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/platoim/plato/core/platform/platformtest"
	"github.com/platoim/plato/internal/config"
	"github.com/platoim/plato/sdk/client"
	"github.com/platoim/plato/sdk/poll"
	"github.com/platoim/plato/sdk/protocol"
)

// httpAPI calls a state server's HTTP API as a business server in any language would: JSON over
// a plain HTTP client.
type httpAPI struct {
	t    *testing.T
	base string
}

type httpAnswer struct {
	status int
	header http.Header
	raw    []byte
}

func (a httpAnswer) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(a.raw, v); err != nil {
		t.Fatalf("answer %d %s: %v", a.status, a.raw, err)
	}
}

// code is the Plato code of an error answer.
func (a httpAnswer) code(t *testing.T) int {
	t.Helper()
	var e struct {
		Error struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	a.decode(t, &e)
	if e.Error.Message == "" {
		t.Fatalf("error answer without a message: %d %s", a.status, a.raw)
	}
	return e.Error.Code
}

func (h httpAPI) post(path, key, body string) httpAnswer {
	h.t.Helper()
	req, err := http.NewRequest("POST", h.base+path, strings.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	c := &http.Client{Timeout: 30 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		h.t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatalf("POST %s: reading the answer: %v", path, err)
	}
	return httpAnswer{status: resp.StatusCode, header: resp.Header, raw: raw}
}

// ok posts as app with its key and wants a 200 decoded into v.
func (h httpAPI) ok(app, op, body string, v any) {
	h.t.Helper()
	a := h.post("/v1/apps/"+app+"/"+op, platformtest.KeyOf(app), body)
	if a.status != http.StatusOK {
		h.t.Fatalf("%s %s %s: %d %s", app, op, body, a.status, a.raw)
	}
	a.decode(h.t, v)
}

type pushAnswer struct {
	MsgID   int64 `json:"msg_id"`
	Targets []struct {
		Did    string `json:"did"`
		ConnID int64  `json:"conn_id"`
		Status string `json:"status"`
	} `json:"targets"`
	Route          string `json:"route"`
	QoS            string `json:"qos"`
	SessionMembers int    `json:"session_members"`
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// receive waits for c's next message.
func receive(t *testing.T, c *client.Client, who string) string {
	t.Helper()
	select {
	case m := <-c.Messages():
		return string(m.Payload)
	case <-c.Done():
		t.Fatalf("%s was disconnected: %v", who, c.Err())
	case <-time.After(20 * time.Second):
		t.Fatalf("%s received nothing", who)
	}
	return ""
}

// TestHTTPAPI drives every route of the HTTP API against a real platform, with devices logged in
// through ipconf and a gateway: what a business server in Python or PHP would do.
func TestHTTPAPI(t *testing.T) {
	p, _ := startAll(t, func(cfg *config.Config) {
		b := cfg.Apps["app-b"]
		b.Limits.PushesPerSec = 1 // so that a burst of pushes is refused with 1303
		cfg.Apps["app-b"] = b
	})
	if p.State.HTTPAddr() == "" {
		t.Fatal("the state server serves no HTTP API")
	}
	h := httpAPI{t: t, base: "http://" + p.State.HTTPAddr()}
	alice, bob := dial(t, p, "alice"), dial(t, p, "bob")

	t.Run("push reaches the device and is ACKed", func(t *testing.T) {
		var r pushAnswer
		h.ok("demo", "push", `{"dids":["alice","nobody"],"payload":"`+b64("hello over http")+`","wait_ack":true,"timeout_ms":10000}`, &r)
		if len(r.Targets) != 2 || r.Targets[0].Did != "alice" || r.Targets[0].Status != "ACKED" || r.Targets[0].ConnID != int64(alice.ConnID()) ||
			r.Targets[1].Did != "nobody" || r.Targets[1].Status != "OFFLINE" || r.MsgID == 0 || r.Route != "DIRECT" || r.QoS != "at_least_once" {
			t.Fatalf("push answered %+v", r)
		}
		if got := receive(t, alice, "alice"); got != "hello over http" {
			t.Fatalf("alice got %q", got)
		}
	})

	t.Run("bind, online, session push, unbind", func(t *testing.T) {
		var bound struct {
			Offline []string `json:"offline"`
			Members int      `json:"members"`
		}
		h.ok("demo", "bind", `{"session":"room","dids":["alice","bob","carol"]}`, &bound)
		if bound.Members != 2 || !slices.Equal(bound.Offline, []string{"carol"}) {
			t.Fatalf("bind answered %+v", bound)
		}
		var online struct {
			Devices []struct {
				Did       string   `json:"did"`
				Uid       string   `json:"uid"`
				GatewayID string   `json:"gateway_id"`
				ConnID    int64    `json:"conn_id"`
				Sessions  []string `json:"sessions"`
			} `json:"devices"`
		}
		h.ok("demo", "online", `{"session":"room"}`, &online)
		var dids []string
		for _, d := range online.Devices {
			dids = append(dids, d.Did)
			if d.GatewayID == "" || d.ConnID == 0 || d.Uid != "u-"+d.Did || !slices.Contains(d.Sessions, "room") {
				t.Errorf("online device %+v", d)
			}
		}
		if slices.Sort(dids); !slices.Equal(dids, []string{"alice", "bob"}) {
			t.Fatalf("online in room: %v", dids)
		}
		var r pushAnswer
		h.ok("demo", "push", `{"session":"room","payload":"`+b64("to the room")+`","qos":"at_least_once"}`, &r)
		if r.SessionMembers != 2 {
			t.Fatalf("session push answered %+v", r)
		}
		for who, c := range map[string]*client.Client{"alice": alice, "bob": bob} {
			if got := receive(t, c, who); got != "to the room" {
				t.Fatalf("%s got %q", who, got)
			}
		}
		var unbound struct {
			Members int `json:"members"`
		}
		h.ok("demo", "unbind", `{"session":"room","dids":["bob"]}`, &unbound)
		if unbound.Members != 1 {
			t.Fatalf("unbind answered %+v", unbound)
		}
	})

	t.Run("another app's key reaches nothing of this app", func(t *testing.T) {
		for name, key := range map[string]string{"no key": "", "a wrong key": "not-a-key", "app-a's key": platformtest.KeyOf("app-a")} {
			a := h.post("/v1/apps/demo/push", key, `{"dids":["alice"],"payload":"`+b64("forged")+`"}`)
			if a.status != http.StatusUnauthorized || a.code(t) != int(protocol.CodeAppMismatch) {
				t.Errorf("push to demo with %s: %d %s, want 401 code 1402", name, a.status, a.raw)
			}
		}
		// app-a naming alice names app-a's alice: there is none.
		var r pushAnswer
		h.ok("app-a", "push", `{"dids":["alice"],"uids":["u-alice"],"payload":"`+b64("forged")+`"}`, &r)
		if len(r.Targets) != 2 || r.Targets[0].Status != "OFFLINE" || r.Targets[1].Status != "OFFLINE" {
			t.Fatalf("app-a's push to alice: %+v", r)
		}
		var online struct {
			Devices []any `json:"devices"`
		}
		h.ok("app-a", "online", `{"dids":["alice","bob"]}`, &online)
		if len(online.Devices) != 0 {
			t.Fatalf("app-a sees demo's devices: %+v", online)
		}
		// What alice receives next is demo's, not the forged one.
		h.ok("demo", "push", `{"dids":["alice"],"payload":"`+b64("after")+`"}`, &r)
		if got := receive(t, alice, "alice"); got != "after" {
			t.Fatalf("alice got %q", got)
		}
	})

	t.Run("bad requests", func(t *testing.T) {
		key := platformtest.KeyOf("demo")
		for _, c := range []struct {
			path, body   string
			status, code int
		}{
			{"/v1/apps/demo/push", `{"dids":["alice"]`, 400, 1401},
			{"/v1/apps/demo/push", `{"dids":["alice"],"qos":"sometimes"}`, 400, 1401},
			{"/v1/apps/demo/push", `{"payload":"eA=="}`, 400, 1401}, // no target: refused by the handler
			{"/v1/apps/demo/online", `{"session":"room","dids":["alice"]}`, 400, 1401},
			{"/v1/apps/demo/pull", `{}`, 404, 1401},
			{"/v2/anything", `{}`, 404, 1401},
			{"/v1/apps/nosuchapp/push", `{}`, 404, 1402},
		} {
			a := h.post(c.path, key, c.body)
			if a.status != c.status || a.code(t) != c.code {
				t.Errorf("POST %s %s: %d %s, want %d code %d", c.path, c.body, a.status, a.raw, c.status, c.code)
			}
		}
	})

	t.Run("batch answers each message in order", func(t *testing.T) {
		var r struct {
			Results []struct {
				Push  *pushAnswer `json:"push"`
				Error *struct {
					Code int `json:"code"`
				} `json:"error"`
			} `json:"results"`
		}
		h.ok("demo", "push/batch", `{"messages":[
			{"dids":["alice"],"payload":"`+b64("b1")+`"},
			{"dids":["alice"],"payload":"`+b64("b2")+`","qos":"nope"},
			{"payload":"`+b64("b3")+`"},
			{"dids":["bob"],"payload":"`+b64("b4")+`"}]}`, &r)
		if len(r.Results) != 4 {
			t.Fatalf("batch answered %d results", len(r.Results))
		}
		for i, want := range []string{"alice", "", "", "bob"} {
			res := r.Results[i]
			if want == "" {
				if res.Error == nil || res.Error.Code != 1401 || res.Push != nil {
					t.Errorf("message %d: %+v, want refused with 1401", i, res)
				}
				continue
			}
			if res.Error != nil || res.Push == nil || len(res.Push.Targets) != 1 || res.Push.Targets[0].Did != want || res.Push.Targets[0].Status == "OFFLINE" {
				t.Errorf("message %d: %+v", i, res)
			}
		}
		if got := receive(t, alice, "alice"); got != "b1" {
			t.Fatalf("alice got %q", got)
		}
		if got := receive(t, bob, "bob"); got != "b4" {
			t.Fatalf("bob got %q", got)
		}
	})

	t.Run("kick", func(t *testing.T) {
		var r struct {
			Kicked []string `json:"kicked"`
		}
		h.ok("demo", "kick", `{"dids":["bob","nobody"],"message":"bye"}`, &r)
		if !slices.Equal(r.Kicked, []string{"bob"}) {
			t.Fatalf("kick answered %+v", r)
		}
		select {
		case <-bob.Done():
		case <-time.After(20 * time.Second):
			t.Fatal("bob still connected after the kick")
		}
		if code, _ := protocol.CodeOf(bob.Err()); code != protocol.CodeKicked {
			t.Fatalf("bob ended with %v, want Close 1202", bob.Err())
		}
		poll.Within(t, 20*time.Second, "bob to leave the online list", func() bool {
			var online struct {
				Devices []struct {
					Did string `json:"did"`
				} `json:"devices"`
			}
			h.ok("demo", "online", `{"dids":["alice","bob"]}`, &online)
			return len(online.Devices) == 1 && online.Devices[0].Did == "alice"
		})
	})

	t.Run("a push over the app's quota is answered 503 with Retry-After", func(t *testing.T) {
		var refused httpAnswer
		for range 20 {
			a := h.post("/v1/apps/app-b/push", platformtest.KeyOf("app-b"), `{"dids":["x"],"payload":"eA=="}`)
			if a.status == http.StatusServiceUnavailable {
				refused = a
				break
			}
			if a.status != http.StatusOK {
				t.Fatalf("push within the quota: %d %s", a.status, a.raw)
			}
		}
		if refused.status == 0 {
			t.Fatal("20 pushes at once were all admitted by a quota of 1 per second")
		}
		if refused.code(t) != int(protocol.CodeOverloaded) || refused.header.Get("Retry-After") == "" {
			t.Fatalf("refused push: %d %v %s", refused.status, refused.header, refused.raw)
		}
	})

	t.Run("the calls are counted with the Kitex ones, the document is served", func(t *testing.T) {
		resp, err := http.Get("http://" + p.Admin.Addr() + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		counts := map[string]bool{}
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if line := sc.Text(); strings.HasPrefix(line, "plato_state_api_calls_total{") && !strings.HasSuffix(line, " 0") {
				counts[line[:strings.LastIndex(line, " ")]] = true
			}
		}
		for _, want := range []string{`method="push",result="ok"`, `method="push",result="1303"`, `method="kick",result="ok"`, `method="bind",result="ok"`} {
			found := false
			for k := range counts {
				found = found || strings.Contains(k, want)
			}
			if !found {
				t.Errorf("plato_state_api_calls_total has no %s: %v", want, counts)
			}
		}
		doc, err := http.Get(h.base + "/openapi.json")
		if err != nil {
			t.Fatal(err)
		}
		defer doc.Body.Close()
		body, _ := io.ReadAll(doc.Body)
		if doc.StatusCode != 200 || !bytes.Contains(body, []byte(`"/v1/apps/{app}/push/batch"`)) {
			t.Fatalf("GET /openapi.json: %d %.200s", doc.StatusCode, body)
		}
	})
}
