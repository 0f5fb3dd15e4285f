package opsapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
)

// Client calls one gateway's ops API.
type Client struct {
	// Base is the admin server's URL, e.g. "http://127.0.0.1:9464".
	Base string
	Key  string
	HTTP *http.Client
}

// Status reads the gateway and its drain.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var s Status
	return s, c.do(ctx, http.MethodGet, PathStatus, nil, &s)
}

// Migrate redirects the devices req selects and answers once they all were.
func (c *Client) Migrate(ctx context.Context, req MigrateRequest) (MigrateResult, error) {
	var r MigrateResult
	return r, c.do(ctx, http.MethodPost, PathMigrate, req, &r)
}

// Drain starts a drain (or changes the pace of the one running) and answers at once.
func (c *Client) Drain(ctx context.Context, req DrainRequest) (Status, error) {
	var s Status
	return s, c.do(ctx, http.MethodPost, PathDrain, req, &s)
}

// Undrain calls a drain off: the gateway takes logins again.
func (c *Client) Undrain(ctx context.Context) (Status, error) {
	var s Status
	return s, c.do(ctx, http.MethodDelete, PathDrain, nil, &s)
}

// Get reads path (the console's /api/v1/fleet, say) into out.
func (c *Client) Get(ctx context.Context, path string, out any) error {
	return c.do(ctx, http.MethodGet, path, nil, out)
}

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.Base+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.Key)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("%s %s: reading the answer: %w", method, path, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e Error
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			return fmt.Errorf("%s %s: %s (%s)", method, path, e.Error, resp.Status)
		}
		return fmt.Errorf("%s %s: %s", method, path, resp.Status)
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("%s %s: decoding the answer: %w", method, path, err)
	}
	return nil
}
