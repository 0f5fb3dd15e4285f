package apps

import "sync"

// PerApp holds one T per app, made at the app's first use. Callers pass declared apps only, so the
// set of keys is the configuration's, never what devices send: metrics labelled by app stay a
// bounded set. The zero value is ready; it is safe for concurrent use.
type PerApp[T any] struct {
	mu sync.RWMutex
	m  map[string]*T
}

// Of returns app's value, making it on first use.
func (p *PerApp[T]) Of(app string) *T {
	p.mu.RLock()
	v := p.m[app]
	p.mu.RUnlock()
	if v != nil {
		return v
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if v = p.m[app]; v == nil {
		if p.m == nil {
			p.m = map[string]*T{}
		}
		v = new(T)
		p.m[app] = v
	}
	return v
}

// Each calls f with every app's value, under a read lock: f must not call Of.
func (p *PerApp[T]) Each(f func(app string, v *T)) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	for app, v := range p.m {
		f(app, v)
	}
}
