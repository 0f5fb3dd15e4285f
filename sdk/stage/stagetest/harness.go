package stagetest

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/test/bufconn"

	"github.com/platoim/plato/sdk/stage"
)

// DefaultApp is Options.App's default.
const DefaultApp = "demo"

// DefaultTimeout is Options.Timeout's default.
const DefaultTimeout = 5 * time.Second

// Options configure a Harness. The zero value is usable.
type Options struct {
	// App is the app ID whose pipeline the stage serves, and the AppID of connections from Conn
	// and of events whose Conn has none. Default DefaultApp.
	App string
	// Stage is the stage's name in its InitRequest. Default: the stage's Info().Name.
	Stage string
	// Config is the stage's config block; the stage gets it as JSON. Nil: "{}".
	Config map[string]any
	// Host is the fake Host the stage talks to. Nil: NewHost().
	Host *Host
	// Timeout bounds Init and each Process. Default DefaultTimeout.
	Timeout time.Duration
	// Logger is what the stage logs to. Nil: a logger writing to t.Log.
	Logger *slog.Logger
	// SkipInit leaves calling Init to the test (Harness.Init), to test a stage's Init errors.
	SkipInit bool
}

// Harness runs one stage behind an in-memory gRPC connection, through the SDK's own plugin and
// host adapters. Its event helpers (Login, Uplink, ...) fail the test on a transport or batch
// error, so call them from the test's goroutine; elsewhere use Process or Processor.
type Harness struct {
	// Host is the recording fake Host the stage was given.
	Host *Host
	// Processor is the host side of the connection, as the state server would hold it.
	Processor stage.Processor
	// Info and Signals are what the stage described over the connection.
	Info    stage.Info
	Signals []stage.Signal

	t      testing.TB
	opts   Options
	config []byte
	connID atomic.Uint64
}

// New starts s behind an in-memory gRPC server, describes it and (unless opts.SkipInit) inits it;
// any failure fails the test. Everything stops when the test ends.
func New(t testing.TB, s stage.Stage, opts Options) *Harness {
	t.Helper()
	if opts.App == "" {
		opts.App = DefaultApp
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.Host == nil {
		opts.Host = NewHost()
	}
	if opts.Logger == nil {
		lw := &testLogWriter{t: t}
		t.Cleanup(lw.stop) // registered first, so it runs last
		opts.Logger = slog.New(slog.NewTextHandler(lw, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	config := []byte("{}")
	if opts.Config != nil {
		var err error
		if config, err = json.Marshal(opts.Config); err != nil {
			t.Fatalf("stagetest: encoding Config: %v", err)
		}
	}

	link := &hostLink{}
	p := &stage.GRPCPlugin{Stage: s, Logger: opts.Logger, DialHost: link.dial, ServeHost: link.serve, NoDataSocket: true}
	stageLis := bufconn.Listen(bufSize)
	srv := grpc.NewServer(grpc.MaxRecvMsgSize(math.MaxInt32), grpc.MaxSendMsgSize(math.MaxInt32)) // as stage.Serve
	if err := p.GRPCServer(nil, srv); err != nil {
		t.Fatalf("stagetest: %v", err)
	}
	go func() { _ = srv.Serve(stageLis) }()
	t.Cleanup(srv.Stop)
	cc, err := dialBuf(stageLis)
	if err != nil {
		t.Fatalf("stagetest: dialing the stage: %v", err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	raw, err := p.GRPCClient(context.Background(), nil, cc)
	if err != nil {
		t.Fatalf("stagetest: %v", err)
	}
	proc := raw.(stage.Processor)
	t.Cleanup(func() { _ = proc.Close() })

	h := &Harness{Host: opts.Host, Processor: proc, t: t, opts: opts, config: config}
	ctx, cancel := context.WithTimeout(context.Background(), opts.Timeout)
	defer cancel()
	if h.Info, h.Signals, err = proc.Describe(ctx); err != nil {
		t.Fatalf("stagetest: describe: %v", err)
	}
	if h.opts.Stage == "" {
		h.opts.Stage = h.Info.Name
	}
	if !opts.SkipInit {
		if err := h.Init(); err != nil {
			t.Fatalf("stagetest: %v", err)
		}
	}
	return h
}

// Init initialises the stage as the host would, with Options' App, Stage, Config and Host. New
// calls it unless Options.SkipInit.
func (h *Harness) Init() error {
	ctx, cancel := context.WithTimeout(context.Background(), h.opts.Timeout)
	defer cancel()
	return h.Processor.Init(ctx, stage.InitRequest{
		Pipeline: h.opts.App,
		Stage:    h.opts.Stage,
		Config:   h.config,
		Host:     h.Host,
		Logger:   h.opts.Logger,
	})
}

// Conn returns a new connection of Options.App for did, with a fresh ConnID on gateway "gw-test".
func (h *Harness) Conn(did string) stage.Conn {
	return stage.Conn{
		AppID:      h.opts.App,
		DID:        did,
		ConnID:     h.connID.Add(1),
		GatewayID:  "gw-test",
		RemoteAddr: "127.0.0.1:40000",
	}
}

// Process runs events as one batch, bounded by Options.Timeout. Events whose Conn has no AppID
// get Options.App. As the host does, a connection leaves the sessions it joined (Host.Joined) when
// its disconnect is processed or its login is refused or dropped.
func (h *Harness) Process(events ...stage.Event) ([]stage.Reply, error) {
	for i := range events {
		if events[i].Conn.AppID == "" {
			events[i].Conn.AppID = h.opts.App
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), h.opts.Timeout)
	defer cancel()
	replies := make([]stage.Reply, len(events))
	if err := h.Processor.Process(ctx, events, replies); err != nil {
		return nil, err
	}
	for i, ev := range events {
		refused := ev.Signal == stage.SignalLogin && replies[i].Verdict != stage.Continue
		if refused || ev.Signal == stage.SignalDisconnect {
			h.Host.leave(ev.Conn)
		}
	}
	return replies, nil
}

func (h *Harness) one(ev stage.Event) stage.Reply {
	h.t.Helper()
	r, err := h.Process(ev)
	if err != nil {
		h.t.Fatalf("stagetest: %s: %v", ev.Signal, err)
	}
	return r[0]
}

// Login sends a login of conn with token and returns the stage's reply.
func (h *Harness) Login(conn stage.Conn, token string) stage.Reply {
	h.t.Helper()
	return h.one(stage.Event{Signal: stage.SignalLogin, Conn: conn, Token: token})
}

// Uplink sends an uplink message and returns the stage's reply.
func (h *Harness) Uplink(conn stage.Conn, seq uint64, payload []byte) stage.Reply {
	h.t.Helper()
	return h.one(stage.Event{Signal: stage.SignalUplink, Conn: conn, Seq: seq, Payload: payload})
}

// Downlink sends a downlink message and returns the stage's reply.
func (h *Harness) Downlink(conn stage.Conn, seq, msgID uint64, payload []byte) stage.Reply {
	h.t.Helper()
	return h.one(stage.Event{Signal: stage.SignalDownlink, Conn: conn, Seq: seq, MsgID: msgID, Payload: payload})
}

// DownlinkQoS sends a downlink whose QoS after routing is qos and returns the stage's reply.
func (h *Harness) DownlinkQoS(conn stage.Conn, seq, msgID uint64, qos stage.QoS, payload []byte) stage.Reply {
	h.t.Helper()
	return h.one(stage.Event{Signal: stage.SignalDownlink, Conn: conn, Seq: seq, MsgID: msgID, QoS: qos, Payload: payload})
}

// Retransmit asks the stage what to do about a downlink written attempts times and still unACKed
// (the state server's question), and returns its answer (stage.ResendAfter, GiveUpAfter, Untrack).
func (h *Harness) Retransmit(conn stage.Conn, seq, msgID uint64, qos stage.QoS, attempts int) stage.Reply {
	h.t.Helper()
	return h.one(stage.Event{Signal: stage.SignalRetransmit, Conn: conn, Seq: seq, MsgID: msgID, QoS: qos, Attempts: attempts})
}

// Route sends a route event (a business push before it fans out) and returns the stage's reply,
// whose Route and QoS are the stage's choice. An empty AppID is Options.App.
func (h *Harness) Route(ev stage.RouteEvent) stage.Reply {
	h.t.Helper()
	return h.one(RouteSignal(ev))
}

// RouteSignal returns ev as the host hands it to a stage (a route Event whose Conn carries only
// the AppID), for batches built with Process.
func RouteSignal(ev stage.RouteEvent) stage.Event {
	return stage.Event{Signal: stage.SignalRoute, Conn: stage.Conn{AppID: ev.AppID}, Session: ev.Session,
		Targets: ev.Targets, Members: ev.Members, MsgID: ev.MsgID, Payload: ev.Payload, QoS: ev.QoS,
		TraceParent: ev.TraceParent}
}

// DownlinkAck sends a device's ack of a downlink and returns the stage's reply.
func (h *Harness) DownlinkAck(conn stage.Conn, seq, msgID uint64) stage.Reply {
	h.t.Helper()
	return h.one(stage.Event{Signal: stage.SignalDownlinkAck, Conn: conn, Seq: seq, MsgID: msgID})
}

// Heartbeat sends a keep-alive and returns the stage's reply.
func (h *Harness) Heartbeat(conn stage.Conn, seq uint64) stage.Reply {
	h.t.Helper()
	return h.one(stage.Event{Signal: stage.SignalHeartbeat, Conn: conn, Seq: seq})
}

// Disconnect sends a connection's close with its protocol close code and returns the reply.
func (h *Harness) Disconnect(conn stage.Conn, reason uint16) stage.Reply {
	h.t.Helper()
	return h.one(stage.Event{Signal: stage.SignalDisconnect, Conn: conn, Reason: reason})
}

// FireTimer fires the pending timer key of app that the stage set (removing it, as the host
// does) and returns the stage's reply. It fails the test when there is no such timer.
func (h *Harness) FireTimer(app, key string) stage.Reply {
	h.t.Helper()
	tm, ok := h.Host.takeTimer(app, key)
	if !ok {
		h.t.Fatalf("stagetest: no pending timer %q of app %q (pending: %s)", key, app, timerList(h.Host.Timers()))
	}
	return h.one(stage.Event{Signal: stage.SignalTimer, Conn: stage.Conn{AppID: app}, TimerKey: key, TimerData: tm.Data})
}

func timerList(ts []Timer) string {
	if len(ts) == 0 {
		return "none"
	}
	var b strings.Builder
	for i, t := range ts {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s/%s", t.AppID, t.Key)
	}
	return b.String()
}

// testLogWriter sends the stage's log lines to t.Log until the test ends.
type testLogWriter struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func (w *testLogWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func (w *testLogWriter) stop() {
	w.mu.Lock()
	w.done = true
	w.mu.Unlock()
}
