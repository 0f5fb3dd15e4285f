package state

import (
	"context"
	"sync"
	"time"

	"github.com/platoim/plato/internal/rpc"
	"github.com/platoim/plato/internal/rpc/kitex_gen/plato/fleet"
)

// sessions is the per-app session -> connections index. Bindings follow connections: a
// connection joins sessions (Host.Join at login, Bind from the business server) and leaves them
// all when it closes, so the index only ever holds live connections. Each gateway keeps the part
// of it for its own connections (gateway.Sessions), kept in step by syncGateways.
type sessions struct {
	shards [connShards]sessionShard
}

type sessionShard struct {
	mu    sync.RWMutex
	byKey map[string]map[*connState]struct{} // app + "\x00" + session -> members
}

func newSessions() *sessions {
	s := &sessions{}
	for i := range s.shards {
		s.shards[i].byKey = map[string]map[*connState]struct{}{}
	}
	return s
}

func (s *sessions) shard(key string) *sessionShard { return &s.shards[hashString(key)%connShards] }

// join adds cs to sessions it is not in yet and returns those, for the gateway. A closed
// connection joins nothing. cs.mu is held while the index changes so that a concurrent
// disconnect either sees the new sessions or happens first.
func (s *sessions) join(cs *connState, names []string) (added []string) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.closed {
		return nil
	}
	for _, name := range names {
		if name == "" || cs.inSession(name) {
			continue
		}
		cs.sessions = append(cs.sessions, name)
		added = append(added, name)
		key := didKey(cs.appID, name)
		sh := s.shard(key)
		sh.mu.Lock()
		m := sh.byKey[key]
		if m == nil {
			m = map[*connState]struct{}{}
			sh.byKey[key] = m
		}
		m[cs] = struct{}{}
		sh.mu.Unlock()
	}
	return added
}

// leave removes cs from one session; it reports whether it was a member.
func (s *sessions) leave(cs *connState, name string) bool {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	i := cs.sessionIndex(name)
	if i < 0 {
		return false
	}
	cs.sessions = append(cs.sessions[:i], cs.sessions[i+1:]...)
	if len(cs.sessions) == 0 {
		cs.sessions = nil
	}
	s.remove(cs, name)
	return true
}

// leaveAll removes a closed connection from all its sessions. The gateway forgets a closed
// connection by itself, so nothing is sent to it.
func (s *sessions) leaveAll(cs *connState) {
	cs.mu.Lock()
	names := cs.sessions
	cs.sessions = nil
	cs.mu.Unlock()
	for _, name := range names {
		s.remove(cs, name)
	}
}

func (s *sessions) remove(cs *connState, name string) {
	key := didKey(cs.appID, name)
	sh := s.shard(key)
	sh.mu.Lock()
	if m := sh.byKey[key]; m != nil {
		delete(m, cs)
		if len(m) == 0 {
			delete(sh.byKey, key)
		}
	}
	sh.mu.Unlock()
}

// members returns the connections in a session.
func (s *sessions) members(app, name string) []*connState {
	key := didKey(app, name)
	sh := s.shard(key)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	m := sh.byKey[key]
	out := make([]*connState, 0, len(m))
	for cs := range m {
		out = append(out, cs)
	}
	return out
}

// size is the number of connections in a session.
func (s *sessions) size(app, name string) int {
	key := didKey(app, name)
	sh := s.shard(key)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	return len(sh.byKey[key])
}

func (cs *connState) sessionIndex(name string) int {
	for i, n := range cs.sessions {
		if n == name {
			return i
		}
	}
	return -1
}

func (cs *connState) inSession(name string) bool { return cs.sessionIndex(name) >= 0 }

// member is inSession for callers that do not hold cs.mu.
func (cs *connState) member(name string) bool {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return cs.inSession(name)
}

// sessionList is a copy of the connection's sessions.
func (cs *connState) sessionList() []string {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return append([]string(nil), cs.sessions...)
}

// sessionChange is one connection joining or leaving one session, for its gateway.
type sessionChange struct {
	cs   *connState
	name string
	join bool
}

// syncGateways applies changes to the gateways' local indexes, one call per gateway, and
// returns once every gateway answered, so that a broadcast sent after a Bind reaches the new
// members. A gateway that cannot be reached keeps a stale index until its connections close;
// direct pushes, which read the state server's index, are unaffected.
func (s *Server) syncGateways(ctx context.Context, changes []sessionChange) {
	if len(changes) == 0 {
		return
	}
	byGW := map[*gatewayLink][]*fleet.SessionChange{}
	for _, c := range changes {
		r := c.cs.route.Load()
		if r == nil {
			continue // parked: its gateway learns all its sessions when it resumes
		}
		byGW[r.gw] = append(byGW[r.gw], &fleet.SessionChange{ConnId: int64(r.key.id), Session: c.name, Join: c.join})
	}
	var wg sync.WaitGroup
	for l, list := range byGW {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.syncLink(ctx, l, list)
		}()
	}
	wg.Wait()
}

// syncLink sends one gateway its session changes.
func (s *Server) syncLink(ctx context.Context, l *gatewayLink, list []*fleet.SessionChange) error {
	req := &fleet.SessionsRequest{Changes: list, StateId: s.cfg.ID, Proof: s.proof}
	resp, err := l.cli.Sessions(ctx, req)
	for try := 1; err != nil && try <= retriesOnClosedConn && rpc.KindOf(err) == rpc.ErrNetwork && ctx.Err() == nil; try++ {
		// A gateway upgraded in place closes its RPC connections (pushFrames): again.
		s.metrics.rpcError(peerGateway, err)
		time.Sleep(time.Duration(try) * 5 * time.Millisecond)
		resp, err = l.cli.Sessions(ctx, req)
	}
	if err != nil {
		s.metrics.sessionSyncFailed.Add(int64(len(list)))
		s.metrics.rpcError(peerGateway, err)
		s.log.Warn("syncing sessions to gateway failed", "gateway", l.id, "changes", len(list), "err", err)
		return err
	}
	s.metrics.sessionSyncs.Add(int64(len(list)))
	s.gone(l, resp.Gone)
	return nil
}

// count is the number of connection-session bindings, for the gauge.
func (s *sessions) count() int64 {
	var n int64
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.RLock()
		for _, m := range sh.byKey {
			n += int64(len(m))
		}
		sh.mu.RUnlock()
	}
	return n
}

// SessionMembers lists the dids of the connections in a session's index, whatever their state:
// for tests and operators checking that the index holds no closed connection.
func (s *Server) SessionMembers(app, session string) []string {
	members := s.sessions.members(app, session)
	dids := make([]string, len(members))
	for i, cs := range members {
		dids[i] = cs.did
	}
	return dids
}
