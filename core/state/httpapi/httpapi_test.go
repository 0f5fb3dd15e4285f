package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/platoim/plato/internal/apps"
	"github.com/platoim/plato/internal/config"
	"github.com/platoim/plato/sdk/business/rpc/plato/api"
	"github.com/platoim/plato/sdk/protocol"
)

const (
	testApp = "app-a"
	testKey = "key-of-app-a"
)

// fakeAPI stands in for the state server's handler: these tests are of the HTTP layer (routing,
// keys, decoding, status codes); core/platform's httpapi_e2e_test runs the real one.
type fakeAPI struct {
	push    func(ctx context.Context, req *api.PushRequest) (*api.PushResponse, error)
	mu      sync.Mutex
	callers []*api.Caller
	last    any
}

func (f *fakeAPI) seen(c *api.Caller, req any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.callers = append(f.callers, c)
	f.last = req
}

func (f *fakeAPI) Push(ctx context.Context, req *api.PushRequest) (*api.PushResponse, error) {
	f.seen(req.Caller, req)
	if f.push != nil {
		return f.push(ctx, req)
	}
	return &api.PushResponse{MsgId: 1 << 60, Qos: api.QoS_AT_LEAST_ONCE, Targets: []*api.PushTarget{{Did: "d1", ConnId: 7, Status: api.PushStatus_SENT, Seq: 3}}}, nil
}

func (f *fakeAPI) Bind(_ context.Context, req *api.BindRequest) (*api.BindResponse, error) {
	f.seen(req.Caller, req)
	return &api.BindResponse{Members: int32(len(req.Dids))}, nil
}

func (f *fakeAPI) Unbind(_ context.Context, req *api.UnbindRequest) (*api.UnbindResponse, error) {
	f.seen(req.Caller, req)
	return &api.UnbindResponse{}, nil
}

func (f *fakeAPI) Kick(_ context.Context, req *api.KickRequest) (*api.KickResponse, error) {
	f.seen(req.Caller, req)
	return &api.KickResponse{Kicked: req.Dids}, nil
}

func (f *fakeAPI) Online(_ context.Context, req *api.OnlineRequest) (*api.OnlineResponse, error) {
	f.seen(req.Caller, req)
	return &api.OnlineResponse{Devices: []*api.Device{{Did: "d1", GatewayId: "gw"}}}, nil
}

func testServer(t testing.TB, f *fakeAPI, adjust ...func(*Config)) *Server {
	t.Helper()
	table, err := apps.New(map[string]config.App{
		testApp: config.SimpleApp(testKey, "jwt-secret-of-app-a-of-32-bytes!!", ""),
		"app-b": config.SimpleApp("key-of-app-b", "jwt-secret-of-app-b-of-32-bytes!!", ""),
	}, apps.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{API: f, Apps: table, PushTimeout: time.Second}
	for _, a := range adjust {
		a(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// listen serves s on a loopback socket for the test.
func listen(t testing.TB, s *Server) string {
	t.Helper()
	if err := s.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Shutdown(context.Background()) })
	return "http://" + s.Addr()
}

type answer struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func (a answer) code() int {
	e, _ := a.body["error"].(map[string]any)
	c, _ := e["code"].(float64)
	return int(c)
}

func do(t testing.TB, method, url, key string, body io.Reader) answer {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
	if err := json.Unmarshal(raw, &a.body); err != nil && method != http.MethodHead {
		t.Fatalf("%s %s answered %d with a body that is not a JSON object: %q", method, url, resp.StatusCode, raw)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s %s: Content-Type %q", method, url, ct)
	}
	return a
}

func TestRoutesAndRefusals(t *testing.T) {
	f := &fakeAPI{}
	var mu sync.Mutex
	counted := map[string]int{}
	base := listen(t, testServer(t, f, func(c *Config) {
		c.Count = func(method string, code int, refused bool) {
			mu.Lock()
			defer mu.Unlock()
			counted[fmt.Sprint(method, " ", code)]++
		}
	}))
	push := base + "/v1/apps/" + testApp + "/push"
	for _, c := range []struct {
		name, method, url, auth, body string
		status, code                  int
	}{
		{"push", "POST", push, "Bearer " + testKey, `{"dids":["d1"],"payload":"aGk=","qos":"at_most_once"}`, 200, 0},
		{"lower-case scheme", "POST", push, "bearer " + testKey, `{"dids":["d1"]}`, 200, 0},
		{"unknown route", "POST", base + "/v1/apps/" + testApp + "/pull", "Bearer " + testKey, `{}`, 404, 1401},
		{"no app", "POST", base + "/v1/apps//push", "Bearer " + testKey, `{}`, 404, 1401},
		{"root", "GET", base + "/", "", ``, 404, 1401},
		{"unknown app", "POST", base + "/v1/apps/nobody/push", "Bearer " + testKey, `{}`, 404, 1402},
		{"no key", "POST", push, "", `{"dids":["d1"]}`, 401, 1402},
		{"basic auth", "POST", push, "Basic " + testKey, `{"dids":["d1"]}`, 401, 1402},
		{"another app's key", "POST", push, "Bearer key-of-app-b", `{"dids":["d1"]}`, 401, 1402},
		{"a prefix of the key", "POST", push, "Bearer " + testKey[:5], `{"dids":["d1"]}`, 401, 1402},
		{"GET a POST route", "GET", push, "Bearer " + testKey, ``, 405, 1401},
		{"POST the document", "POST", base + "/openapi.json", "Bearer " + testKey, `{}`, 405, 1401},
		{"not JSON", "POST", push, "Bearer " + testKey, `dids=d1`, 400, 1401},
		{"an array", "POST", push, "Bearer " + testKey, `[{"dids":["d1"]}]`, 400, 1401},
		{"unknown field", "POST", push, "Bearer " + testKey, `{"did":"d1"}`, 400, 1401},
		{"wrong type", "POST", push, "Bearer " + testKey, `{"dids":"d1"}`, 400, 1401},
		{"bad base64", "POST", push, "Bearer " + testKey, `{"dids":["d1"],"payload":"%%%"}`, 400, 1401},
		{"unknown qos", "POST", push, "Bearer " + testKey, `{"dids":["d1"],"qos":"AT_MOST_ONCE"}`, 400, 1401},
		{"trailing data", "POST", push, "Bearer " + testKey, `{"dids":["d1"]} {}`, 400, 1401},
		{"empty batch", "POST", push + "/batch", "Bearer " + testKey, `{"messages":[]}`, 400, 1401},
		{"empty body", "POST", base + "/v1/apps/" + testApp + "/kick", "Bearer " + testKey, ``, 400, 1401},
	} {
		t.Run(c.name, func(t *testing.T) {
			req, _ := http.NewRequest(c.method, c.url, strings.NewReader(c.body))
			if c.auth != "" {
				req.Header.Set("Authorization", c.auth)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			var body map[string]any
			if err := json.Unmarshal(raw, &body); err != nil {
				t.Fatalf("body %q is not JSON", raw)
			}
			a := answer{status: resp.StatusCode, body: body}
			if a.status != c.status || a.code() != c.code {
				t.Fatalf("%s %s: %d %s, want %d code %d", c.method, c.url, a.status, raw, c.status, c.code)
			}
			if c.status == 401 && resp.Header.Get("WWW-Authenticate") == "" {
				t.Error("a 401 without WWW-Authenticate")
			}
			if c.status == 405 && resp.Header.Get("Allow") == "" {
				t.Error("a 405 without Allow")
			}
		})
	}
	// Refusals before the handler are counted as the handler's are: wrong keys show on
	// plato_state_api_calls_total whichever way business servers call.
	mu.Lock()
	if want := map[string]int{"Push 0": 2, "Push 1402": 5, "Push 1401": 8, "Kick 1401": 1}; !maps.Equal(counted, want) {
		t.Errorf("counted %v, want %v", counted, want)
	}
	mu.Unlock()
	// Only the accepted calls reached the handler, each as the app of the path with the key sent.
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.callers) != 2 {
		t.Fatalf("the handler was called %d times, want 2", len(f.callers))
	}
	for _, c := range f.callers {
		if c.AppId != testApp || c.Key != testKey {
			t.Errorf("caller %+v", c)
		}
	}
}

func TestBodiesConvertBothWays(t *testing.T) {
	f := &fakeAPI{}
	base := listen(t, testServer(t, f)) + "/v1/apps/" + testApp
	a := do(t, "POST", base+"/push", testKey, strings.NewReader(`{"dids":["d1"],"uids":["u1"],"session":"room","payload":"aGk=","qos":"at_least_once","wait_ack":true,"timeout_ms":250}`))
	want := &api.PushRequest{Caller: &api.Caller{AppId: testApp, Key: testKey}, Dids: []string{"d1"}, Uids: []string{"u1"}, Session: "room",
		Payload: []byte("hi"), Qos: api.QoS_AT_LEAST_ONCE, WaitAck: true, TimeoutMs: 250}
	if got := f.last.(*api.PushRequest); !reflect.DeepEqual(got, want) {
		t.Fatalf("the handler got %+v, want %+v", got, want)
	}
	// msg_id is above 2^53: it must come out as an exact integer.
	if !strings.Contains(a.raw, `"msg_id":1152921504606846976`) || !strings.Contains(a.raw, `"targets":[{"did":"d1","uid":"","conn_id":7,"status":"SENT","seq":3,"code":0,"message":""}]`) ||
		!strings.Contains(a.raw, `"route":"DIRECT","qos":"at_least_once","session_members":0`) {
		t.Fatalf("push answered %s", a.raw)
	}
	a = do(t, "POST", base+"/bind", testKey, strings.NewReader(`{"session":"room","dids":["d1","d2"],"replace":true}`))
	if got := f.last.(*api.BindRequest); got.Session != "room" || !slices.Equal(got.Dids, []string{"d1", "d2"}) || !got.Replace || a.raw != `{"offline":[],"members":2}`+"\n" {
		t.Fatalf("bind: the handler got %+v, answered %s", got, a.raw)
	}
	a = do(t, "POST", base+"/unbind", testKey, strings.NewReader(`{"session":"room","all":true}`))
	if got := f.last.(*api.UnbindRequest); got.Session != "room" || !got.All || a.raw != `{"members":0}`+"\n" {
		t.Fatalf("unbind: the handler got %+v, answered %s", got, a.raw)
	}
	a = do(t, "POST", base+"/kick", testKey, strings.NewReader(`{"dids":["d1"],"message":"bye"}`))
	if got := f.last.(*api.KickRequest); got.Message != "bye" || a.raw != `{"kicked":["d1"]}`+"\n" {
		t.Fatalf("kick: the handler got %+v, answered %s", got, a.raw)
	}
	a = do(t, "POST", base+"/online", testKey, strings.NewReader(`{"session":"room"}`))
	if got := f.last.(*api.OnlineRequest); got.Session != "room" || a.raw != `{"devices":[{"did":"d1","uid":"","gateway_id":"gw","conn_id":0,"remote_addr":"","sessions":[]}]}`+"\n" {
		t.Fatalf("online: the handler got %+v, answered %s", got, a.raw)
	}
}

func TestRefusalsKeepTheirCode(t *testing.T) {
	var next atomic.Pointer[any]
	f := &fakeAPI{push: func(context.Context, *api.PushRequest) (*api.PushResponse, error) {
		switch v := (*next.Load()).(type) {
		case error:
			return nil, v
		default:
			panic(v)
		}
	}}
	var counted []string
	var mu sync.Mutex
	base := listen(t, testServer(t, f, func(c *Config) {
		c.Count = func(method string, code int, refused bool) {
			mu.Lock()
			defer mu.Unlock()
			counted = append(counted, fmt.Sprint(method, code, refused))
		}
	})) + "/v1/apps/" + testApp + "/push"
	for _, c := range []struct {
		err          any
		status, code int
	}{
		{&api.PlatoError{Code: 1401, Message: "no target"}, 400, 1401},
		{&api.PlatoError{Code: 1303, Message: "over quota"}, 503, 1303},
		{&api.PlatoError{Code: 1306, Message: "stage timed out"}, 503, 1306},
		{&api.PlatoError{Code: 1308, Message: "slow down"}, 429, 1308},
		{&api.PlatoError{Code: 2001, Message: "refused by a stage"}, 403, 2001},
		{errors.New("not a Plato error"), 500, 1307},
		{"panic", 500, 1307},
	} {
		next.Store(&c.err)
		a := do(t, "POST", base, testKey, strings.NewReader(`{"dids":["d1"]}`))
		if a.status != c.status || a.code() != c.code {
			t.Errorf("%v: answered %d %s, want %d code %d", c.err, a.status, a.raw, c.status, c.code)
		}
		if c.status == 503 && a.header.Get("Retry-After") == "" {
			t.Errorf("%v: a 503 without Retry-After", c.err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"Push1401 true", "Push1303 true", "Push1306 true", "Push1308 true", "Push2001 true", "Push-1 true"}; !slices.Equal(counted, want) {
		t.Errorf("counted %v, want %v", counted, want)
	}
}

func TestBodyLimit(t *testing.T) {
	base := listen(t, testServer(t, &fakeAPI{})) + "/v1/apps/" + testApp + "/push"
	big := `{"dids":["d1"],"payload":"` + strings.Repeat("A", MaxBody) + `"}`
	if a := do(t, "POST", base, testKey, strings.NewReader(big)); a.status != 413 || a.code() != 1401 {
		t.Fatalf("a body over 1 MiB: %d %.200s", a.status, a.raw)
	}
}

func TestInflightBound(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	f := &fakeAPI{push: func(context.Context, *api.PushRequest) (*api.PushResponse, error) {
		entered <- struct{}{}
		<-release
		return &api.PushResponse{}, nil
	}}
	base := listen(t, testServer(t, f, func(c *Config) { c.MaxInflight = 1 })) + "/v1/apps/" + testApp + "/push"
	first := make(chan answer, 1)
	go func() { first <- do(t, "POST", base, testKey, strings.NewReader(`{"dids":["d1"]}`)) }()
	<-entered
	a := do(t, "POST", base, testKey, strings.NewReader(`{"dids":["d1"]}`))
	if a.status != 503 || a.code() != int(protocol.CodeOverloaded) || a.header.Get("Retry-After") == "" {
		t.Fatalf("a request over the bound: %d %s %v", a.status, a.raw, a.header)
	}
	close(release)
	if a := <-first; a.status != 200 {
		t.Fatalf("the request in flight: %d %s", a.status, a.raw)
	}
	if a := do(t, "POST", base, testKey, strings.NewReader(`{"dids":["d1"]}`)); a.status != 200 {
		t.Fatalf("once the first finished: %d %s", a.status, a.raw)
	}
}

func TestBatchKeepsOrderAndBoundsConcurrency(t *testing.T) {
	var running, most atomic.Int32
	f := &fakeAPI{push: func(_ context.Context, req *api.PushRequest) (*api.PushResponse, error) {
		n := running.Add(1)
		defer running.Add(-1)
		for {
			m := most.Load()
			if n <= m || most.CompareAndSwap(m, n) {
				break
			}
		}
		time.Sleep(2 * time.Millisecond)
		if req.Dids[0] == "refuse" {
			return nil, &api.PlatoError{Code: 1401, Message: "refused"}
		}
		return &api.PushResponse{Targets: []*api.PushTarget{{Did: req.Dids[0]}}}, nil
	}}
	base := listen(t, testServer(t, f)) + "/v1/apps/" + testApp + "/push/batch"
	var msgs []string
	for i := range 100 {
		switch i {
		case 10:
			msgs = append(msgs, `{"dids":["x"],"qos":"sometimes"}`)
		case 20:
			msgs = append(msgs, `{"dids":["refuse"]}`)
		case 30:
			msgs = append(msgs, `"not an object"`)
		default:
			msgs = append(msgs, fmt.Sprintf(`{"dids":["d%d"]}`, i))
		}
	}
	a := do(t, "POST", base, testKey, strings.NewReader(`{"messages":[`+strings.Join(msgs, ",")+`]}`))
	if a.status != 200 {
		t.Fatalf("batch: %d %s", a.status, a.raw)
	}
	var got batchResult
	if err := json.Unmarshal([]byte(a.raw), &got); err != nil || len(got.Results) != 100 {
		t.Fatalf("batch answered %v %.300s", err, a.raw)
	}
	for i, r := range got.Results {
		switch i {
		case 10, 20, 30:
			if r.Error == nil || r.Error.Code != 1401 || r.Push != nil {
				t.Errorf("message %d: %+v, want a 1401", i, r)
			}
		default:
			if r.Error != nil || r.Push == nil || r.Push.Targets[0].Did != fmt.Sprintf("d%d", i) {
				t.Errorf("message %d: %+v", i, r)
			}
		}
	}
	if m := most.Load(); m > BatchConcurrency {
		t.Errorf("%d pushes of one batch ran at once, the bound is %d", m, BatchConcurrency)
	}
	over := `{"messages":[` + strings.TrimSuffix(strings.Repeat(`{"dids":["d"]},`, MaxBatch+1), ",") + `]}`
	if a := do(t, "POST", base, testKey, strings.NewReader(over)); a.status != 400 || a.code() != 1401 {
		t.Errorf("a batch over %d: %d %.200s", MaxBatch, a.status, a.raw)
	}
}

// TestSlowSendersAreCutOff: a client that never finishes its headers, or its body, loses its
// connection instead of holding it.
func TestSlowSendersAreCutOff(t *testing.T) {
	s := testServer(t, &fakeAPI{}, func(c *Config) { c.HeaderTimeout, c.BodyTimeout = 300*time.Millisecond, 600*time.Millisecond })
	listen(t, s)
	for name, partial := range map[string]string{
		"headers": "POST /v1/apps/" + testApp + "/push HTTP/1.1\r\nHost: plato\r\nAuthorization: Bearer " + testKey + "\r\n",
		"body":    "POST /v1/apps/" + testApp + "/push HTTP/1.1\r\nHost: plato\r\nAuthorization: Bearer " + testKey + "\r\nContent-Length: 100\r\n\r\n{\"dids\":",
	} {
		conn, err := net.Dial("tcp", s.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if _, err := conn.Write([]byte(partial)); err != nil {
			t.Fatal(err)
		}
		// Generous: the server acts after 300 or 600 ms; a loaded machine may take longer.
		_ = conn.SetReadDeadline(time.Now().Add(15 * time.Second))
		_, err = io.Copy(io.Discard, conn)
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Errorf("a client that stops sending its %s still holds its connection after 15s", name)
		}
	}
}

// TestOpenAPIMatchesTheServer checks the committed document against the server both ways: the
// same routes and methods, every schema reference resolves, and each body schema has exactly the
// fields of the JSON the server reads or writes.
func TestOpenAPIMatchesTheServer(t *testing.T) {
	base := listen(t, testServer(t, &fakeAPI{}))
	a := do(t, "GET", base+"/openapi.json", "", nil)
	if a.status != 200 || a.raw != string(OpenAPI) {
		t.Fatalf("GET /openapi.json: %d", a.status)
	}
	var doc struct {
		OpenAPI    string                                `json:"openapi"`
		Paths      map[string]map[string]json.RawMessage `json:"paths"`
		Components struct {
			Schemas map[string]struct {
				Properties map[string]json.RawMessage `json:"properties"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(OpenAPI, &doc); err != nil {
		t.Fatalf("openapi.json is not valid JSON: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("openapi %q, want 3.x", doc.OpenAPI)
	}
	var documented, served []string
	for path, methods := range doc.Paths {
		for m := range methods {
			if m == "parameters" || m == "summary" || m == "description" {
				continue
			}
			documented = append(documented, strings.ToUpper(m)+" "+path)
		}
	}
	for _, r := range Routes() {
		served = append(served, r.Method+" "+r.Path)
		// And the route really is served: not a 404 (the app is known, the key missing: 401).
		path := strings.ReplaceAll(r.Path, "{app}", testApp)
		if a := do(t, r.Method, base+path, "", strings.NewReader("{}")); a.status == 404 || a.status == 405 {
			t.Errorf("%s %s is listed but answers %d", r.Method, path, a.status)
		}
	}
	slices.Sort(documented)
	slices.Sort(served)
	if !slices.Equal(documented, served) {
		t.Errorf("openapi.json documents\n  %v\nthe server serves\n  %v", documented, served)
	}
	var components map[string]map[string]map[string]json.RawMessage
	if err := json.Unmarshal(OpenAPI, &struct {
		C *map[string]map[string]map[string]json.RawMessage `json:"components"`
	}{&components}); err != nil {
		t.Fatal(err)
	}
	used := map[string]bool{}
	for _, ref := range refs(OpenAPI) {
		parts := strings.Split(ref, "/")
		if len(parts) != 4 || parts[0] != "#" || parts[1] != "components" || components[parts[2]][parts[3]] == nil {
			t.Errorf("openapi.json refers to %s, which it does not define", ref)
		}
		used[ref] = true
	}
	for kind, defs := range components {
		for name := range defs {
			if ref := "#/components/" + kind + "/" + name; kind != "securitySchemes" && !used[ref] {
				t.Errorf("openapi.json defines %s and never uses it", ref)
			}
		}
	}
	for name, v := range map[string]any{
		"PushRequest": pushBody{}, "PushResponse": pushResult{}, "PushTarget": pushTarget{},
		"BatchPushRequest": batchBody{}, "BatchPushResponse": batchResult{}, "BatchResult": batchItem{},
		"BindRequest": bindBody{}, "BindResponse": bindResult{}, "UnbindRequest": unbindBody{}, "UnbindResponse": unbindResult{},
		"KickRequest": kickBody{}, "KickResponse": kickResult{}, "OnlineRequest": onlineBody{}, "OnlineResponse": onlineResult{},
		"Device": device{}, "Error": errorBody{}, "ErrorDetail": apiError{},
	} {
		schema, ok := doc.Components.Schemas[name]
		if !ok {
			t.Errorf("openapi.json has no schema %s", name)
			continue
		}
		var props []string
		for p := range schema.Properties {
			props = append(props, p)
		}
		slices.Sort(props)
		if fields := jsonFields(v); !slices.Equal(props, fields) {
			t.Errorf("schema %s has %v, the server's JSON %v", name, props, fields)
		}
	}
	if len(doc.Components.Schemas) != 17 {
		t.Errorf("openapi.json defines %d schemas; the test checks 17: check the new ones too", len(doc.Components.Schemas))
	}
}

// refs lists every "$ref" value in a JSON document.
func refs(doc []byte) []string {
	var out []string
	d := json.NewDecoder(bytes.NewReader(doc))
	prevRef := false
	for {
		tok, err := d.Token()
		if err != nil {
			return out
		}
		s, isStr := tok.(string)
		if prevRef && isStr {
			out = append(out, s)
		}
		prevRef = isStr && s == "$ref"
	}
}

// jsonFields are the JSON names of a struct's fields, sorted.
func jsonFields(v any) []string {
	data, _ := json.Marshal(v)
	var m map[string]any
	_ = json.Unmarshal(data, &m)
	var out []string
	for k := range m {
		out = append(out, k)
	}
	// omitempty fields of the batch result do not show when empty.
	if _, ok := v.(batchItem); ok {
		out = []string{"error", "push"}
	}
	slices.Sort(out)
	return out
}
