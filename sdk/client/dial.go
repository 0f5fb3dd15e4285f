package client

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/platoim/plato/sdk/protocol"
)

// loginSeq is the header sequence number of Login; the server echoes it and it has no other meaning.
const loginSeq = 1

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
func Dial(ctx context.Context, cfg Config) (*Client, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("checking config: %w", err)
	}
	addrs, token := cfg.Endpoints, cfg.Token
	if len(addrs) == 0 {
		fctx, cancel := context.WithTimeout(ctx, cfg.DialTimeout)
		list, err := FetchEndpoints(fctx, nil, cfg.IPConfURL, cfg.AppID, cfg.DID, cfg.Credential)
		cancel()
		if err != nil {
			return nil, err
		}
		for _, e := range list.Endpoints {
			addrs = append(addrs, e.Addr)
		}
		if token == "" {
			token = list.Token
		}
	}
	var errs []error
	for _, addr := range addrs {
		c, retry, err := dialEndpoint(ctx, cfg, addr, token)
		if err == nil {
			return c, nil
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("dialing %s: %w", addr, ctx.Err())
		}
		if !retry {
			return nil, fmt.Errorf("logging in at %s: %w", addr, err)
		}
		cfg.Logger.Warn("plato endpoint failed, trying the next", "addr", addr, "err", err)
		errs = append(errs, fmt.Errorf("%s: %w", addr, err))
	}
	return nil, fmt.Errorf("dialing: no endpoint of %d accepted the login: %w", len(addrs), errors.Join(errs...))
}

// dialEndpoint connects to one gateway and logs in. retry reports whether another endpoint may do better.
func dialEndpoint(ctx context.Context, cfg Config, addr, token string) (c *Client, retry bool, err error) {
	d := net.Dialer{Timeout: cfg.DialTimeout}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, true, fmt.Errorf("connecting: %w", err)
	}
	br := bufio.NewReaderSize(conn, readBufferSize)
	ack, retry, err := login(ctx, cfg, conn, br, token)
	if err != nil {
		conn.Close()
		return nil, retry, err
	}
	return newClient(cfg, conn, br, addr, ack), false, nil
}

// login sends Login and waits for its LoginAck, or a Close saying why not.
func login(ctx context.Context, cfg Config, conn net.Conn, br *bufio.Reader, token string) (protocol.LoginAck, bool, error) {
	deadline := time.Now().Add(cfg.LoginTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	conn.SetDeadline(deadline)
	// A past deadline wakes the blocked read when ctx is cancelled.
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	body := (&protocol.Login{AppID: cfg.AppID, DID: cfg.DID, UID: cfg.UID, Token: token, Platform: cfg.Platform}).Append(nil)
	if _, err := conn.Write(protocol.AppendFrame(nil, protocol.SigLogin, 0, loginSeq, body)); err != nil {
		return protocol.LoginAck{}, true, fmt.Errorf("sending login: %w", err)
	}
	var buf []byte
	for {
		f, nbuf, err := protocol.ReadFrame(br, cfg.MaxBody, buf)
		buf = nbuf
		if err != nil {
			return protocol.LoginAck{}, true, fmt.Errorf("waiting for login ack: %w", err)
		}
		switch f.Signal {
		case protocol.SigLoginAck:
			var ack protocol.LoginAck
			if err := ack.Decode(f.Body); err != nil {
				return ack, true, fmt.Errorf("decoding login ack: %w", err)
			}
			if ack.Code != protocol.CodeOK {
				return ack, endpointCodes[ack.Code], &protocol.Error{Code: ack.Code, Msg: ack.Message}
			}
			if !stop() {
				return ack, false, fmt.Errorf("logging in: %w", ctx.Err())
			}
			conn.SetDeadline(time.Time{})
			return ack, false, nil
		case protocol.SigClose:
			var cl protocol.Close
			if err := cl.Decode(f.Body); err != nil {
				return protocol.LoginAck{}, true, fmt.Errorf("decoding close: %w", err)
			}
			return protocol.LoginAck{}, endpointCodes[cl.Code], &protocol.Error{Code: cl.Code, Msg: cl.Message}
		default:
			cfg.Logger.Debug("plato frame before login ack ignored", "frame", f.String())
		}
	}
}
