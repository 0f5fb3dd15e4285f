package bizlink

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/platoim/plato/internal/rpc"
	"github.com/platoim/plato/sdk/business/rpc/plato/api"
)

const testSecret = "webhook-test-secret-16+"

// receiver is a webhook business server on loopback that checks every signature.
func receiver(t *testing.T, h func(w http.ResponseWriter, path string, body []byte)) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := Verify(testSecret, r.Header.Get(HeaderTimestamp), r.Header.Get(HeaderSignature), body, time.Now(), DefaultTolerance); err != nil {
			t.Errorf("%s: %v", r.URL.Path, err)
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		if r.Header.Get(HeaderApp) != "chat" || r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
			t.Errorf("%s %s: app %q, content type %q", r.Method, r.URL.Path, r.Header.Get(HeaderApp), r.Header.Get("Content-Type"))
		}
		h(w, r.URL.Path, body)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestWebhookCalls(t *testing.T) {
	srv := receiver(t, func(w http.ResponseWriter, path string, body []byte) {
		switch path {
		case "/plato/deliver":
			var d Deliver
			if err := json.Unmarshal(body, &d); err != nil || len(d.Events) != 2 {
				t.Errorf("deliver body %s: %v", body, err)
			}
			if ev := d.Events[0]; ev.Kind != "UPLINK" || ev.Payload != "aGk=" || ev.DID != "d1" || ev.Seq != 7 {
				t.Errorf("uplink event: %+v", ev)
			}
			if ev := d.Events[1]; ev.Kind != "DISCONNECTED" || ev.Reason != 1000 || ev.Payload != "" {
				t.Errorf("disconnected event: %+v", ev)
			}
			_, _ = io.WriteString(w, `{"results":[{"code":2042,"message":"no"},{"code":0}]}`)
		case "/plato/sessions":
			if !strings.Contains(string(body), `"did":"d1"`) {
				t.Errorf("sessions body %s", body)
			}
			_, _ = io.WriteString(w, `{"sessions":["room:1","room:2"]}`)
		case "/plato/authenticate":
			if !strings.Contains(string(body), `"credential":"tok"`) {
				t.Errorf("authenticate body %s", body)
			}
			_, _ = io.WriteString(w, `{"code":0,"uid":"u1","expires_at":123}`)
		default:
			http.NotFound(w, nil)
		}
	})
	w, err := NewWebhook("chat", srv.URL+"/plato/", testSecret, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	ctx := context.Background()
	resp, err := w.Deliver(ctx, &api.DeliverRequest{Events: []*api.Event{
		{Kind: api.EventKind_UPLINK, AppId: "chat", Did: "d1", Seq: 7, Payload: []byte("hi")},
		{Kind: api.EventKind_DISCONNECTED, AppId: "chat", Did: "d1", Reason: 1000},
	}})
	if err != nil || resp.Results[0].Code != 2042 || resp.Results[1].Code != 0 {
		t.Fatalf("deliver: %+v, %v", resp, err)
	}
	ss, err := w.Sessions(ctx, &api.SessionsRequest{AppId: "chat", Did: "d1"})
	if err != nil || len(ss.Sessions) != 2 || ss.Sessions[1] != "room:2" {
		t.Fatalf("sessions: %+v, %v", ss, err)
	}
	au, err := w.Authenticate(ctx, &api.AuthenticateRequest{AppId: "chat", Did: "d1", Credential: "tok"})
	if err != nil || au.Uid != "u1" || au.ExpiresAt != 123 {
		t.Fatalf("authenticate: %+v, %v", au, err)
	}
}

func TestWebhookFailuresAreKitexErrorsOfTheirKind(t *testing.T) {
	release := make(chan struct{})
	srv := receiver(t, func(w http.ResponseWriter, path string, body []byte) {
		switch path {
		case "/500/deliver":
			http.Error(w, "boom", http.StatusInternalServerError)
		case "/slow/deliver":
			<-release
		case "/huge/deliver":
			_, _ = io.WriteString(w, `{"results":[{"code":0,"message":"`+strings.Repeat("x", MaxResponse)+`"}]}`)
		case "/short/deliver":
			_, _ = io.WriteString(w, `{"results":[]}`)
		case "/redirect/deliver":
			w.Header().Set("Location", "/500/deliver")
			w.WriteHeader(http.StatusTemporaryRedirect)
		}
	})
	defer close(release)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedURL := "http://" + ln.Addr().String()
	ln.Close()
	req := &api.DeliverRequest{Events: []*api.Event{{Kind: api.EventKind_UPLINK, Did: "d"}}}
	for _, c := range []struct {
		base    string
		timeout time.Duration
		want    rpc.ErrKind
	}{
		{srv.URL + "/500", 5 * time.Second, rpc.ErrNetwork},
		{srv.URL + "/slow", 300 * time.Millisecond, rpc.ErrTimeout},
		{srv.URL + "/huge", 10 * time.Second, rpc.ErrNetwork},
		{srv.URL + "/short", 5 * time.Second, rpc.ErrNetwork},
		{srv.URL + "/redirect", 5 * time.Second, rpc.ErrNetwork},
		{closedURL, 5 * time.Second, rpc.ErrConnect},
	} {
		w, err := NewWebhook("chat", c.base, testSecret, c.timeout)
		if err != nil {
			t.Fatal(err)
		}
		_, err = w.Deliver(context.Background(), req)
		if err == nil || rpc.KindOf(err) != c.want {
			t.Errorf("%s: %v (kind %v), want kind %v", c.base, err, rpc.KindOf(err), c.want)
		}
		w.Close()
	}
}
