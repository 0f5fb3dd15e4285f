package client

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"

	"github.com/platoim/plato/sdk/protocol"
)

// endpointCodes are refusals that describe the gateway rather than the device, so the next endpoint
// may well accept the same login.
var endpointCodes = map[protocol.Code]bool{
	protocol.CodeShuttingDown: true,
	protocol.CodeStateLost:    true, // this gateway reaches no state server
	protocol.CodeOverloaded:   true,
}

// readBufferSize lets most frames arrive in one read instead of two (header, then body).
const readBufferSize = 16 << 10

// Dial connects and logs in. Without Config.Endpoints it first asks ipconf for endpoints and a token.
// It tries the endpoints in order, moving on when one cannot be reached, does not answer the login
// in time, or refuses it for a reason of its own (see endpointCodes). Any other refusal ends the
// attempt with a *protocol.Error carrying the server's code (for example 1101-1103 for a bad token:
// another gateway would say the same).
//
// Dial makes that one pass even with Config.Reconnect, so a device that cannot connect at all (a
// wrong address, a refused credential) learns it at once; reconnecting starts once it was connected.
func Dial(ctx context.Context, cfg Config) (*Client, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("checking config: %w", err)
	}
	c := newClient(ctx, cfg)
	cn, err := c.dialFirst(ctx)
	if err != nil {
		c.cancel()
		c.report(State{Kind: Closed, Err: err})
		c.wg.Wait()
		return nil, err
	}
	c.mu.Lock()
	c.cur = cn
	c.mu.Unlock()
	c.report(State{Kind: Connected, Endpoint: cn.endpoint, ConnID: cn.id})
	c.start(cn)
	return c, nil
}

// dialFirst is Dial's single pass over the endpoints.
func (c *Client) dialFirst(ctx context.Context) (*conn, error) {
	r := &c.route
	if !r.static() {
		if err := r.fetch(ctx); err != nil {
			return nil, err
		}
	}
	var errs []error
	var last error
	for i, addr := range r.addrs {
		r.next = i + 1
		c.report(State{Kind: Connecting, Endpoint: addr, Attempt: i + 1, Err: last})
		cn, _, err := c.connect(ctx, addr, r.token, nil)
		if err == nil {
			r.connected()
			return cn, nil
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("dialing %s: %w", addr, ctx.Err())
		}
		if code, ok := protocol.CodeOf(err); ok && !endpointCodes[code] && !errors.As(err, new(*handshakeFault)) {
			return nil, fmt.Errorf("logging in at %s: %w", addr, err)
		}
		c.cfg.Logger.Warn("plato endpoint failed, trying the next", "addr", addr, "err", err)
		last = fmt.Errorf("%s: %w", addr, err)
		errs = append(errs, last)
	}
	return nil, fmt.Errorf("dialing: no endpoint of %d accepted the login: %w", len(r.addrs), errors.Join(errs...))
}

// start runs a connection's reader and heartbeat goroutines.
func (c *Client) start(cn *conn) {
	c.wg.Add(2)
	go c.serve(cn)
	go func() {
		defer c.wg.Done()
		cn.heartbeatLoop()
	}()
}

// resumePoint is where a Resume picks a lost connection up.
type resumePoint struct {
	connID   uint64 // the lost connection's ID
	lastDown uint64 // the highest downlink seq the application got on it
}

// connect dials addr and logs in there: by resuming from when it is set, by Login otherwise or when
// the server cannot resume. resumed reports which.
func (c *Client) connect(ctx context.Context, addr, token string, from *resumePoint) (cn *conn, resumed bool, err error) {
	d := net.Dialer{Timeout: c.cfg.DialTimeout}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, false, fmt.Errorf("connecting: %w", err)
	}
	br := bufio.NewReaderSize(nc, readBufferSize)
	ack, resumed, err := handshake(ctx, &c.cfg, nc, br, token, from)
	if err != nil {
		nc.Close()
		return nil, false, err
	}
	return c.newConn(nc, br, addr, ack), resumed, nil
}
