package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"
)

// httpPusher pushes through a state server's HTTP/JSON API (state.http_addr), as a business server
// in a language without Kitex does: one POST /v1/apps/<app>/push per call, on kept-alive
// connections.
type httpPusher struct {
	url, auth string
	cli       *http.Client
}

func newHTTPPusher(addr, appID, key string) *httpPusher {
	tr := &http.Transport{MaxIdleConns: pushConcurrency, MaxIdleConnsPerHost: pushConcurrency, IdleConnTimeout: time.Minute}
	return &httpPusher{
		url: "http://" + addr + "/v1/apps/" + appID + "/push", auth: "Bearer " + key,
		cli: &http.Client{Transport: tr, Timeout: pushTimeout},
	}
}

// httpPushAnswer is what the bench reads of a push's answer, or of a refusal.
type httpPushAnswer struct {
	Targets []struct {
		Status string `json:"status"`
	} `json:"targets"`
	Error *struct {
		Code int `json:"code"`
	} `json:"error"`
}

func (p *httpPusher) push(ctx context.Context, targets []pushTarget, payload []byte) []string {
	return pushInChunks(targets, func(dids, res []string) {
		ans, err := p.call(ctx, dids, payload)
		for i := range res {
			switch {
			case err != nil:
				res[i] = "push error: " + err.Error()
			case i >= len(ans.Targets):
				res[i] = "push no answer"
			case ans.Targets[i].Status != "SENT" && ans.Targets[i].Status != "ACKED":
				res[i] = "push " + ans.Targets[i].Status
			}
		}
	})
}

func (p *httpPusher) call(ctx context.Context, dids []string, payload []byte) (*httpPushAnswer, error) {
	body, err := json.Marshal(map[string]any{"dids": dids, "payload": payload})
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", p.auth)
	req.Header.Set("Content-Type", "application/json")
	resp, err := p.cli.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s", rpcErrClass(err))
	}
	defer resp.Body.Close()
	var ans httpPushAnswer
	if err := json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(&ans); err != nil {
		return nil, fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	if ans.Error != nil {
		return nil, fmt.Errorf("code %d", ans.Error.Code)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	return &ans, nil
}

func (p *httpPusher) close() { p.cli.CloseIdleConnections() }
