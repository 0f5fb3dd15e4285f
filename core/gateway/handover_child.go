package gateway

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/cloudwego/netpoll"

	"github.com/platoim/plato/internal/registry"
	"github.com/platoim/plato/internal/rpc"
	"github.com/platoim/plato/internal/rpc/kitex_gen/plato/fleet"
	gwservice "github.com/platoim/plato/internal/rpc/kitex_gen/plato/fleet/gateway"
	"github.com/platoim/plato/sdk/business/pollnet"
	"github.com/platoim/plato/sdk/protocol"
)

// Inheritance is a new gateway process's end of an upgrade (handover.go): the socket to the old
// process, and the ID it takes over.
type Inheritance struct {
	// GatewayID is the old process's gateway ID: the new one registers under it.
	GatewayID string
	conn      *net.UnixConn
	r         *handoverReader
}

// InheritFromEnv returns the handover this process was started for by an upgrade, or nil when it
// was started otherwise.
func InheritFromEnv() (*Inheritance, error) {
	v := os.Getenv(envUpgradeFD)
	if v == "" {
		return nil, nil
	}
	fd, err := strconv.Atoi(v)
	if err != nil || fd < 3 {
		return nil, fmt.Errorf("%s=%q is not a descriptor", envUpgradeFD, v)
	}
	closeInheritedSockets()
	f := os.NewFile(uintptr(fd), "handover")
	fc, err := net.FileConn(f)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("opening the handover socket: %w", err)
	}
	uc, ok := fc.(*net.UnixConn)
	if !ok {
		fc.Close()
		return nil, errors.New("the handover descriptor is not a unix socket")
	}
	id := os.Getenv(envUpgradeID)
	if id == "" {
		uc.Close()
		return nil, fmt.Errorf("%s is not set", envUpgradeID)
	}
	return &Inheritance{GatewayID: id, conn: uc, r: newHandoverReader(uc)}, nil
}

// closeInheritedSockets closes the sockets this process got from the old one by accident: netpoll
// accepts without close-on-exec, so every device and RPC connection the old process held when it
// started this one is open here too. Left open, a connection closed here or by the old process
// would never end for its peer. The descriptors an upgrade passes on purpose are named by
// PLATO_UPGRADE_*_FD variables.
func closeInheritedSockets() {
	keep := map[int]bool{}
	for _, kv := range os.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, EnvUpgradePrefix) && strings.HasSuffix(k, "_FD") {
			if fd, err := strconv.Atoi(v); err == nil {
				keep[fd] = true
			}
		}
	}
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return
	}
	for _, e := range entries {
		fd, err := strconv.Atoi(e.Name())
		if err != nil || fd < 3 || keep[fd] {
			continue
		}
		var st syscall.Stat_t
		if syscall.Fstat(fd, &st) == nil && st.Mode&syscall.S_IFMT == syscall.S_IFSOCK {
			_ = syscall.Close(fd)
		}
	}
}

// Fail tells the old process why this one cannot take over; it keeps serving. Safe on nil.
func (in *Inheritance) Fail(err error) {
	if in == nil || err == nil {
		return
	}
	_ = writeHandoverMsg(in.conn, msgFail, encodeText(err.Error()), nil)
	in.conn.Close()
}

// startInherited is Start for a process started by an upgrade: everything the gateway needs is
// brought up first, it reports ready, and only then takes the listeners and the connections.
func (gw *Gateway) startInherited(ctx context.Context) (err error) {
	in := gw.cfg.Inherit
	gw.ho.notOwner.Store(true)
	ctx, gw.cancel = context.WithCancel(ctx)
	gw.startedAt = time.Now()
	defer func() {
		if err != nil {
			in.Fail(err)
			gw.Shutdown(context.Background())
		}
	}()
	_ = in.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	m, err := in.r.read()
	if err != nil || m.typ != msgHello {
		return fmt.Errorf("gateway: reading the old process's hello: %v (message %d)", err, m.typ)
	}
	h, err := decodeHello(m.payload)
	if err != nil {
		return fmt.Errorf("gateway: the old process's hello: %w", err)
	}
	// Connection IDs continue above the old process's: the state servers know those.
	if h.nextID > gw.nextID.Load() {
		gw.nextID.Store(h.nextID)
	}
	gw.wheel.Start()
	gw.overload.Start(ctx, gw.cfg.Overload.Interval, &gw.done)
	gw.done.Add(1)
	go func() {
		defer gw.done.Done()
		gw.watchSlow(ctx)
	}()
	if err := gw.links.Follow(ctx, gw.reg); err != nil {
		return err
	}
	if err := gw.peers.Follow(ctx, gw.reg); err != nil {
		return err
	}
	if err := gw.subscribeBroadcasts(); err != nil {
		return err
	}
	if gw.loop, err = gw.newLoop(); err != nil {
		return fmt.Errorf("gateway: creating event loop: %w", err)
	}
	// Ready means reaching every state server the old process forwards to: its connections are
	// adopted on the same links.
	if err := gw.awaitStates(ctx, h.states, 20*time.Second); err != nil {
		return err
	}
	_ = in.conn.SetReadDeadline(time.Time{})
	if err := writeHandoverMsg(in.conn, msgReady, nil, nil); err != nil {
		return fmt.Errorf("gateway: reporting ready: %w", err)
	}
	m, err = in.r.read()
	// The device and RPC listeners, and the WebSocket one when the old process had one.
	if err != nil || m.typ != msgListeners || len(m.fds) < 2 || len(m.fds) > 3 {
		closeFDs(m.fds)
		return fmt.Errorf("gateway: the old process did not pass its listeners: %v (message %d, %d descriptors)", err, m.typ, len(m.fds))
	}
	wsFD := -1
	if len(m.fds) == 3 {
		wsFD = m.fds[2]
	}
	ln, rpcLn, err := adoptListeners(m.fds[0], m.fds[1])
	if err != nil {
		closeFDs([]int{wsFD})
		return err
	}
	gw.ln, gw.rpcLn = ln, rpcLn
	gw.ho.notOwner.Store(false)
	gw.done.Add(1)
	go func() {
		defer gw.done.Done()
		if err := gw.loop.Serve(gw.ln); err != nil && !errors.Is(err, net.ErrClosed) {
			gw.log.Error("device listener stopped", "err", err)
		}
	}()
	gw.inheritWS(wsFD)
	if gw.reported, err = registry.KeepNudged(ctx, gw.reg, gw.cfg.ReportInterval, gw.loadNode, gw.servability.nudge, gw.log); err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	gw.done.Add(1)
	go func() {
		defer gw.done.Done()
		gw.receiveHandover(in)
	}()
	gw.log.Info("gateway took over the listeners of its previous process", "devices", gw.Addr(), "websocket", gw.WSEndpoint(), "rpc", gw.cfg.RPCAddr)
	return nil
}

func (gw *Gateway) newLoop() (netpoll.EventLoop, error) {
	return netpoll.NewEventLoop(gw.onRequest,
		netpoll.WithOnConnect(gw.onConnect),
		netpoll.WithReadTimeout(gw.cfg.ReadTimeout),
		netpoll.WithWriteTimeout(gw.cfg.WriteTimeout),
	)
}

// awaitStates waits until the links to every state server named are up.
func (gw *Gateway) awaitStates(ctx context.Context, states []string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		missing := ""
		have := gw.links.IDs()
		for _, id := range states {
			if !slices.Contains(have, id) {
				missing = id
				break
			}
		}
		if missing == "" {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("gateway: state server %s, which the old process uses, is not reachable from here", missing)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func adoptListeners(devFD, rpcFD int) (netpoll.Listener, net.Listener, error) {
	df := os.NewFile(uintptr(devFD), "device-listener")
	dl, err := net.FileListener(df)
	df.Close()
	if err != nil {
		_ = syscall.Close(rpcFD)
		return nil, nil, fmt.Errorf("gateway: adopting the device listener: %w", err)
	}
	nl, err := pollnet.Convert(dl)
	if err != nil {
		dl.Close()
		_ = syscall.Close(rpcFD)
		return nil, nil, fmt.Errorf("gateway: adopting the device listener: %w", err)
	}
	rf := os.NewFile(uintptr(rpcFD), "rpc-listener")
	rl, err := net.FileListener(rf)
	rf.Close()
	if err != nil {
		nl.Close()
		return nil, nil, fmt.Errorf("gateway: adopting the RPC listener: %w", err)
	}
	return nl, rl, nil
}

// receiveHandover adopts what the old process passes until it is done, and serves RPC once the old
// process stopped (or went away).
func (gw *Gateway) receiveHandover(in *Inheritance) {
	defer in.conn.Close()
	defer gw.startRPC()
	adopted := 0
	for {
		m, err := in.r.read()
		if err != nil {
			gw.log.Warn("upgrade: the old process went away during the handover", "adopted", adopted, "err", err)
			return
		}
		switch m.typ {
		case msgConns:
			n, err := gw.adoptConns(m)
			adopted += n
			if err != nil {
				gw.log.Error("upgrade: adopting connections failed", "err", err)
			}
		case msgForward:
			stateID, frames, err := decodePush(m.payload)
			if err != nil {
				gw.log.Error("upgrade: a forwarded push is malformed", "err", err)
				continue
			}
			gw.pushFrames(stateID, frames, &fleet.PushResponse{})
		case msgSessions:
			stateID, changes, err := decodeSessions(m.payload)
			if err != nil {
				gw.log.Error("upgrade: forwarded session changes are malformed", "err", err)
				continue
			}
			gw.applySessions(stateID, changes, &fleet.SessionsResponse{})
		case msgRPCDone:
			gw.startRPC()
		case msgEnd:
			_ = writeHandoverMsg(in.conn, msgDone, nil, nil)
			gw.log.Info("upgrade: took over from the old process", "adopted", adopted)
			return
		default:
			for _, fd := range m.fds {
				_ = syscall.Close(fd)
			}
			gw.log.Error("upgrade: unexpected handover message", "type", m.typ)
		}
	}
}

// startRPC serves the RPC listener (once).
func (gw *Gateway) startRPC() {
	gw.ho.mu.Lock()
	defer gw.ho.mu.Unlock()
	if gw.rpc != nil || gw.rpcLn == nil {
		return
	}
	gw.rpc = gwservice.NewServer(&pushHandler{gw}, rpc.Server(gw.rpcLn)...)
	rpc.Run(&gw.done, gw.rpc, gw.log, "gateway RPC server")
}

func (gw *Gateway) adoptConns(m handoverMsg) (int, error) {
	recs, err := decodeConns(m.payload)
	if err == nil && len(recs) != len(m.fds) {
		err = fmt.Errorf("%d connections with %d sockets", len(recs), len(m.fds))
	}
	if err != nil {
		for _, fd := range m.fds {
			_ = syscall.Close(fd)
		}
		return 0, err
	}
	n := 0
	for i, h := range recs {
		if gw.adopt(h, m.fds[i]) {
			n++
		}
	}
	return n, nil
}

// adopt makes h, whose socket is fd, a connection of this process, as it was in the old one.
func (gw *Gateway) adopt(h *handedConn, fd int) bool {
	nc, err := netpoll.NewFDConnection(fd)
	if err != nil {
		_ = syscall.Close(fd)
		gw.log.Error("upgrade: adopting a connection failed", "conn", h.id, "err", err)
		return false
	}
	c := &conn{id: h.id, nc: nc, gw: gw, fd: -1, state: h.state, reason: protocol.Code(h.reason), hbInFlight: h.hbInFlight,
		downSeq: h.downSeq, upAnswered: h.upAnswered, ws: h.ws}
	if h.did != "" {
		c.setIdentityLocked(h.appID, h.did, h.uid) // not published yet: nobody else holds c
	}
	k := &connCold{sessions: h.sessions, upPending: pendingOf(h.upPending), unacked: h.unacked}
	if h.input != nil {
		k.handoff = &connHandoff{carry: h.input}
	}
	if h.state == stateNew {
		// Only a connection still to log in has a login timer (read.go).
		k.loginTimer = gw.wheel.AfterFunc(gw.cfg.LoginTimeout, func() { gw.loginTimedOut(c) })
	}
	c.cold = k
	c.trimColdLocked() // not published yet: nobody else holds c
	defer gw.guard(c, "adopt")
	var refuse protocol.Code
	if h.link != "" {
		if l, ok := gw.links.Get(h.link); ok {
			c.link = l
		} else {
			refuse = protocol.CodeStateLost
		}
	}
	if h.appID != "" {
		if app := gw.cfg.Apps.Get(h.appID); app != nil {
			c.app, c.usage = app, gw.appUsage(app.ID)
			c.usage.conns.Add(1)
		} else {
			refuse = protocol.CodeUnknownApp
		}
	}
	_ = nc.SetReadTimeout(gw.cfg.ReadTimeout)
	_ = nc.SetWriteTimeout(gw.cfg.WriteTimeout)
	gw.setSocketOptions(c)
	_ = nc.AddCloseCallback(func(netpoll.Connection) error {
		defer gw.guard(nil, "close")
		gw.onSocketClosed(c, nc)
		return nil
	})
	gw.conns.add(c)
	if h.state == stateLoggedIn && h.did != "" {
		gw.conns.bindDID(c.key, c)
	}
	for _, s := range h.sessions {
		gw.sessions.add(sessionKey(h.appID, s), c)
	}
	gw.upInFlight.Add(int64(len(h.upPending)))
	if len(h.queue) > 0 {
		c.mu.Lock()
		start := false
		for _, o := range h.queue {
			s, _ := c.appendLocked(o, true)
			start = start || s
		}
		c.mu.Unlock()
		c.started(start, false)
	}
	if refuse != 0 && h.state != stateClosing {
		c.closeWith(refuse, "the connection could not be carried over an upgrade; log in again")
	}
	gw.drainInput(c)
	_ = nc.SetOnRequest(func(_ context.Context, nc netpoll.Connection) error { return gw.readCarried(c, nc) })
	return true
}

// remoteAddr is the device's address. A connection adopted from the old process has none in
// netpoll (NewFDConnection knows only the descriptor): it is asked of the socket.
func remoteAddr(nc netpoll.Connection) string {
	if a := nc.RemoteAddr(); a != nil {
		return a.String()
	}
	fc, ok := nc.(interface{ Fd() int })
	if !ok {
		return ""
	}
	sa, err := syscall.Getpeername(fc.Fd())
	if err != nil {
		return ""
	}
	switch sa := sa.(type) {
	case *syscall.SockaddrInet4:
		return (&net.TCPAddr{IP: sa.Addr[:], Port: sa.Port}).String()
	case *syscall.SockaddrInet6:
		return (&net.TCPAddr{IP: sa.Addr[:], Port: sa.Port}).String()
	}
	return ""
}
