package gateway

import (
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/platoim/plato/internal/apps"
	"github.com/platoim/plato/internal/config"
	"github.com/platoim/plato/internal/telemetry"
	"github.com/platoim/plato/sdk/protocol"
)

// appUsage is what one app uses on this gateway. It is made at the app's first login; apps are
// declared in configuration, so there are as many as the configuration says, never as many as
// devices claim.
type appUsage struct {
	conns atomic.Int64
	// rateLimited counts uplinks answered 1308 (a device over its limit); quotaRefused logins and
	// uplinks answered 1303 (the app over its quota).
	rateLimited, quotaRefused atomic.Int64

	mu      sync.Mutex
	uplinks *rate.Limiter // the app's uplinks per second on this gateway; nil without a quota
	// uplinkLatency is the app's series of plato_gateway_uplink_latency_seconds, resolved at the
	// app's first login (latency.go); set under mu, read by flushes of the app's connections.
	uplinkLatency telemetry.Observer
	resolved      bool
	share         int // the gateways the quota was last divided among
}

// gatewayCount is how many gateways share an app's fleet-wide quotas: the live ones in the
// registry, this one included.
func (gw *Gateway) gatewayCount() int { return max(1, gw.peers.Len()) }

// admitLogin reports whether app may have one more connection here: its connection quota, split
// evenly among the live gateways (ipconf spreads devices evenly, so each gateway's share is what
// it should carry).
func (gw *Gateway) admitLogin(app *apps.App, u *appUsage) bool {
	q := app.Limits.Connections
	if q <= 0 {
		u.conns.Add(1)
		return true
	}
	share := max(1, q/gw.gatewayCount())
	if u.conns.Add(1) > int64(share) {
		u.conns.Add(-1)
		u.quotaRefused.Add(1)
		return false
	}
	return true
}

// deviceLimits are one device's token buckets, in its connCold from its first uplink on: most
// connections are idle, and an idle one carries none. 40 bytes (two x/time/rate Limiters took 184
// in three allocations); the rates and bursts are the app's, read at each uplink.
type deviceLimits struct {
	msgs, bytes bucket
	// refusedInRow counts uplinks refused since the last one let through: a device that keeps
	// sending far past its limit is closed rather than answered forever.
	refusedInRow int
}

// admitUplink decides an uplink of n bytes (header included) on logged-in connection c: 0 to
// forward it, CodeRateLimited or CodeOverloaded to answer it so, and close when the device keeps
// going far past its limit (its connection is closed with 1308).
func (gw *Gateway) admitUplink(c *conn, n int, now time.Time) (code protocol.Code, closeIt bool) {
	app, u := c.app, c.usage
	if app == nil {
		return 0, false
	}
	l := app.Limits
	c.mu.Lock()
	d := &c.coldLocked().limits
	t := now.UnixNano()
	ok := d.msgs.allow(t, 1, l.DeviceUplinksPerSec, l.DeviceUplinkBurst) &&
		d.bytes.allow(t, n, l.DeviceBytesPerSec, max(int(l.DeviceBytesPerSec), gw.cfg.MaxBody+protocol.HeaderLen))
	if ok {
		d.refusedInRow = 0
	} else {
		d.refusedInRow++
		closeIt = d.refusedInRow > l.DeviceUplinkBurst*config.DefaultDeviceAbuseFactor
	}
	c.mu.Unlock()
	if !ok {
		u.rateLimited.Add(1)
		return protocol.CodeRateLimited, closeIt
	}
	if l.UplinksPerSec > 0 && !gw.appUplinks(u, l.UplinksPerSec).AllowN(now, 1) {
		u.quotaRefused.Add(1)
		return protocol.CodeOverloaded, false
	}
	return 0, false
}

// appUplinks is the app's uplink limiter on this gateway, re-rated when the gateways sharing the
// quota change.
func (gw *Gateway) appUplinks(u *appUsage, perSec float64) *rate.Limiter {
	n := gw.gatewayCount()
	u.mu.Lock()
	defer u.mu.Unlock()
	share := rate.Limit(perSec / float64(n))
	if u.uplinks == nil {
		u.uplinks = rate.NewLimiter(share, max(1, int(perSec/float64(n))))
		u.share = n
	} else if u.share != n {
		u.uplinks.SetLimit(share)
		u.uplinks.SetBurst(max(1, int(perSec/float64(n))))
		u.share = n
	}
	return u.uplinks
}
