package bizlink

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/cloudwego/kitex/pkg/kerrors"

	"github.com/platoim/plato/sdk/business/rpc/plato/api"
)

// MaxResponse bounds a webhook's answer: a Deliver answer is one small result per event.
const MaxResponse = 1 << 20

// Webhook is a business server reached by signed HTTP POSTs of JSON: base+"/deliver",
// base+"/sessions", base+"/authenticate" (docs/business.md).
type Webhook struct {
	app, base, secret string
	timeout           time.Duration
	hc                *http.Client
	now               func() time.Time
}

// NewWebhook makes the link to the webhook at base (http:// or https://), every call bounded by
// timeout.
func NewWebhook(app, base, secret string, timeout time.Duration) (*Webhook, error) {
	if !strings.HasPrefix(base, "http://") && !strings.HasPrefix(base, "https://") {
		return nil, fmt.Errorf("%q is not an http:// or https:// URL", base)
	}
	tr := &http.Transport{
		Proxy:                  http.ProxyFromEnvironment,
		DialContext:            (&net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:      true,
		MaxIdleConns:           256,
		MaxIdleConnsPerHost:    64, // a batcher's lanes and the callbacks reuse these
		IdleConnTimeout:        90 * time.Second,
		TLSHandshakeTimeout:    timeout,
		ResponseHeaderTimeout:  timeout,
		MaxResponseHeaderBytes: 64 << 10,
	}
	return &Webhook{
		app: app, base: strings.TrimRight(base, "/"), secret: secret, timeout: timeout,
		hc: &http.Client{Transport: tr, Timeout: timeout,
			// A redirect would resend a signed body somewhere the operator did not configure.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		now: time.Now,
	}, nil
}

// Close drops the idle connections.
func (w *Webhook) Close() { w.hc.CloseIdleConnections() }

// post signs and sends body to base+path and returns the 2xx answer's body; any other outcome is
// a Kitex error of the matching kind.
func (w *Webhook) post(ctx context.Context, path string, body []byte) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, w.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.base+path, bytes.NewReader(body))
	if err != nil {
		return nil, kerrors.ErrInternalException.WithCause(err)
	}
	ts := w.now().Unix()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "plato-webhook/1")
	req.Header.Set(HeaderApp, w.app)
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
	req.Header.Set(HeaderSignature, Sign(w.secret, ts, body))
	resp, err := w.hc.Do(req)
	if err != nil {
		return nil, classify(w.base+path, err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponse+1))
	if err != nil {
		return nil, classify(w.base+path, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, kerrors.ErrRemoteOrNetwork.WithCause(fmt.Errorf("webhook %s answered HTTP %d: %s", w.base+path, resp.StatusCode, snippet(out)))
	}
	if len(out) > MaxResponse {
		return nil, kerrors.ErrRemoteOrNetwork.WithCause(fmt.Errorf("webhook %s answered more than %d bytes", w.base+path, MaxResponse))
	}
	return out, nil
}

// classify turns a failed HTTP exchange into the Kitex error of its kind.
func classify(url string, err error) error {
	var ne net.Error
	var oe *net.OpError
	switch {
	case errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()):
		return kerrors.ErrRPCTimeout.WithCause(fmt.Errorf("webhook %s: %w", url, err))
	case errors.As(err, &oe) && oe.Op == "dial":
		return kerrors.ErrGetConnection.WithCause(fmt.Errorf("webhook %s: %w", url, err))
	}
	return kerrors.ErrRemoteOrNetwork.WithCause(fmt.Errorf("webhook %s: %w", url, err))
}

func snippet(b []byte) string {
	const n = 200
	if len(b) > n {
		return strconv.Quote(string(b[:n])) + "..."
	}
	return strconv.Quote(string(b))
}

// Deliver posts the events to /deliver and expects one result per event.
func (w *Webhook) Deliver(ctx context.Context, req *api.DeliverRequest) (*api.DeliverResponse, error) {
	body, err := json.Marshal(DeliverBody(req))
	if err != nil {
		return nil, kerrors.ErrInternalException.WithCause(err)
	}
	out, err := w.post(ctx, "/deliver", body)
	if err != nil {
		return nil, err
	}
	resp, err := ParseDeliverResponse(out, len(req.Events))
	if err != nil {
		return nil, kerrors.ErrRemoteOrNetwork.WithCause(fmt.Errorf("webhook %s/deliver: %w", w.base, err))
	}
	return resp, nil
}

// Sessions posts the connection to /sessions.
func (w *Webhook) Sessions(ctx context.Context, req *api.SessionsRequest) (*api.SessionsResponse, error) {
	body, err := json.Marshal(sessionsBody{AppID: req.AppId, DID: req.Did, UID: req.Uid, ConnID: req.ConnId,
		GatewayID: req.GatewayId, Platform: req.Platform})
	if err != nil {
		return nil, kerrors.ErrInternalException.WithCause(err)
	}
	out, err := w.post(ctx, "/sessions", body)
	if err != nil {
		return nil, err
	}
	var r struct {
		Sessions []string `json:"sessions"`
	}
	if err := json.Unmarshal(out, &r); err != nil {
		return nil, kerrors.ErrRemoteOrNetwork.WithCause(fmt.Errorf("webhook %s/sessions answered no JSON object with sessions: %w", w.base, err))
	}
	return &api.SessionsResponse{Sessions: r.Sessions}, nil
}

// Authenticate posts the device's credential to /authenticate.
func (w *Webhook) Authenticate(ctx context.Context, req *api.AuthenticateRequest) (*api.AuthenticateResponse, error) {
	body, err := json.Marshal(authBody{AppID: req.AppId, DID: req.Did, Credential: req.Credential, RemoteAddr: req.RemoteAddr})
	if err != nil {
		return nil, kerrors.ErrInternalException.WithCause(err)
	}
	out, err := w.post(ctx, "/authenticate", body)
	if err != nil {
		return nil, err
	}
	var r struct {
		Code      int32  `json:"code"`
		Message   string `json:"message"`
		UID       string `json:"uid"`
		DID       string `json:"did"`
		ExpiresAt int64  `json:"expires_at"`
	}
	if err := json.Unmarshal(out, &r); err != nil {
		return nil, kerrors.ErrRemoteOrNetwork.WithCause(fmt.Errorf("webhook %s/authenticate answered no JSON object: %w", w.base, err))
	}
	return &api.AuthenticateResponse{Code: r.Code, Message: r.Message, Uid: r.UID, Did: r.DID, ExpiresAt: r.ExpiresAt}, nil
}

// Event is an api.Event as a webhook carries it: every field present, the payload in standard
// base64, the kind by name.
type Event struct {
	Kind        string `json:"kind"`
	AppID       string `json:"app_id"`
	DID         string `json:"did"`
	UID         string `json:"uid"`
	ConnID      int64  `json:"conn_id"`
	Seq         int64  `json:"seq"`
	Payload     string `json:"payload"`
	Reason      int32  `json:"reason"`
	GatewayID   string `json:"gateway_id"`
	MsgID       int64  `json:"msg_id"`
	Attempts    int32  `json:"attempts"`
	Traceparent string `json:"traceparent"`
}

// Deliver is the body of a POST to /deliver.
type Deliver struct {
	Events []Event `json:"events"`
}

// DeliverBody converts req to its webhook body.
func DeliverBody(req *api.DeliverRequest) Deliver {
	d := Deliver{Events: make([]Event, len(req.Events))}
	for i, ev := range req.Events {
		d.Events[i] = Event{
			Kind: ev.Kind.String(), AppID: ev.AppId, DID: ev.Did, UID: ev.Uid, ConnID: ev.ConnId, Seq: ev.Seq,
			Payload: base64.StdEncoding.EncodeToString(ev.Payload), Reason: ev.Reason, GatewayID: ev.GatewayId,
			MsgID: ev.MsgId, Attempts: ev.Attempts, Traceparent: ev.Traceparent,
		}
	}
	return d
}

type sessionsBody struct {
	AppID     string `json:"app_id"`
	DID       string `json:"did"`
	UID       string `json:"uid"`
	ConnID    int64  `json:"conn_id"`
	GatewayID string `json:"gateway_id"`
	Platform  string `json:"platform"`
}

type authBody struct {
	AppID      string `json:"app_id"`
	DID        string `json:"did"`
	Credential string `json:"credential"`
	RemoteAddr string `json:"remote_addr"`
}

// ParseDeliverResponse reads a /deliver answer: {"results":[{"code":0,"message":""},...]} with
// exactly one result per event (events), in order, so a receiver that answers 200 without
// looking (a proxy's error page, a stub) never has uplinks ACKed. A code outside 0 and
// 2000-2999 is read as 2000, as over Kitex.
func ParseDeliverResponse(body []byte, events int) (*api.DeliverResponse, error) {
	var r struct {
		Results []*struct {
			Code    int32  `json:"code"`
			Message string `json:"message"`
		} `json:"results"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("the answer is not a JSON object with results: %w", err)
	}
	if r.Results == nil {
		return nil, errors.New(`the answer has no "results" list`)
	}
	if len(r.Results) != events {
		return nil, fmt.Errorf("the answer has %d results for %d events", len(r.Results), events)
	}
	out := &api.DeliverResponse{Results: make([]*api.Result_, len(r.Results))}
	for i, res := range r.Results {
		if res == nil {
			return nil, fmt.Errorf("result %d is null", i)
		}
		c := res.Code
		if c != 0 && (c < 2000 || c > 2999) {
			c = 2000
		}
		out.Results[i] = &api.Result_{Code: c, Message: res.Message}
	}
	return out, nil
}
