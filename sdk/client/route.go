package client

import (
	"context"
	"fmt"
	"time"

	"github.com/platoim/plato/sdk/protocol"
)

// tokenMargin renews a token from ipconf this long before its expiry, so a Resume does not carry a
// token that expires on its way (or by the gateway's clock, which may run ahead).
const tokenMargin = 10 * time.Second

// route is where the client connects next: the endpoint list, the position in it, and the token.
// One goroutine at a time uses it: Dial, then the reader of whichever connection ended.
type route struct {
	cfg   *Config
	addrs []string // the list being tried: ipconf's, Config.Endpoints or a Redirect's
	next  int      // index in addrs of the next endpoint to try
	token string
	// expires is the token's expiry from ipconf; zero when unknown.
	expires time.Time
	// stale asks for a fresh token before the next attempt: the current one was refused.
	stale bool
	// fresh is set while the token came from ipconf and no connection has been made with it yet:
	// a refusal of it then is the credential's or the app's fault, and final.
	fresh bool
	// renewed is set while the token replaces a refused one and the connection made with it has not
	// proved itself: a Close with a token or app code then is not the old token's fault, and final.
	renewed bool
	// failures counts reconnect attempts since a connection lasted; it sets the backoff.
	failures int
}

func newRoute(cfg *Config) route {
	return route{cfg: cfg, addrs: cfg.Endpoints, token: cfg.Token}
}

// static reports whether the endpoints come from Config instead of ipconf.
func (r *route) static() bool { return len(r.cfg.Endpoints) > 0 }

// renewable reports whether ipconf can hand out another token.
func (r *route) renewable() bool { return !r.static() && r.cfg.Token == "" }

func (r *route) expired() bool {
	return !r.expires.IsZero() && time.Now().Add(tokenMargin).After(r.expires)
}

// fetch asks ipconf for a fresh endpoint list, and the token that comes with it.
func (r *route) fetch(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.DialTimeout)
	defer cancel()
	list, err := FetchEndpoints(ctx, nil, r.cfg.IPConfURL, r.cfg.AppID, r.cfg.DID, r.cfg.Credential)
	if err != nil {
		return err
	}
	r.addrs, r.next = nil, 0
	for _, e := range list.Endpoints {
		r.addrs = append(r.addrs, e.Addr)
	}
	if r.cfg.Token == "" {
		r.renewed = r.stale
		r.token, r.stale, r.fresh = list.Token, false, true
		r.expires = time.Time{}
		if list.TokenExpiresAt > 0 {
			r.expires = time.Unix(list.TokenExpiresAt, 0)
		}
	}
	return nil
}

// peek is the endpoint the next call to advance will return, or "" when it will ask ipconf first.
func (r *route) peek() string {
	switch {
	case r.needsFetch():
		return ""
	case r.next < len(r.addrs):
		return r.addrs[r.next]
	case r.static():
		return r.cfg.Endpoints[0]
	}
	return ""
}

func (r *route) needsFetch() bool {
	return !r.static() && (r.next >= len(r.addrs) || r.stale && r.renewable() || r.expired() && r.renewable())
}

// advance returns the endpoint to try next: the next one of the current list, else (or when the
// token must be renewed) the first of a fresh list from ipconf. A static list starts over.
func (r *route) advance(ctx context.Context) (string, error) {
	if r.needsFetch() {
		if err := r.fetch(ctx); err != nil {
			return "", fmt.Errorf("asking ipconf for endpoints: %w", err)
		}
	}
	if r.next >= len(r.addrs) {
		r.addrs, r.next = r.cfg.Endpoints, 0
	}
	addr := r.addrs[r.next]
	r.next++
	return addr, nil
}

// connected notes that a connection was made with the current token.
func (r *route) connected() { r.fresh = false }

// refused notes that the token or the app was refused, and returns err when that is final: the
// token cannot be renewed, or it was just renewed and refused all the same.
func (r *route) refused(err error) error {
	if !r.renewable() || r.fresh || r.renewed {
		return err
	}
	r.stale = true
	return nil
}

// ended notes how long the lost connection lasted and whether it ended for a reason of the token's:
// one that lasted, or ended for another reason, proved its token good and resets the backoff.
func (r *route) ended(lasted bool, v verdict) {
	if lasted {
		r.failures = 0
	}
	if lasted || v != renew {
		r.renewed = false
	}
}

// redirect makes the Redirect's endpoints the list to try, with its token when it names one.
func (r *route) redirect(rd *protocol.Redirect) {
	r.addrs, r.next = rd.Endpoints, 0
	if rd.Token != "" {
		r.token, r.expires, r.stale, r.fresh = rd.Token, time.Time{}, false, false
	}
}
