package business

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	kclient "github.com/cloudwego/kitex/client"
	"github.com/cloudwego/kitex/client/callopt"

	"github.com/platoim/plato/sdk/business/rpc/plato/api"
	platoservice "github.com/platoim/plato/sdk/business/rpc/plato/api/plato"
)

// Defaults of ClientConfig.
const (
	// DefaultAddr is where a state server serves Plato's RPC on one machine (state.addr).
	DefaultAddr = "127.0.0.1:8901"
	// DefaultTimeout bounds each call.
	DefaultTimeout = 5 * time.Second
	// DefaultAckTimeout is how long a Push with WaitAck waits for ACKs when Push.Timeout is zero.
	DefaultAckTimeout = 5 * time.Second
	// connectTimeout bounds dialing a state server: one that cannot be dialed in a second is down.
	connectTimeout = time.Second
)

// ClientConfig configures a Client.
type ClientConfig struct {
	// Addr is a state server's RPC address (state.addr): host:port, or a unix socket path; or
	// several, comma-separated. Any state server of a fleet serves every call (it asks the others
	// for the devices they hold), so the client spreads its calls over those listed. Default
	// DefaultAddr.
	Addr string
	// AppID is the app this business server acts for. Required.
	AppID string
	// Key is the app's key, state.business.keys.<app> in Plato's configuration. Required.
	Key string
	// Timeout bounds each call (a Push with WaitAck gets its ACK wait on top). Default DefaultTimeout.
	// A deadline on the call's context applies too.
	Timeout time.Duration
	// KitexOptions are added to the Kitex client's options (tracing suites, a resolver...).
	KitexOptions []kclient.Option
}

// Client calls Plato's RPC for one app. Safe for concurrent use; it keeps pooled connections to the
// state server, so create one and keep it.
type Client struct {
	kc        kclient.Client
	appID     string
	key       string
	timeout   time.Duration
	closeOnce sync.Once
}

// NewClient returns a Client of the state server at cfg.Addr. It does not connect: the first call
// does, so Plato need not be up yet.
func NewClient(cfg ClientConfig) (*Client, error) {
	if cfg.AppID == "" || cfg.Key == "" {
		return nil, errors.New("business client: AppID and Key are required")
	}
	if cfg.Addr == "" {
		cfg.Addr = DefaultAddr
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	opts := append([]kclient.Option{
		kclient.WithDestService("plato"),
		kclient.WithHostPorts(splitAddrs(cfg.Addr)...),
		kclient.WithRPCTimeout(cfg.Timeout),
		kclient.WithConnectTimeout(connectTimeout),
	}, cfg.KitexOptions...)
	// The Kitex client is built from the service info rather than with the generated NewClient, so
	// that Close can release its connection pool.
	kc, err := kclient.NewClient(platoservice.NewServiceInfoForClient(), opts...)
	if err != nil {
		return nil, fmt.Errorf("business client for %s: %w", cfg.Addr, err)
	}
	return &Client{kc: kc, appID: cfg.AppID, key: cfg.Key, timeout: cfg.Timeout}, nil
}

// AppID is the app the client acts for.
func (c *Client) AppID() string { return c.appID }

// Close releases the client's connections. Calls after Close fail.
func (c *Client) Close() error {
	var err error
	c.closeOnce.Do(func() {
		if cl, ok := c.kc.(interface{ Close() error }); ok {
			err = cl.Close()
		}
	})
	return err
}

// caller is filled in on every request; a fresh one each time, as Kitex middlewares may keep it.
func (c *Client) caller() *api.Caller { return &api.Caller{AppId: c.appID, Key: c.key} }

// result is the part of a generated *Plato<Method>Result the client needs: the declared exception.
type result interface{ GetErr() *api.PlatoError }

// call makes one RPC; what says what was being done, for the error. A refusal comes back as *Error.
func (c *Client) call(ctx context.Context, method, what string, args any, res result, opts ...callopt.Option) error {
	if len(opts) > 0 {
		ctx = kclient.NewCtxWithCallOptions(ctx, opts)
	}
	if err := c.kc.Call(ctx, method, args, res); err != nil {
		return fmt.Errorf("%s: %w", what, fromPlato(err))
	}
	if pe := res.GetErr(); pe != nil {
		return fmt.Errorf("%s: %w", what, fromPlato(pe))
	}
	return nil
}

// splitAddrs splits a comma-separated address list, dropping empty entries.
func splitAddrs(s string) []string {
	var out []string
	for _, a := range strings.Split(s, ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	return out
}
