package state

import (
	"sync"

	"golang.org/x/time/rate"
)

// pushQuotas limit each app's Push calls to its apps.<app>.limits.pushes_per_sec, shared evenly
// among the live state servers (business clients spread their calls over all of them). Limiters
// exist for declared apps with a quota only.
type pushQuotas struct {
	mu    sync.Mutex
	byApp map[string]*appLimiter
}

type appLimiter struct {
	l      *rate.Limiter
	perSec float64
	share  int
}

// admit reports whether app may make one more Push now.
func (s *Server) admitPush(app string) bool {
	a := s.cfg.Apps.Get(app)
	if a == nil || a.Limits.PushesPerSec <= 0 {
		return true
	}
	n := 1 + s.peers.Len()
	perSec, share := a.Limits.PushesPerSec/float64(n), n
	q := &s.pushQuotas
	q.mu.Lock()
	l := q.byApp[app]
	if l == nil || l.perSec != a.Limits.PushesPerSec || l.share != share {
		if q.byApp == nil {
			q.byApp = map[string]*appLimiter{}
		}
		l = &appLimiter{l: rate.NewLimiter(rate.Limit(perSec), max(1, int(perSec))), perSec: a.Limits.PushesPerSec, share: share}
		q.byApp[app] = l
	}
	q.mu.Unlock()
	if !l.l.Allow() {
		s.metrics.pushesOverQuota.Add(1)
		return false
	}
	return true
}
