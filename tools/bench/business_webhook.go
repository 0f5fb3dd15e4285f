package bench

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/platoim/plato/internal/bizlink"
	"github.com/platoim/plato/sdk/business/rpc/plato/api"
)

// webhookHostPort reports whether business is a webhook URL, and where it listens.
func webhookHostPort(business string) (string, bool) {
	if !strings.HasPrefix(business, "http://") {
		return "", false
	}
	u, err := url.Parse(business)
	if err != nil {
		return business, true // refused by checkLoopbackAddr
	}
	return u.Host, true
}

// webhookSecretEnv is the variable that sets apps.<app>.webhook_secret on the platform.
func webhookSecretEnv(app string) string {
	return "PLATO_APPS__" + strings.ToUpper(app) + "__WEBHOOK_SECRET"
}

// serveWebhook makes the sink take its events as webhooks at base (docs/business.md §3.1): each
// request's signature and timestamp are checked, as a business server must, and the events go to
// the same Deliver as over Kitex.
func (s *sinkBusiness) serveWebhook(base, secret string) error {
	u, err := url.Parse(base)
	if err != nil {
		return fmt.Errorf("bench business server: %q: %w", base, err)
	}
	ln, err := net.Listen("tcp", u.Host)
	if err != nil {
		return fmt.Errorf("bench business server: listening on %s: %w", u.Host, err)
	}
	s.ln, s.url = ln, "http://"+ln.Addr().String()+strings.TrimRight(u.Path, "/")
	path := strings.TrimRight(u.Path, "/")
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+path+"/deliver", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 8<<20))
		if err != nil {
			http.Error(w, err.Error(), http.StatusRequestEntityTooLarge)
			return
		}
		if err := bizlink.Verify(secret, r.Header.Get(bizlink.HeaderTimestamp), r.Header.Get(bizlink.HeaderSignature), body, time.Now(), bizlink.DefaultTolerance); err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		var d bizlink.Deliver
		if err := json.Unmarshal(body, &d); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		req := &api.DeliverRequest{Events: make([]*api.Event, len(d.Events))}
		for i, ev := range d.Events {
			kind, _ := api.EventKindFromString(ev.Kind)
			payload, _ := base64.StdEncoding.DecodeString(ev.Payload)
			req.Events[i] = &api.Event{Kind: kind, AppId: ev.AppID, Did: ev.DID, Uid: ev.UID, ConnId: ev.ConnID, Seq: ev.Seq, Payload: payload}
		}
		resp, err := s.Deliver(r.Context(), req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		out := struct {
			Results []*api.Result_ `json:"results"`
		}{resp.Results}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(out)
	})
	mux.HandleFunc("POST "+path+"/sessions", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"sessions":[]}`)
	})
	s.hs = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = s.hs.Serve(ln) }()
	return nil
}
