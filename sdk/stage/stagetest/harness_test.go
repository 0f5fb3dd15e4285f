package stagetest_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/platoim/plato/sdk/stage"
	"github.com/platoim/plato/sdk/stage/stagetest"
)

// allStage handles every signal and exercises every Host call and Reply kind.
type allStage struct {
	host stage.Host

	mu          sync.Mutex
	config      string
	lastToken   string
	sawDeadline bool
	heartbeats  int
}

func (s *allStage) Info() stage.Info { return stage.Info{Name: "all", Version: "0.1.0"} }

func (s *allStage) Init(_ context.Context, req stage.InitRequest) error {
	s.host = req.Host
	s.mu.Lock()
	s.config = string(req.Config)
	s.mu.Unlock()
	req.Logger.Info("init", "pipeline", req.Pipeline)
	return nil
}

func (s *allStage) OnLogin(ctx context.Context, ev *stage.LoginEvent) stage.Reply {
	s.mu.Lock()
	s.lastToken = ev.Token
	s.mu.Unlock()
	switch ev.Token {
	case "bad":
		return stage.RejectWith(2002, "bad token")
	case "drop":
		return stage.Reply{Verdict: stage.Drop}
	case "sessions":
		sessions, err := s.host.Sessions(ctx, ev.Conn)
		if err != nil {
			return stage.RejectWith(2999, err.Error())
		}
		if err := s.host.Join(ctx, ev.Conn, sessions); err != nil {
			return stage.RejectWith(2999, err.Error())
		}
		return stage.Reply{}
	}
	if err := s.host.Bind(ctx, ev.Conn.AppID, "room", []string{ev.Conn.DID}); err != nil {
		return stage.RejectWith(2999, err.Error())
	}
	if err := s.host.Put(ctx, ev.Conn.AppID, "online:"+ev.Conn.DID, []byte(ev.Platform), time.Minute); err != nil {
		return stage.RejectWith(2999, err.Error())
	}
	return stage.Reply{}
}

func (s *allStage) OnUplink(ctx context.Context, ev *stage.UplinkEvent) stage.Reply {
	p := string(ev.Payload)
	switch {
	case p == "reject":
		return stage.RejectWith(2001, "rejected")
	case p == "drop":
		return stage.Reply{Verdict: stage.Drop}
	case p == "empty":
		return stage.Rewrite([]byte{})
	case p == "panic":
		panic("boom")
	case p == "sleep":
		_, ok := ctx.Deadline()
		s.mu.Lock()
		s.sawDeadline = ok
		s.mu.Unlock()
		<-ctx.Done()
		time.Sleep(200 * time.Millisecond) // overrun the deadline, so the host gives up first
		return stage.Reply{}
	case p == "push":
		res, err := s.host.Push(ctx, ev.Conn.AppID, []string{"a", "b"}, []byte("hi"))
		if err != nil {
			return stage.RejectWith(2999, err.Error())
		}
		return stage.Rewrite([]byte(fmt.Sprintf("msg=%d targets=%d", res.MsgID, len(res.Targets))))
	case p == "get":
		v, ok, err := s.host.Get(ctx, ev.Conn.AppID, "online:"+ev.Conn.DID)
		if err != nil {
			return stage.RejectWith(2999, err.Error())
		}
		return stage.Rewrite([]byte(fmt.Sprintf("%q %v", v, ok)))
	case strings.HasPrefix(p, "rewrite:"):
		return stage.Rewrite([]byte(strings.TrimPrefix(p, "rewrite:")))
	}
	return stage.Reply{}
}

func (s *allStage) OnDownlink(ctx context.Context, ev *stage.DownlinkEvent) stage.Reply {
	key := "retx:" + strconv.FormatUint(ev.MsgID, 10)
	if err := s.host.SetTimer(ctx, ev.Conn.AppID, key, 5*time.Second, ev.Payload); err != nil {
		return stage.RejectWith(2999, err.Error())
	}
	prefix := "d:"
	if ev.QoS != stage.QoSDefault {
		prefix = "d(" + ev.QoS.String() + "):"
	}
	return stage.Rewrite(append([]byte(prefix), ev.Payload...))
}

// OnRoute rewrites the payload to every field it saw, and routes big sessions by broadcast.
func (s *allStage) OnRoute(_ context.Context, ev *stage.RouteEvent) stage.Reply {
	if string(ev.Payload) == "reject" {
		return stage.RejectWith(2003, "no route")
	}
	r := stage.Routed(stage.RouteDirect, stage.QoSDefault)
	if ev.Members >= 100 {
		r = stage.Routed(stage.RouteBroadcast, stage.AtMostOnce)
	}
	r.Replace = true
	r.Payload = fmt.Appendf(nil, "%s|%s|%d|%d|%d|%s|%s|%s", ev.AppID, ev.Session, ev.Targets, ev.Members, ev.MsgID, ev.QoS,
		ev.TraceParent, ev.Payload)
	return r
}

func (s *allStage) OnDownlinkAck(ctx context.Context, ev *stage.DownlinkAckEvent) stage.Reply {
	if err := s.host.CancelTimer(ctx, ev.Conn.AppID, "retx:"+strconv.FormatUint(ev.MsgID, 10)); err != nil {
		return stage.RejectWith(2999, err.Error())
	}
	return stage.Reply{}
}

func (s *allStage) OnHeartbeat(context.Context, *stage.HeartbeatEvent) stage.Reply {
	s.mu.Lock()
	s.heartbeats++
	s.mu.Unlock()
	return stage.Reply{}
}

func (s *allStage) OnDisconnect(ctx context.Context, ev *stage.DisconnectEvent) stage.Reply {
	_ = s.host.Unbind(ctx, ev.Conn.AppID, "room", []string{ev.Conn.DID})
	_ = s.host.Delete(ctx, ev.Conn.AppID, "online:"+ev.Conn.DID)
	return stage.Reply{}
}

func (s *allStage) OnTimer(ctx context.Context, ev *stage.TimerEvent) stage.Reply {
	conn := stage.Conn{AppID: ev.AppID, DID: "d1", ConnID: 1, GatewayID: "gw-test"}
	msgID, _ := strconv.ParseUint(strings.TrimPrefix(ev.Key, "retx:"), 10, 64)
	if err := s.host.Resend(ctx, conn, 7, msgID, ev.Data); err != nil {
		return stage.RejectWith(2999, err.Error())
	}
	if err := s.host.Undelivered(ctx, conn, 7, msgID, 3); err != nil {
		return stage.RejectWith(2999, err.Error())
	}
	return stage.Reply{}
}

func TestDescribeAndInit(t *testing.T) {
	s := &allStage{}
	h := stagetest.New(t, s, stagetest.Options{App: "demo", Config: map[string]any{"limit": 3}})
	if h.Info != (stage.Info{Name: "all", Version: "0.1.0"}) {
		t.Errorf("Info = %+v", h.Info)
	}
	want := []stage.Signal{stage.SignalLogin, stage.SignalUplink, stage.SignalDownlink, stage.SignalDownlinkAck,
		stage.SignalHeartbeat, stage.SignalDisconnect, stage.SignalRoute, stage.SignalTimer}
	if !reflect.DeepEqual(h.Signals, want) {
		t.Errorf("Signals = %v, want %v", h.Signals, want)
	}
	if s.config != `{"limit":3}` {
		t.Errorf("config = %q", s.config)
	}
}

func TestEverySignalAndReply(t *testing.T) {
	s := &allStage{}
	h := stagetest.New(t, s, stagetest.Options{})
	c := h.Conn("d1")

	// Login: continue (binding, state), reject with code, drop.
	if r := h.Login(c, "good"); !reflect.DeepEqual(r, stage.Reply{}) {
		t.Errorf("login good = %+v", r)
	}
	if got := h.Host.Members("demo", "room"); !reflect.DeepEqual(got, []string{"d1"}) {
		t.Errorf("members = %v", got)
	}
	if r := h.Login(c, "bad"); !reflect.DeepEqual(r, stage.RejectWith(2002, "bad token")) {
		t.Errorf("login bad = %+v", r)
	}
	if r := h.Login(c, "drop"); r.Verdict != stage.Drop {
		t.Errorf("login drop = %+v", r)
	}

	// Uplink: every Reply kind.
	if r := h.Uplink(c, 1, []byte("plain")); !reflect.DeepEqual(r, stage.Reply{}) {
		t.Errorf("uplink continue = %+v", r)
	}
	if r := h.Uplink(c, 2, []byte("reject")); !reflect.DeepEqual(r, stage.RejectWith(2001, "rejected")) {
		t.Errorf("uplink reject = %+v", r)
	}
	if r := h.Uplink(c, 3, []byte("drop")); r.Verdict != stage.Drop {
		t.Errorf("uplink drop = %+v", r)
	}
	if r := h.Uplink(c, 4, []byte("rewrite:new")); !r.Replace || string(r.Payload) != "new" || r.Verdict != stage.Continue {
		t.Errorf("uplink rewrite = %+v", r)
	}
	if r := h.Uplink(c, 5, []byte("empty")); !r.Replace || r.Payload == nil || len(r.Payload) != 0 {
		t.Errorf("uplink empty rewrite = %+v (payload nil: %v)", r, r.Payload == nil)
	}
	if r := h.Uplink(c, 6, []byte("push")); string(r.Payload) != "msg=1 targets=2" {
		t.Errorf("uplink push = %+v", r)
	}
	if p := h.Host.Pushes(); len(p) != 1 || p[0].AppID != "demo" || !reflect.DeepEqual(p[0].DIDs, []string{"a", "b"}) || string(p[0].Payload) != "hi" {
		t.Errorf("pushes = %+v", p)
	}
	if r := h.Uplink(c, 7, []byte("get")); string(r.Payload) != `"" true` {
		t.Errorf("uplink get = %q", r.Payload)
	}

	// Downlink sets a timer with data; the ack cancels it.
	if r := h.Downlink(c, 10, 100, []byte("m")); string(r.Payload) != "d:m" {
		t.Errorf("downlink = %+v", r)
	}
	tm, ok := h.Host.Timer("demo", "retx:100")
	if !ok || string(tm.Data) != "m" || !tm.At.Equal(h.Host.Now().Add(5*time.Second)) {
		t.Errorf("timer = %+v %v", tm, ok)
	}
	h.DownlinkAck(c, 10, 100)
	if _, ok := h.Host.Timer("demo", "retx:100"); ok {
		t.Error("timer still pending after ack")
	}

	// A timer that fires resends and reports undelivered.
	h.Downlink(c, 11, 101, []byte("again"))
	if r := h.FireTimer("demo", "retx:101"); !reflect.DeepEqual(r, stage.Reply{}) {
		t.Errorf("timer reply = %+v", r)
	}
	if len(h.Host.Timers()) != 0 {
		t.Errorf("timers after firing = %+v", h.Host.Timers())
	}
	rs := h.Host.Resends()
	if len(rs) != 1 || rs[0].MsgID != 101 || rs[0].Seq != 7 || string(rs[0].Payload) != "again" || rs[0].Conn.DID != "d1" {
		t.Errorf("resends = %+v", rs)
	}
	if u := h.Host.UndeliveredReports(); len(u) != 1 || u[0].Attempts != 3 || u[0].MsgID != 101 {
		t.Errorf("undelivered = %+v", u)
	}

	h.Heartbeat(c, 12)
	if s.heartbeats != 1 {
		t.Errorf("heartbeats = %d", s.heartbeats)
	}

	h.Disconnect(c, 1001)
	if got := h.Host.Members("demo", "room"); len(got) != 0 {
		t.Errorf("members after disconnect = %v", got)
	}
	if _, ok := h.Host.State("demo", "online:d1"); ok {
		t.Error("state survived disconnect")
	}
	if b := h.Host.Bindings(); len(b) != 2 || b[0].Unbind || !b[1].Unbind {
		t.Errorf("bindings = %+v", b)
	}
}

func TestRoute(t *testing.T) {
	h := stagetest.New(t, &allStage{}, stagetest.Options{})
	r := h.Route(stage.RouteEvent{Session: "room", Targets: 2, Members: 500, MsgID: 9, Payload: []byte("p"),
		QoS: stage.AtLeastOnce, TraceParent: "00-ab-cd-01"})
	if r.Verdict != stage.Continue || r.Route != stage.RouteBroadcast || r.QoS != stage.AtMostOnce ||
		string(r.Payload) != "demo|room|2|500|9|at_least_once|00-ab-cd-01|p" {
		t.Errorf("big session: %+v (%s)", r, r.Payload)
	}
	r = h.Route(stage.RouteEvent{AppID: "other", Targets: 1, MsgID: 10})
	if r.Route != stage.RouteDirect || r.QoS != stage.QoSDefault || string(r.Payload) != "other||1|0|10|default||" {
		t.Errorf("dids only: %+v (%s)", r, r.Payload)
	}
	if r := h.Route(stage.RouteEvent{Payload: []byte("reject")}); !reflect.DeepEqual(r, stage.RejectWith(2003, "no route")) {
		t.Errorf("reject: %+v", r)
	}
	// A downlink carries the QoS routing chose.
	c := h.Conn("d1")
	if r := h.DownlinkQoS(c, 1, 9, stage.AtMostOnce, []byte("m")); string(r.Payload) != "d(at_most_once):m" {
		t.Errorf("downlink: %+v", r)
	}
}

func TestSessionsAndJoin(t *testing.T) {
	h := stagetest.New(t, &allStage{}, stagetest.Options{})
	h.Host.SetSessions("demo", "d1", "lobby", "room-7")
	c := h.Conn("d1")
	if r := h.Login(c, "sessions"); r.Verdict != stage.Continue {
		t.Fatalf("login: %+v", r)
	}
	if got := h.Host.Joined(c); !reflect.DeepEqual(got, []string{"lobby", "room-7"}) {
		t.Errorf("joined = %v", got)
	}
	if j := h.Host.Joins(); len(j) != 1 || j[0].Conn != c || !reflect.DeepEqual(j[0].Sessions, []string{"lobby", "room-7"}) {
		t.Errorf("joins = %+v", j)
	}
	// Another connection of another did gets no sessions (and joins none).
	c2 := h.Conn("d2")
	h.Login(c2, "sessions")
	if got := h.Host.Joined(c2); len(got) != 0 {
		t.Errorf("d2 joined %v", got)
	}
	// Closing the connection leaves its sessions; its Join stays recorded.
	h.Disconnect(c, 1209)
	if got := h.Host.Joined(c); len(got) != 0 {
		t.Errorf("joined after disconnect = %v", got)
	}
	if len(h.Host.Joins()) != 2 {
		t.Errorf("joins = %+v", h.Host.Joins())
	}

	// SessionsFunc answers instead, and errors reach the stage.
	h.Host.SessionsFunc = func(_ context.Context, conn stage.Conn) ([]string, error) {
		if conn.DID == "bad" {
			return nil, errors.New("business server down")
		}
		return []string{"s-" + conn.DID, "bad\xffname"}, nil
	}
	c3 := h.Conn("d3")
	h.Login(c3, "sessions")
	if got := h.Host.Joined(c3); !reflect.DeepEqual(got, []string{"bad\uFFFDname", "s-d3"}) {
		t.Errorf("joined = %q", got)
	}
	if r := h.Login(h.Conn("bad"), "sessions"); r.Verdict != stage.Reject || r.Message != "host sessions: business server down" {
		t.Errorf("sessions error: %+v", r)
	}
}

func TestJoinErrorAndRefusedLoginLeaves(t *testing.T) {
	host := stagetest.NewHost()
	host.SetSessions("demo", "d1", "lobby")
	host.Fail = func(method string) error {
		if method == "Join" {
			return errors.New("connection gone")
		}
		return nil
	}
	h := stagetest.New(t, &allStage{}, stagetest.Options{Host: host})
	c := h.Conn("d1")
	if r := h.Login(c, "sessions"); r.Verdict != stage.Reject || r.Message != "host join: connection gone" {
		t.Errorf("join error: %+v", r)
	}
	host.Fail = nil
	h.Login(c, "sessions")
	if got := host.Joined(c); !reflect.DeepEqual(got, []string{"lobby"}) {
		t.Fatalf("joined = %v", got)
	}
	h.Login(c, "bad") // a refused login closes the connection: it leaves its sessions
	if got := host.Joined(c); len(got) != 0 {
		t.Errorf("joined after a refused login = %v", got)
	}
}

func TestStateTTL(t *testing.T) {
	h := stagetest.New(t, &allStage{}, stagetest.Options{})
	c := h.Conn("d1")
	h.Process(stage.Event{Signal: stage.SignalLogin, Conn: c, Token: "t", Platform: "ios"})
	if v, ok := h.Host.State("demo", "online:d1"); !ok || string(v) != "ios" {
		t.Fatalf("state = %q %v", v, ok)
	}
	h.Host.Advance(59 * time.Second)
	if r := h.Uplink(c, 1, []byte("get")); string(r.Payload) != `"ios" true` {
		t.Errorf("before expiry: %q", r.Payload)
	}
	h.Host.Advance(time.Second)
	if r := h.Uplink(c, 2, []byte("get")); string(r.Payload) != `"" false` {
		t.Errorf("after expiry: %q", r.Payload)
	}
}

func TestHostErrorsReachTheStage(t *testing.T) {
	host := stagetest.NewHost()
	host.Fail = func(method string) error {
		if method == "Push" {
			return errors.New("no route")
		}
		return nil
	}
	h := stagetest.New(t, &allStage{}, stagetest.Options{Host: host})
	r := h.Uplink(h.Conn("d1"), 1, []byte("push"))
	if r.Verdict != stage.Reject || r.Message != "host push: no route" {
		t.Errorf("reply = %+v", r)
	}
}

func TestPanicFailsTheBatch(t *testing.T) {
	h := stagetest.New(t, &allStage{}, stagetest.Options{})
	c := h.Conn("d1")
	_, err := h.Process(
		stage.Event{Signal: stage.SignalUplink, Conn: c, Seq: 1, Payload: []byte("plain")},
		stage.Event{Signal: stage.SignalUplink, Conn: c, Seq: 2, Payload: []byte("panic")},
		stage.Event{Signal: stage.SignalUplink, Conn: c, Seq: 3, Payload: []byte("plain")},
	)
	var be *stage.BatchError
	if !errors.As(err, &be) || !strings.Contains(be.Message, "boom") {
		t.Fatalf("err = %v, want a BatchError about the panic", err)
	}
	// The stage and the stream survive.
	if r := h.Uplink(c, 4, []byte("rewrite:ok")); string(r.Payload) != "ok" {
		t.Errorf("after panic: %+v", r)
	}
}

func TestDeadline(t *testing.T) {
	s := &allStage{}
	h := stagetest.New(t, s, stagetest.Options{})
	c := h.Conn("d1")
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := h.Processor.Process(ctx, []stage.Event{{Signal: stage.SignalUplink, Conn: c, Payload: []byte("sleep")}}, make([]stage.Reply, 1))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %v", d)
	}
	s.mu.Lock()
	saw := s.sawDeadline
	s.mu.Unlock()
	if !saw {
		t.Error("the handler's ctx had no deadline")
	}
	// A cancelled call also returns at once, and the stream still works.
	ctx2, cancel2 := context.WithCancel(context.Background())
	go func() { time.Sleep(50 * time.Millisecond); cancel2() }()
	err = h.Processor.Process(ctx2, []stage.Event{{Signal: stage.SignalUplink, Conn: c, Payload: []byte("sleep")}}, make([]stage.Reply, 1))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want Canceled", err)
	}
	if r := h.Uplink(c, 2, []byte("rewrite:x")); string(r.Payload) != "x" {
		t.Errorf("after deadline: %+v", r)
	}
}

func TestConcurrentBatchesAreRoutedToTheirCallers(t *testing.T) {
	h := stagetest.New(t, &allStage{}, stagetest.Options{})
	const callers, calls, batch = 32, 50, 4
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for g := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := h.Conn(fmt.Sprintf("d%d", g))
			for i := range calls {
				events := make([]stage.Event, batch)
				for j := range events {
					events[j] = stage.Event{Signal: stage.SignalUplink, Conn: c, Seq: uint64(i*batch + j),
						Payload: []byte(fmt.Sprintf("rewrite:%d/%d/%d", g, i, j))}
				}
				replies, err := h.Process(events...)
				if err != nil {
					errs <- err
					return
				}
				for j, r := range replies {
					if want := fmt.Sprintf("%d/%d/%d", g, i, j); string(r.Payload) != want {
						errs <- fmt.Errorf("caller %d got %q, want %q", g, r.Payload, want)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestInvalidUTF8IsCleaned(t *testing.T) {
	s := &allStage{}
	h := stagetest.New(t, s, stagetest.Options{})
	c := h.Conn("d\xff1")
	h.Login(c, "to\xffken")
	if s.lastToken != "to\uFFFDken" {
		t.Errorf("token = %q", s.lastToken)
	}
	if got := h.Host.Members("demo", "room"); !reflect.DeepEqual(got, []string{"d\uFFFD1"}) {
		t.Errorf("members = %q", got)
	}
}

// bare has no handlers: every signal continues.
type bare struct{}

func (bare) Info() stage.Info                              { return stage.Info{Name: "bare"} }
func (bare) Init(context.Context, stage.InitRequest) error { return nil }

func TestStageWithoutHandlers(t *testing.T) {
	h := stagetest.New(t, bare{}, stagetest.Options{})
	if len(h.Signals) != 0 {
		t.Errorf("signals = %v", h.Signals)
	}
	c := h.Conn("d1")
	replies, err := h.Process(
		stage.Event{Signal: stage.SignalLogin, Conn: c},
		stage.Event{Signal: stage.SignalUplink, Conn: c, Payload: []byte("x")},
		stage.Event{Signal: "from-the-future", Conn: c},
	)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range replies {
		if !reflect.DeepEqual(r, stage.Reply{}) {
			t.Errorf("reply %d = %+v", i, r)
		}
	}
}

type failingInit struct{ bare }

func (failingInit) Init(context.Context, stage.InitRequest) error {
	return errors.New("limit must be positive")
}

func TestInitError(t *testing.T) {
	h := stagetest.New(t, failingInit{}, stagetest.Options{SkipInit: true})
	err := h.Init()
	if err == nil || !strings.Contains(err.Error(), "limit must be positive") {
		t.Fatalf("err = %v", err)
	}
}

// TestSameAsInProcess runs one script through the harness (gRPC) and through InProcess and
// expects identical replies and errors.
func TestSameAsInProcess(t *testing.T) {
	script := [][]stage.Event{
		{{Signal: stage.SignalLogin, Token: "good", Platform: "ios"}, {Signal: stage.SignalLogin, Token: "bad"}, {Signal: stage.SignalLogin, Token: "drop"}},
		{{Signal: stage.SignalUplink, Payload: []byte("plain")}, {Signal: stage.SignalUplink, Payload: []byte("reject")},
			{Signal: stage.SignalUplink, Payload: []byte("empty")}, {Signal: stage.SignalUplink, Payload: []byte("rewrite:z")},
			{Signal: stage.SignalUplink, Payload: []byte("get")}, {Signal: stage.SignalUplink, Payload: []byte("push")}},
		{{Signal: stage.SignalDownlink, MsgID: 9, Payload: []byte("p")}, {Signal: stage.SignalDownlinkAck, MsgID: 9},
			{Signal: stage.SignalHeartbeat}, {Signal: stage.SignalDisconnect, Reason: 3}},
		{{Signal: stage.SignalLogin, Token: "sessions"}, {Signal: stage.SignalDownlink, MsgID: 10, QoS: stage.AtMostOnce, Payload: []byte("q")},
			stagetest.RouteSignal(stage.RouteEvent{AppID: "demo", Session: "big", Members: 100, Targets: 1, MsgID: 11, Payload: []byte("r"), QoS: stage.AtLeastOnce}),
			stagetest.RouteSignal(stage.RouteEvent{AppID: "demo", Payload: []byte("reject")})},
		{{Signal: stage.SignalUplink, Payload: []byte("panic")}},
	}
	conn := stage.Conn{AppID: "demo", DID: "d1", ConnID: 1, GatewayID: "gw-test"}

	h := stagetest.New(t, &allStage{}, stagetest.Options{})
	ip := stage.InProcess(&allStage{})
	if err := ip.Init(context.Background(), stage.InitRequest{Pipeline: "demo", Stage: "all", Config: []byte("{}"), Host: stagetest.NewHost()}); err != nil {
		t.Fatal(err)
	}
	for i, batch := range script {
		for j := range batch {
			batch[j].Conn = conn
		}
		remote, rerr := h.Process(batch...)
		local := make([]stage.Reply, len(batch))
		lerr := ip.Process(context.Background(), batch, local)
		if (rerr == nil) != (lerr == nil) || (rerr != nil && rerr.Error() != lerr.Error()) {
			t.Errorf("batch %d: errors differ: grpc %v, in process %v", i, rerr, lerr)
			continue
		}
		if rerr != nil {
			continue
		}
		if !reflect.DeepEqual(remote, local) {
			t.Errorf("batch %d: replies differ:\ngrpc:       %+v\nin process: %+v", i, remote, local)
		}
	}
}

func TestProcessAfterClose(t *testing.T) {
	h := stagetest.New(t, &allStage{}, stagetest.Options{})
	h.Uplink(h.Conn("d1"), 1, []byte("plain"))
	if err := h.Processor.Close(); err != nil {
		t.Fatal(err)
	}
	_, err := h.Process(stage.Event{Signal: stage.SignalUplink, Payload: []byte("x")})
	if !errors.Is(err, stage.ErrClosed) {
		t.Errorf("err = %v, want ErrClosed", err)
	}
}

func TestLargeBatch(t *testing.T) {
	h := stagetest.New(t, &allStage{}, stagetest.Options{})
	c := h.Conn("d1")
	big := bytes.Repeat([]byte("y"), 64<<10)
	events := make([]stage.Event, 128) // 8 MiB: over gRPC's default 4 MiB message cap
	for i := range events {
		events[i] = stage.Event{Signal: stage.SignalUplink, Conn: c, Seq: uint64(i), Payload: append([]byte("rewrite:"), big...)}
	}
	replies, err := h.Process(events...)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range replies {
		if !bytes.Equal(r.Payload, big) {
			t.Fatalf("reply %d: %d bytes", i, len(r.Payload))
		}
	}
}
