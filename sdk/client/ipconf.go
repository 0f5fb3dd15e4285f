package client

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/platoim/plato/sdk/protocol"
)

// maxIPConfResponse bounds what is read from ipconf, so a wrong URL cannot make the SDK buffer a
// large download.
const maxIPConfResponse = 1 << 20

// Endpoint is one gateway ipconf hands out.
type Endpoint struct {
	ID   string `json:"id"`
	Addr string `json:"addr"` // "host:port" to dial
	// DynamicScore and StaticScore are the ranking ipconf used; endpoints arrive best first already.
	DynamicScore float64 `json:"dynamic_score"`
	StaticScore  float64 `json:"static_score"`
	// Overloaded marks a gateway that refuses logins for overload: ipconf lists it after every
	// other, as a last resort.
	Overloaded bool `json:"overloaded,omitempty"`
}

// IPList is ipconf's answer to GET /ip/list.
type IPList struct {
	AppID string `json:"app_id"`
	// DID and UID are who the credential proved the device is; Token binds them.
	DID string `json:"did"`
	UID string `json:"uid"`
	// Endpoints are at most 8 gateways, best first; try them in order.
	Endpoints []Endpoint `json:"endpoints"`
	// Token is the access token to send in Login.
	Token string `json:"token"`
	// TokenExpiresAt is the token's expiry in Unix seconds.
	TokenExpiresAt int64 `json:"token_expires_at"`
}

// FetchEndpoints calls GET {ipconfURL}/ip/list?app_id=..&did=.. with the device's credential (what
// its app's backend issued it) as "Authorization: Bearer". A nil httpClient means
// http.DefaultClient. A non-200 answer is an error wrapping a *protocol.Error with ipconf's code and
// message: 1101/1102/1103 for a refused credential (HTTP 401), 1105 for an app Plato does not
// serve (403), 1401 for a bad parameter (400), 1305 when no gateway is live (503).
func FetchEndpoints(ctx context.Context, httpClient *http.Client, ipconfURL, appID, did, credential string) (*IPList, error) {
	if httpClient == nil {
		httpClient = http.DefaultClient
	}
	u, err := url.Parse(strings.TrimRight(ipconfURL, "/") + "/ip/list")
	if err != nil {
		return nil, fmt.Errorf("parsing ipconf URL: %w", err)
	}
	u.RawQuery = url.Values{"app_id": {appID}, "did": {did}}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("building ipconf request: %w", err)
	}
	if credential != "" {
		req.Header.Set("Authorization", "Bearer "+credential)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetching endpoints: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxIPConfResponse))
	if err != nil {
		return nil, fmt.Errorf("reading ipconf response: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetching endpoints: HTTP %d: %w", resp.StatusCode, ipconfError(body))
	}
	var list IPList
	if err := json.Unmarshal(body, &list); err != nil {
		return nil, fmt.Errorf("decoding ipconf response: %w", err)
	}
	if len(list.Endpoints) == 0 {
		return nil, fmt.Errorf("fetching endpoints: %w", &protocol.Error{Code: protocol.CodeNoGateway, Msg: "ipconf returned no endpoints"})
	}
	return &list, nil
}

// ipconfError turns ipconf's {"error":{"code":..,"message":..}} body into a *protocol.Error, or
// quotes the start of the body when it is not that shape (a proxy's error page, say).
func ipconfError(body []byte) error {
	var e struct {
		Error struct {
			Code    protocol.Code `json:"code"`
			Message string        `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal(body, &e); err == nil && e.Error.Code != 0 {
		return &protocol.Error{Code: e.Error.Code, Msg: e.Error.Message}
	}
	const quote = 200
	if len(body) > quote {
		body = body[:quote]
	}
	return fmt.Errorf("unexpected body %q", body)
}
