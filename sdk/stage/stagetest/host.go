package stagetest

import (
	"context"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/platoim/plato/sdk/stage"
)

// Push is one recorded Host.Push.
type Push struct {
	AppID   string
	DIDs    []string
	Payload []byte
}

// Resend is one recorded Host.Resend.
type Resend struct {
	Conn    stage.Conn
	Seq     uint64
	MsgID   uint64
	Payload []byte
}

// Undelivered is one recorded Host.Undelivered.
type Undelivered struct {
	Conn     stage.Conn
	Seq      uint64
	MsgID    uint64
	Attempts int
}

// Binding is one recorded Host.Bind or Host.Unbind.
type Binding struct {
	AppID   string
	Session string
	DIDs    []string
	Unbind  bool
}

// Join is one recorded Host.Join.
type Join struct {
	Conn     stage.Conn
	Sessions []string
}

// Timer is a pending timer the stage set.
type Timer struct {
	AppID string
	Key   string
	// At is when it fires on the Host's clock (Host.Now); the harness fires it only when told
	// (Harness.FireTimer).
	At   time.Time
	Data []byte
}

// Host is a recording fake of stage.Host for tests. It is safe for concurrent use; read what the
// stage did through its methods. Its clock (Now) starts at a fixed instant and moves only with
// Advance, so TTLs and timers are deterministic.
type Host struct {
	// PushResult, when set before the stage runs, answers Push; by default every did is "sent"
	// (status 0) with connection id 0 and the message gets the next id from 1.
	PushResult func(appID string, dids []string, payload []byte) stage.PushResult
	// SessionsFunc, when set before the stage runs, answers Sessions (it may block on ctx, to test
	// a stage's timeout). By default Sessions answers what SetSessions set for the connection's
	// app and did, or nothing.
	SessionsFunc func(ctx context.Context, conn stage.Conn) ([]string, error)
	// Fail, when set before the stage runs, is asked before every call with the method's name
	// ("Push", "Resend", ..., "Sessions", "Join", "Get", "Put", "Delete"); a non-nil error fails the
	// call. Over gRPC the stage sees the error's message, not its identity.
	Fail func(method string) error

	mu          sync.Mutex
	now         time.Time
	msgID       uint64
	pushes      []Push
	resends     []Resend
	undelivered []Undelivered
	bindings    []Binding
	members     map[[2]string]map[string]struct{} // {app, session} -> dids
	sessions    map[[2]string][]string            // {app, did} -> what Sessions answers
	joins       []Join
	joined      map[connKey]map[string]struct{} // a connection's sessions until it closes
	timers      map[[2]string]Timer             // {app, key}
	state       map[[2]string]entry             // {app, key}
}

// connKey names a connection: ConnIDs are unique per gateway.
type connKey struct {
	app, gateway string
	id           uint64
}

func keyOf(c stage.Conn) connKey { return connKey{c.AppID, c.GatewayID, c.ConnID} }

type entry struct {
	value   []byte
	expires time.Time // zero: never
}

// NewHost returns an empty Host whose clock starts at 2025-01-01T00:00:00Z.
func NewHost() *Host {
	return &Host{
		now:      time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC),
		members:  make(map[[2]string]map[string]struct{}),
		sessions: make(map[[2]string][]string),
		joined:   make(map[connKey]map[string]struct{}),
		timers:   make(map[[2]string]Timer),
		state:    make(map[[2]string]entry),
	}
}

var _ stage.Host = (*Host)(nil)

func (h *Host) fail(method string) error {
	if h.Fail == nil {
		return nil
	}
	return h.Fail(method)
}

// Push implements stage.Host.
func (h *Host) Push(_ context.Context, appID string, dids []string, payload []byte) (stage.PushResult, error) {
	if err := h.fail("Push"); err != nil {
		return stage.PushResult{}, err
	}
	h.mu.Lock()
	h.pushes = append(h.pushes, Push{AppID: appID, DIDs: slices.Clone(dids), Payload: slices.Clone(payload)})
	h.msgID++
	id := h.msgID
	h.mu.Unlock()
	if h.PushResult != nil {
		return h.PushResult(appID, dids, payload), nil
	}
	res := stage.PushResult{MsgID: id, Targets: make([]stage.PushTarget, len(dids))}
	for i, d := range dids {
		res.Targets[i] = stage.PushTarget{DID: d}
	}
	return res, nil
}

// Resend implements stage.Host.
func (h *Host) Resend(_ context.Context, conn stage.Conn, seq, msgID uint64, payload []byte) error {
	if err := h.fail("Resend"); err != nil {
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.resends = append(h.resends, Resend{Conn: conn, Seq: seq, MsgID: msgID, Payload: slices.Clone(payload)})
	return nil
}

// Undelivered implements stage.Host.
func (h *Host) Undelivered(_ context.Context, conn stage.Conn, seq, msgID uint64, attempts int) error {
	if err := h.fail("Undelivered"); err != nil {
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.undelivered = append(h.undelivered, Undelivered{Conn: conn, Seq: seq, MsgID: msgID, Attempts: attempts})
	return nil
}

// Bind implements stage.Host.
func (h *Host) Bind(_ context.Context, appID, session string, dids []string) error {
	return h.bind("Bind", appID, session, dids, false)
}

// Unbind implements stage.Host.
func (h *Host) Unbind(_ context.Context, appID, session string, dids []string) error {
	return h.bind("Unbind", appID, session, dids, true)
}

func (h *Host) bind(method, appID, session string, dids []string, unbind bool) error {
	if err := h.fail(method); err != nil {
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.bindings = append(h.bindings, Binding{AppID: appID, Session: session, DIDs: slices.Clone(dids), Unbind: unbind})
	k := [2]string{appID, session}
	m := h.members[k]
	if m == nil {
		m = make(map[string]struct{})
		h.members[k] = m
	}
	for _, d := range dids {
		if unbind {
			delete(m, d)
		} else {
			m[d] = struct{}{}
		}
	}
	if len(m) == 0 {
		delete(h.members, k)
	}
	return nil
}

// Sessions implements stage.Host: SessionsFunc's answer, or else what SetSessions set for the
// connection's app and did.
func (h *Host) Sessions(ctx context.Context, conn stage.Conn) ([]string, error) {
	if err := h.fail("Sessions"); err != nil {
		return nil, err
	}
	if h.SessionsFunc != nil {
		return h.SessionsFunc(ctx, conn)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.sessions[[2]string{conn.AppID, conn.DID}]), nil
}

// SetSessions makes Sessions answer sessions for every connection of did in appID, as the
// business server's Sessions callback would.
func (h *Host) SetSessions(appID, did string, sessions ...string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.sessions[[2]string{appID, did}] = slices.Clone(sessions)
}

// Join implements stage.Host: it records the call, and the connection is in sessions until the
// harness closes it (a disconnect, or a refused login).
func (h *Host) Join(_ context.Context, conn stage.Conn, sessions []string) error {
	if err := h.fail("Join"); err != nil {
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.joins = append(h.joins, Join{Conn: conn, Sessions: slices.Clone(sessions)})
	k := keyOf(conn)
	m := h.joined[k]
	if m == nil {
		m = make(map[string]struct{})
		h.joined[k] = m
	}
	for _, s := range sessions {
		m[s] = struct{}{}
	}
	return nil
}

// leave takes conn out of every session it joined, as the host does when a connection closes.
func (h *Host) leave(conn stage.Conn) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.joined, keyOf(conn))
}

// SetTimer implements stage.Host.
func (h *Host) SetTimer(_ context.Context, appID, key string, d time.Duration, data []byte) error {
	if err := h.fail("SetTimer"); err != nil {
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.timers[[2]string{appID, key}] = Timer{AppID: appID, Key: key, At: h.now.Add(d), Data: slices.Clone(data)}
	return nil
}

// CancelTimer implements stage.Host.
func (h *Host) CancelTimer(_ context.Context, appID, key string) error {
	if err := h.fail("CancelTimer"); err != nil {
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.timers, [2]string{appID, key})
	return nil
}

// Get implements stage.Host.
func (h *Host) Get(_ context.Context, appID, key string) ([]byte, bool, error) {
	if err := h.fail("Get"); err != nil {
		return nil, false, err
	}
	v, ok := h.State(appID, key)
	return v, ok, nil
}

// Put implements stage.Host. A ttl of 0 keeps the value until Delete.
func (h *Host) Put(_ context.Context, appID, key string, value []byte, ttl time.Duration) error {
	if err := h.fail("Put"); err != nil {
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	e := entry{value: slices.Clone(value)}
	if e.value == nil {
		e.value = []byte{}
	}
	if ttl > 0 {
		e.expires = h.now.Add(ttl)
	}
	h.state[[2]string{appID, key}] = e
	return nil
}

// Delete implements stage.Host.
func (h *Host) Delete(_ context.Context, appID, key string) error {
	if err := h.fail("Delete"); err != nil {
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.state, [2]string{appID, key})
	return nil
}

// Now is the Host's clock.
func (h *Host) Now() time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.now
}

// Advance moves the Host's clock by d: state whose TTL ran out is gone. Timers stay pending
// until fired (Harness.FireTimer), even when due.
func (h *Host) Advance(d time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.now = h.now.Add(d)
}

// Pushes returns the recorded pushes, oldest first.
func (h *Host) Pushes() []Push {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.pushes)
}

// Resends returns the recorded resends, oldest first.
func (h *Host) Resends() []Resend {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.resends)
}

// UndeliveredReports returns the recorded Host.Undelivered calls, oldest first.
func (h *Host) UndeliveredReports() []Undelivered {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.undelivered)
}

// Bindings returns the recorded Bind and Unbind calls, oldest first.
func (h *Host) Bindings() []Binding {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.bindings)
}

// Members returns the dids bound to session of appID now, sorted.
func (h *Host) Members(appID, session string) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for d := range h.members[[2]string{appID, session}] {
		out = append(out, d)
	}
	sort.Strings(out)
	return out
}

// Joins returns the recorded Join calls, oldest first.
func (h *Host) Joins() []Join {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.joins)
}

// Joined returns the sessions conn is in now (joined, and not closed since), sorted.
func (h *Host) Joined(conn stage.Conn) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for s := range h.joined[keyOf(conn)] {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

// Timers returns the pending timers, sorted by app then key.
func (h *Host) Timers() []Timer {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]Timer, 0, len(h.timers))
	for _, t := range h.timers {
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].AppID != out[j].AppID {
			return out[i].AppID < out[j].AppID
		}
		return out[i].Key < out[j].Key
	})
	return out
}

// Timer returns the pending timer key of appID.
func (h *Host) Timer(appID, key string) (Timer, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	t, ok := h.timers[[2]string{appID, key}]
	return t, ok
}

// takeTimer removes and returns a pending timer, as the host does when it fires.
func (h *Host) takeTimer(appID, key string) (Timer, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	k := [2]string{appID, key}
	t, ok := h.timers[k]
	delete(h.timers, k)
	return t, ok
}

// State returns the stored value of key for appID, as Get would now (honouring TTLs).
func (h *Host) State(appID, key string) ([]byte, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	k := [2]string{appID, key}
	e, ok := h.state[k]
	if !ok {
		return nil, false
	}
	if !e.expires.IsZero() && !h.now.Before(e.expires) {
		delete(h.state, k)
		return nil, false
	}
	return slices.Clone(e.value), true
}
