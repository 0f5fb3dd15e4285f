package state

import "sync"

// sessions is the per-app session -> dids index that stages maintain through Host.Bind and Unbind
// and that Push to a session reads.
type sessions struct {
	mu    sync.RWMutex
	byKey map[string]map[string]struct{} // app + "\x00" + session -> dids
}

func newSessions() *sessions { return &sessions{byKey: map[string]map[string]struct{}{}} }

func (s *sessions) bind(app, session string, dids []string) {
	key := didKey(app, session)
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.byKey[key]
	if m == nil {
		m = make(map[string]struct{}, len(dids))
		s.byKey[key] = m
	}
	for _, d := range dids {
		m[d] = struct{}{}
	}
}

func (s *sessions) unbind(app, session string, dids []string) {
	key := didKey(app, session)
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.byKey[key]
	for _, d := range dids {
		delete(m, d)
	}
	if len(m) == 0 {
		delete(s.byKey, key)
	}
}

// members returns the dids bound to a session.
func (s *sessions) members(app, session string) []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	m := s.byKey[didKey(app, session)]
	out := make([]string, 0, len(m))
	for d := range m {
		out = append(out, d)
	}
	return out
}
