package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/platoim/plato/internal/credential"
	"github.com/platoim/plato/internal/wsclient"
)

// Transports the devices may use (Options.Transport).
const (
	TransportTCP = "tcp"
	TransportWS  = "ws"
)

// validateTransport checks Options.Transport: WebSocket is for the scenarios that connect to a
// running platform through ipconf or --gateway (the ones that start a platform of their own dial
// its TCP listener).
func (o *Options) validateTransport(bad func(string, ...any)) {
	switch o.Transport {
	case "", TransportTCP:
	case TransportWS:
		switch o.Scenario {
		case ScenarioConnect, ScenarioUplink, ScenarioDownlink, ScenarioBroadcast:
		default:
			bad("transport ws: only for the connect, uplink, downlink and broadcast scenarios")
		}
		if o.Baseline {
			bad("transport ws: the baseline echo server speaks TCP only")
		}
	default:
		bad("transport %q: want tcp or ws", o.Transport)
	}
}

// isWSEndpoint reports whether a device endpoint is a WebSocket URL rather than host:port.
func isWSEndpoint(ep string) bool { return strings.HasPrefix(ep, "ws://") }

// endpointAddr is the host:port a device endpoint listens on: the endpoint itself, or a WebSocket
// URL's host.
func endpointAddr(ep string) string {
	if !isWSEndpoint(ep) {
		return ep
	}
	if u, err := url.Parse(ep); err == nil {
		return u.Host
	}
	return ep
}

// fetchWSEndpoints asks ipconf for the gateways' WebSocket URLs (GET /ip/list?transport=ws).
func fetchWSEndpoints(ctx context.Context, ipconfURL, appID, did, cred string) ([]string, error) {
	q := url.Values{"app_id": {appID}, "did": {did}, "transport": {TransportWS}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(ipconfURL, "/")+"/ip/list?"+q.Encode(), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+cred)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var body struct {
		Endpoints []struct{ Addr string }  `json:"endpoints"`
		Error     struct{ Message string } `json:"error"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, fmt.Errorf("ipconf answered %s: %w", resp.Status, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("ipconf answered %s: %s", resp.Status, body.Error.Message)
	}
	var eps []string
	for _, e := range body.Endpoints {
		eps = append(eps, e.Addr)
	}
	if len(eps) == 0 {
		return nil, fmt.Errorf("ipconf lists no gateway with a WebSocket listener (gateway.ws_addr)")
	}
	return eps, nil
}

// wsEndpoints is runner.endpoints for WebSocket devices.
func (r *runner) wsEndpoints(ctx context.Context) ([]string, error) {
	fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	probe := r.runID + "-probe"
	cred, err := credential.MintHS256(r.opts.AppID, r.opts.CredentialKID, r.opts.CredentialSecret, probe, probe, time.Now(), time.Minute)
	if err != nil {
		return nil, err
	}
	eps, err := fetchWSEndpoints(fctx, r.opts.IPConfURL, r.opts.AppID, probe, cred)
	if err != nil {
		return nil, fmt.Errorf("asking ipconf at %s for WebSocket gateways: %w", r.opts.IPConfURL, err)
	}
	return eps, nil
}

// dialWS opens a WebSocket to endpoint with dialer: a net.Conn carrying one Plato frame per
// binary message, for the device code written for TCP.
func dialWS(ctx context.Context, dialer net.Dialer, endpoint string) (net.Conn, error) {
	return wsclient.Dial(ctx, endpoint, wsclient.Options{NetDial: dialer.DialContext})
}
