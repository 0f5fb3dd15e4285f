package gateway

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/cloudwego/netpoll"

	"github.com/platoim/plato/internal/cloexec"
	"github.com/platoim/plato/internal/rpc/kitex_gen/plato/fleet"
	"github.com/platoim/plato/internal/timewheel"
	"github.com/platoim/plato/sdk/protocol"
)

// An upgrade replaces the gateway's binary under live traffic without a device noticing
// (docs/operations.md, "Upgrading a gateway"). The old process starts the new binary with one end
// of a unix socket pair and waits for it to be ready (connected to NATS, following the same state
// servers). Only then does it pass its listeners (SCM_RIGHTS) and stop accepting, and pass its
// connections in batches: each is detached from the old poller at a safe point (no read or write
// of it running), its socket and state (IDs, login, sessions, sequence numbers, unACKed downlinks,
// bytes read and not framed yet, frames queued and not written yet) go to the new process, which
// adopts it under the same ID. Frames state servers still push to the old process for a connection
// already passed are forwarded over the same socket, in order. The old process then stops its RPC
// server (the state servers reconnect, to the new process, on the same address), redirects what it
// could not pass, and exits without telling anyone its connections closed: for the state servers
// and ipconf, the gateway never left.

// Environment of a new process started by an upgrade.
const (
	envUpgradeFD = "PLATO_UPGRADE_FD"
	envUpgradeID = "PLATO_UPGRADE_GATEWAY_ID"
	// EnvUpgradePrefix starts every variable an upgrade sets; the next upgrade does not pass them on.
	EnvUpgradePrefix = "PLATO_UPGRADE_"
)

// handoverBatch is how many connections are passed at once: a batch pauses its devices for the
// time it takes, and fits the descriptors of one message.
const handoverBatch = maxFDsPerMsg

// UpgradeOptions says what to start and how long to wait.
type UpgradeOptions struct {
	// Exe, Args and Env start the new process (Args without the program name).
	Exe  string
	Args []string
	Env  []string
	// ExtraFiles are passed to the new process from descriptor 4 on (3 is the handover socket).
	ExtraFiles []*os.File
	// ReadyTimeout bounds the wait for the new process to be ready; Deadline the whole handover.
	ReadyTimeout time.Duration
	Deadline     time.Duration
}

// UpgradeResult is what an upgrade did.
type UpgradeResult struct {
	OK  bool   `json:"ok"`
	Err string `json:"error,omitempty"`
	// OldPID and NewPID are the processes; NewPID is 0 when none started.
	OldPID int `json:"old_pid"`
	NewPID int `json:"new_pid,omitempty"`
	// Handed connections went to the new process; Redirected could not and were redirected.
	Handed     int `json:"handed"`
	Redirected int `json:"redirected"`
	// Forwarded counts the frames state servers pushed to the old process once their connection
	// was passed, forwarded to the new one.
	Forwarded int64 `json:"forwarded"`
	// ReadyMillis is the new process's start until ready; HandoverMillis from then until every
	// connection was passed.
	ReadyMillis    int64 `json:"ready_ms"`
	HandoverMillis int64 `json:"handover_ms"`
}

// ErrUpgradeRefused wraps every reason an upgrade was refused while the old process kept serving.
var ErrUpgradeRefused = errors.New("upgrade refused")

// handoverState is the gateway's side of an upgrade. Push and Sessions hold pushMu shared; passing
// a batch holds it exclusively, so no frame is queued on a connection after its queue was taken,
// and every frame for a connection passed is forwarded after it.
type handoverState struct {
	pushMu sync.RWMutex
	handed map[uint64]struct{} // under pushMu
	peer   *net.UnixConn       // under pushMu; set while connections are passed
	wmu    sync.Mutex          // serializes writes to peer

	running   atomic.Bool
	forwarded atomic.Int64
	// mu guards the RPC server, which the new process starts late.
	mu      sync.Mutex
	retired chan struct{}
	// notOwner is set in a new process until it holds the listeners: a failure then must not
	// delete the registry entry or the RPC socket the old process still uses.
	notOwner atomic.Bool
}

// connHandoff is a connection's part in a handover: set on the old side while it is passed, and
// on the new side while bytes read by the old process (carry) start its next frame. Outside a
// handover it holds the start of a frame not complete yet (carry.go).
type connHandoff struct {
	carry []byte
	// partial bounds the wait for the frame at the head of carry (carry.go); nil when none waits.
	partial      *timewheel.Timer
	detachCalled atomic.Bool
	detached     chan struct{}
	// Set by the close callback before detached is closed.
	input []byte
	fd    int
	dup   bool // fd is a duplicate, closed once sent
	gone  bool
}

// Retired is closed once the gateway handed everything to a new process and stopped: the process
// should exit without Shutdown.
func (gw *Gateway) Retired() <-chan struct{} { return gw.ho.retired }

// handingOff reports whether c is being passed: a read interrupted for it keeps its bytes.
func (c *conn) handingOff() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.handingLocked()
}

// readFailed handles an error of a read: the socket is gone, unless the read was interrupted to
// pass the connection, whose unread bytes then go with it.
func (gw *Gateway) readFailed(c *conn, err error) error {
	if c.handingOff() {
		return nil
	}
	c.abort(protocol.CodeConnectionLost)
	return err
}

// onSocketClosed is every connection's close callback: the socket closed, or was detached to be
// passed to a new process, when it takes what the old poller read and did not frame.
func (gw *Gateway) onSocketClosed(c *conn, nc netpoll.Connection) {
	c.mu.Lock()
	h := c.handoffLocked()
	passing := c.handingLocked() && h != nil && h.detached != nil && h.detachCalled.Load()
	c.mu.Unlock()
	if !passing {
		if h != nil && h.detached != nil {
			h.gone = true
			defer close(h.detached)
		}
		gw.onClose(c)
		return
	}
	// The close callbacks run before netpoll's own, which frees the buffers.
	input, err := detachedInput(nc, h.carry)
	if err != nil {
		gw.log.Warn("upgrade: bytes a device sent during the handover may be lost", "conn", c.id, "err", err)
	}
	h.input = input
	h.fd, h.dup = -1, false
	if fc, ok := nc.(interface{ Fd() int }); ok {
		// A duplicate where the process may open one: netpoll's finalizer may close the original
		// when the peer hung up at that very moment. At the open-file limit, the original: netpoll
		// leaves it open once detached, and it goes when this process exits.
		if fd, err := dupCloexec(fc.Fd()); err == nil {
			h.fd, h.dup = fd, true
		} else {
			h.fd = fc.Fd()
		}
	}
	close(h.detached)
}

func dupCloexec(fd int) (int, error) {
	r, _, errno := syscall.Syscall(syscall.SYS_FCNTL, uintptr(fd), syscall.F_DUPFD_CLOEXEC, 0)
	if errno != 0 {
		return -1, errno
	}
	return int(r), nil
}

// Upgrade starts opts.Exe as the gateway's next process and hands everything over to it. It
// returns an error wrapping ErrUpgradeRefused when the new process could not take over: this one
// then keeps serving as before. After a success the gateway is retired (Retired).
func (gw *Gateway) Upgrade(ctx context.Context, opts UpgradeOptions) (UpgradeResult, error) {
	res := UpgradeResult{OldPID: os.Getpid()}
	refuse := func(format string, args ...any) (UpgradeResult, error) {
		err := fmt.Errorf("%w: "+format, append([]any{ErrUpgradeRefused}, args...)...)
		res.Err = err.Error()
		gw.log.Error("upgrade refused; this process keeps serving", "err", err)
		return res, err
	}
	if gw.ho.notOwner.Load() || gw.ln == nil {
		return refuse("the gateway is still taking over from its previous process")
	}
	if !gw.ho.running.CompareAndSwap(false, true) {
		return refuse("an upgrade is already under way")
	}
	if opts.ReadyTimeout <= 0 {
		opts.ReadyTimeout = 30 * time.Second
	}
	if opts.Deadline <= 0 {
		opts.Deadline = time.Minute
	}
	started := time.Now()
	peer, cmd, exited, err := gw.startNext(opts)
	if err != nil {
		gw.ho.running.Store(false)
		return refuse("starting %s: %v", opts.Exe, err)
	}
	res.NewPID = cmd.Process.Pid
	gw.log.Info("upgrade: new process started", "pid", res.NewPID, "exe", opts.Exe)
	fail := func(format string, args ...any) (UpgradeResult, error) {
		_ = cmd.Process.Kill()
		peer.Close()
		gw.ho.running.Store(false)
		return refuse(format, args...)
	}
	r := newHandoverReader(peer)
	if err := writeHandoverMsg(peer, msgHello, encodeHello(hello{nextID: gw.nextID.Load(), states: gw.links.IDs()}), nil); err != nil {
		return fail("the new process (pid %d) went away: %v", res.NewPID, err)
	}
	if err := awaitReady(r, exited, opts.ReadyTimeout); err != nil {
		return fail("the new process (pid %d) %v", res.NewPID, err)
	}
	res.ReadyMillis = time.Since(started).Milliseconds()
	handStart := time.Now()
	if err := gw.passListeners(peer); err != nil {
		return fail("passing the listeners to pid %d: %v", res.NewPID, err)
	}
	// From here on the new process accepts devices: this one only passes what it holds.
	gw.log.Info("upgrade: listeners passed; passing connections", "pid", res.NewPID, "conns", gw.conns.len())
	deadline := time.Now().Add(opts.Deadline)
	res.Handed = gw.passConns(peer, deadline)
	res.HandoverMillis = time.Since(handStart).Milliseconds()
	gw.stopRPCForHandover()
	gw.ho.wmu.Lock()
	err = writeHandoverMsg(peer, msgRPCDone, nil, nil)
	gw.ho.wmu.Unlock()
	if err != nil {
		gw.log.Error("upgrade: telling the new process to serve RPC failed", "err", err)
	}
	gw.stopBroadcasts(2 * time.Second)
	// What could not be passed (a device that does not read, a socket closing meanwhile) is told
	// where to go, never dropped silently.
	gw.conns.each(func(c *conn) {
		if gw.redirect(c, gw.redirectTargets()) {
			res.Redirected++
		}
	})
	gw.awaitDrain(ctx, max(time.Until(deadline), time.Second))
	gw.ho.wmu.Lock()
	err = writeHandoverMsg(peer, msgEnd, encodeCount(res.Handed), nil)
	gw.ho.wmu.Unlock()
	if err == nil {
		_ = peer.SetReadDeadline(time.Now().Add(10 * time.Second))
		if m, err := r.read(); err != nil || m.typ != msgDone {
			gw.log.Warn("upgrade: the new process did not confirm the end of the handover", "err", err)
		}
	}
	res.Forwarded = gw.ho.forwarded.Load()
	res.OK = true
	gw.log.Info("upgrade: handed over", "new_pid", res.NewPID, "handed", res.Handed, "redirected", res.Redirected,
		"forwarded", res.Forwarded, "ready_ms", res.ReadyMillis, "handover_ms", res.HandoverMillis)
	gw.retire(peer)
	return res, nil
}

// startNext starts the new process with its end of a fresh socket pair as descriptor 3.
func (gw *Gateway) startNext(opts UpgradeOptions) (*net.UnixConn, *exec.Cmd, <-chan error, error) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("creating the handover socket: %w", err)
	}
	mine := os.NewFile(uintptr(fds[0]), "handover")
	theirs := os.NewFile(uintptr(fds[1]), "handover-peer")
	defer theirs.Close()
	fc, err := net.FileConn(mine)
	mine.Close()
	if err != nil {
		theirs.Close()
		return nil, nil, nil, fmt.Errorf("opening the handover socket: %w", err)
	}
	// Only what is passed on purpose reaches the new process (ExtraFiles, the listeners later).
	if err := cloexec.All(); err != nil {
		gw.log.Warn("upgrade: could not keep this process's descriptors from the new one", "err", err)
	}
	cmd := exec.Command(opts.Exe, opts.Args...)
	cmd.Env = append(append([]string(nil), opts.Env...), envUpgradeFD+"=3", envUpgradeID+"="+gw.cfg.ID)
	cmd.ExtraFiles = append([]*os.File{theirs}, opts.ExtraFiles...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Start(); err != nil {
		fc.Close()
		return nil, nil, nil, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	return fc.(*net.UnixConn), cmd, exited, nil
}

// awaitReady waits for the new process's Ready, its Fail, its exit or the timeout.
func awaitReady(r *handoverReader, exited <-chan error, timeout time.Duration) error {
	type result struct {
		m   handoverMsg
		err error
	}
	got := make(chan result, 1)
	_ = r.c.SetReadDeadline(time.Now().Add(timeout))
	go func() {
		m, err := r.read()
		got <- result{m, err}
	}()
	var res result
	select {
	case res = <-got:
	case err := <-exited:
		return fmt.Errorf("exited before it was ready (%v); see its log", err)
	}
	_ = r.c.SetReadDeadline(time.Time{})
	if res.err != nil {
		select {
		case err := <-exited:
			return fmt.Errorf("exited before it was ready (%v); see its log", err)
		case <-time.After(200 * time.Millisecond):
		}
		var ne net.Error
		if errors.As(res.err, &ne) && ne.Timeout() {
			return fmt.Errorf("did not report ready within %s", timeout)
		}
		return fmt.Errorf("went away before it was ready: %v", res.err)
	}
	switch res.m.typ {
	case msgReady:
		return nil
	case msgFail:
		why, _ := decodeText(res.m.payload)
		return fmt.Errorf("failed its checks: %s", why)
	default:
		return fmt.Errorf("sent message %d instead of ready", res.m.typ)
	}
}

// passListeners gives the new process the device, RPC and WebSocket listeners, then stops
// accepting here.
func (gw *Gateway) passListeners(peer *net.UnixConn) error {
	devFD := -1
	if fl, ok := gw.ln.(interface{ Fd() int }); ok {
		devFD = fl.Fd()
	}
	if devFD < 0 {
		return errors.New("the device listener has no descriptor")
	}
	rf, ok := gw.rpcLn.(interface{ File() (*os.File, error) })
	if !ok {
		return errors.New("the RPC listener cannot be passed")
	}
	rpcFile, err := rf.File()
	if err != nil {
		return fmt.Errorf("the RPC listener: %w", err)
	}
	defer rpcFile.Close()
	fds := []int{devFD, int(rpcFile.Fd())}
	if fd := gw.wsListenerFD(); fd >= 0 {
		fds = append(fds, fd)
	}
	if err := writeHandoverMsg(peer, msgListeners, nil, fds); err != nil {
		return err
	}
	gw.stopAcceptingWS()
	if err := stopAccepting(gw.loop); err != nil {
		// Both accept meanwhile; the connections accepted here are passed like the others.
		gw.log.Error("upgrade: could not stop accepting devices here", "err", err)
		return nil
	}
	_ = gw.ln.Close()
	return nil
}

// stopAccepting takes the listener out of the event loop's poller without closing any
// connection, which EventLoop.Shutdown would. netpoll v0.7.2 keeps it in an unexported field; a
// test (TestStopAcceptingReachesTheListener) fails should that change.
func stopAccepting(loop netpoll.EventLoop) error {
	v := reflect.ValueOf(loop)
	if v.Kind() != reflect.Pointer || v.IsNil() || v.Elem().Kind() != reflect.Struct {
		return errors.New("unexpected netpoll event loop")
	}
	evl := v.Elem()
	mu := evl.FieldByName("Mutex")
	svr := evl.FieldByName("svr")
	if !mu.IsValid() || mu.Type() != reflect.TypeOf(sync.Mutex{}) || !svr.IsValid() || svr.Kind() != reflect.Pointer {
		return errors.New("unexpected netpoll event loop layout")
	}
	lock := (*sync.Mutex)(unsafe.Pointer(mu.UnsafeAddr()))
	lock.Lock()
	defer lock.Unlock()
	p := *(*unsafe.Pointer)(unsafe.Pointer(svr.UnsafeAddr()))
	if p == nil {
		return errors.New("the event loop serves no listener")
	}
	op := reflect.NewAt(svr.Type().Elem(), p).Elem().FieldByName("operator")
	if !op.IsValid() || op.Type() != reflect.TypeOf(netpoll.FDOperator{}) {
		return errors.New("unexpected netpoll server layout")
	}
	fdop := (*netpoll.FDOperator)(unsafe.Pointer(op.UnsafeAddr()))
	return fdop.Control(netpoll.PollDetach)
}

// passConns passes every connection, in batches, until none is left or the deadline passes, and
// returns how many went.
func (gw *Gateway) passConns(peer *net.UnixConn, deadline time.Time) int {
	gw.ho.pushMu.Lock()
	gw.ho.peer = peer
	gw.ho.handed = make(map[uint64]struct{}, gw.conns.len())
	gw.ho.pushMu.Unlock()
	handed := 0
	skipped := make(map[uint64]bool)
	for time.Now().Before(deadline) {
		var batch []*conn
		gw.conns.each(func(c *conn) {
			if !skipped[c.id] && len(batch) < handoverBatch {
				batch = append(batch, c)
			}
		})
		if len(batch) == 0 {
			break
		}
		n, failed, err := gw.passBatch(peer, batch, deadline)
		handed += n
		for _, c := range failed {
			skipped[c.id] = true
		}
		if err != nil {
			gw.log.Error("upgrade: passing connections failed", "err", err)
			break
		}
	}
	return handed
}

// passBatch passes a batch: it stops each connection's writes and reads at a safe point, waits
// for their frames already read to reach the state servers, then sends their sockets and state.
// failed are those it left here.
func (gw *Gateway) passBatch(peer *net.UnixConn, batch []*conn, deadline time.Time) (int, []*conn, error) {
	var failed, frozen []*conn
	for _, c := range batch {
		c.mu.Lock()
		if c.closed || c.handingLocked() {
			c.mu.Unlock()
			failed = append(failed, c)
			continue
		}
		k := c.coldLocked()
		k.handing = true
		if k.handoff == nil {
			k.handoff = &connHandoff{}
		}
		k.handoff.detached = make(chan struct{})
		c.mu.Unlock()
		frozen = append(frozen, c)
	}
	// A write in flight finishes (no new one starts): netpoll must not be writing to a socket it
	// lets go of. A device that does not read for that long is redirected later.
	waitUntil := time.Now().Add(min(2*time.Second, max(time.Until(deadline), 100*time.Millisecond)))
	var idle []*conn
	busy := frozen
	for {
		still := busy[:0]
		for _, c := range busy {
			c.mu.Lock()
			flushing := c.flushing
			c.mu.Unlock()
			if flushing {
				still = append(still, c)
			} else {
				idle = append(idle, c)
			}
		}
		busy = still
		if len(busy) == 0 || time.Now().After(waitUntil) {
			break
		}
		time.Sleep(200 * time.Microsecond)
	}
	for _, c := range busy {
		c.mu.Lock()
		flushing := c.flushing
		c.mu.Unlock()
		if !flushing {
			idle = append(idle, c)
			continue
		}
		c.unhand()
		failed = append(failed, c)
	}
	// Detached from the poller: a read running is interrupted at its frame boundary (read.go keeps
	// the bytes of a frame not complete), and the close callback takes what was buffered.
	var detached []*conn
	for _, c := range idle {
		d, ok := c.nc.(interface{ Detach() error })
		if _, err := pollerState(c.nc); !ok || err != nil {
			// Its bytes in flight could not be waited for (detach.go): it stays, to be redirected.
			if err != nil {
				gw.log.Error("upgrade: a connection cannot be passed safely", "conn", c.id, "err", err)
			}
			c.unhand()
			failed = append(failed, c)
			continue
		}
		c.cold.handoff.detachCalled.Store(true)
		_ = d.Detach()
		detached = append(detached, c)
	}
	var ready []*conn
	for _, c := range detached {
		select {
		case <-c.cold.handoff.detached:
		case <-time.After(time.Until(waitUntil) + time.Second):
			gw.log.Warn("upgrade: a connection did not let go of its socket", "conn", c.id)
			continue
		}
		if c.cold.handoff.gone || c.cold.handoff.fd < 0 {
			continue
		}
		ready = append(ready, c)
	}
	// Frames these connections sent are on the lanes to the state servers: they must get there
	// before the new process forwards the next ones.
	bctx, cancel := context.WithDeadline(context.Background(), deadline.Add(5*time.Second))
	for _, l := range gw.links.List() {
		if err := l.batch.Barrier(bctx); err != nil {
			gw.log.Warn("upgrade: waiting for the state server lane failed", "state", l.id, "err", err)
		}
	}
	cancel()
	if len(ready) == 0 {
		return 0, failed, nil
	}
	gw.ho.pushMu.Lock()
	defer gw.ho.pushMu.Unlock()
	recs := make([]*handedConn, 0, len(ready))
	fds := make([]int, 0, len(ready))
	var dups []int
	for _, c := range ready {
		recs = append(recs, gw.takeConn(c))
		fds = append(fds, c.cold.handoff.fd)
		if c.cold.handoff.dup {
			dups = append(dups, c.cold.handoff.fd)
		}
		gw.ho.handed[c.id] = struct{}{}
	}
	gw.ho.wmu.Lock()
	err := writeHandoverMsg(peer, msgConns, encodeConns(recs), fds)
	gw.ho.wmu.Unlock()
	for _, fd := range dups {
		_ = syscall.Close(fd)
	}
	if err != nil {
		return 0, failed, err
	}
	return len(ready), failed, nil
}

// unhand gives c back to this process: writes resume.
func (c *conn) unhand() {
	c.mu.Lock()
	c.cold.handing = false
	c.cold.handoff.detached = nil
	start := len(c.queue) > 0 && !c.flushing && !c.closed
	if start {
		c.flushing = true
	}
	c.mu.Unlock()
	if start {
		c.startFlush()
	}
}

// takeConn snapshots c for the new process and forgets it here without telling anyone it
// closed: it lives on there. pushMu is held.
func (gw *Gateway) takeConn(c *conn) *handedConn {
	c.mu.Lock()
	h := &handedConn{
		id: c.id, state: c.state, reason: uint16(c.reason), hbInFlight: c.hbInFlight,
		appID: c.appID(), did: c.did(), uid: c.uid, sessions: c.cold.sessions,
		downSeq: c.downSeq, upAnswered: c.upAnswered, upPending: pendingSeqs(c.cold.upPending), unacked: c.cold.unacked,
		input: c.cold.handoff.input, queue: c.queue,
	}
	if c.link != nil {
		h.link = c.link.id
	}
	if c.ws != nil {
		w := *c.ws
		h.ws = &w
	}
	c.closed = true
	c.queue, c.queued = nil, 0
	gw.slow.unwatchLocked(c)
	gw.upInFlight.Add(-int64(len(c.cold.upPending)))
	app, key, sessions, u := c.appID(), c.key, c.cold.sessions, c.usage
	c.usage = nil
	// The connCold stays: passBatch reads its handoff's descriptor after this.
	c.cold.sessions, c.cold.unacked, c.cold.upPending = nil, nil, nil
	lt := c.cold.loginTimer
	c.cold.loginTimer = nil
	c.mu.Unlock()
	if lt != nil {
		lt.Stop()
	}
	gw.leaveAllSessions(c, app, sessions)
	gw.conns.remove(c, key)
	if u != nil {
		u.conns.Add(-1)
	}
	return h
}

// forwardHanded takes the frames of connections already passed out of a Push to this process and
// forwards them to the new one, in order behind the connection itself. pushMu is held shared.
func (gw *Gateway) forwardHanded(stateID string, frames []*fleet.DownFrame) []*fleet.DownFrame {
	if len(gw.ho.handed) == 0 {
		return frames
	}
	var fwd []*fleet.DownFrame
	keep := frames[:0:0]
	for _, f := range frames {
		if _, ok := gw.ho.handed[uint64(f.ConnId)]; ok {
			fwd = append(fwd, f)
		} else {
			keep = append(keep, f)
		}
	}
	if len(fwd) > 0 {
		gw.ho.wmu.Lock()
		err := writeHandoverMsg(gw.ho.peer, msgForward, encodePush(stateID, fwd), nil)
		gw.ho.wmu.Unlock()
		if err != nil {
			gw.log.Error("upgrade: forwarding frames to the new process failed", "frames", len(fwd), "err", err)
		} else {
			gw.ho.forwarded.Add(int64(len(fwd)))
		}
	}
	return keep
}

// forwardHandedSessions is forwardHanded for session changes.
func (gw *Gateway) forwardHandedSessions(stateID string, changes []*fleet.SessionChange) []*fleet.SessionChange {
	if len(gw.ho.handed) == 0 {
		return changes
	}
	var fwd []*fleet.SessionChange
	keep := changes[:0:0]
	for _, ch := range changes {
		if _, ok := gw.ho.handed[uint64(ch.ConnId)]; ok && ch != nil {
			fwd = append(fwd, ch)
		} else {
			keep = append(keep, ch)
		}
	}
	if len(fwd) > 0 {
		gw.ho.wmu.Lock()
		err := writeHandoverMsg(gw.ho.peer, msgSessions, encodeSessions(stateID, fwd), nil)
		gw.ho.wmu.Unlock()
		if err != nil {
			gw.log.Error("upgrade: forwarding session changes to the new process failed", "changes", len(fwd), "err", err)
		}
	}
	return keep
}

// stopRPCForHandover stops this process's RPC server gracefully, leaving the socket (shared with
// the new process) and its file in place: the state servers' calls in flight finish here, and they
// reconnect to the new process.
func (gw *Gateway) stopRPCForHandover() {
	if ul, ok := gw.rpcLn.(*net.UnixListener); ok {
		ul.SetUnlinkOnClose(false)
	}
	gw.stopRPC()
}

// stopRPC stops the RPC server, or closes its listener when none was started.
func (gw *Gateway) stopRPC() {
	gw.ho.mu.Lock()
	srv := gw.rpc
	gw.ho.mu.Unlock()
	// Local callers now go to the wire: refused there, or served by the process taking over.
	gw.local.Stop(time.Second)
	if srv != nil {
		_ = srv.Stop()
	} else if gw.rpcLn != nil {
		gw.rpcLn.Close()
	}
}

// retire stops what is left of the old process without a word to the registry, the state servers
// or the devices: they are all the new process's now.
func (gw *Gateway) retire(peer *net.UnixConn) {
	gw.stopOnce.Do(func() {
		gw.cancel()
		if gw.reported != nil {
			<-gw.reported
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		// Close events of the connections redirected still go out.
		for _, l := range gw.links.Clear() {
			l.stop()
			_ = l.batch.Close(ctx)
		}
		gw.wheel.Stop()
		_ = gw.instruments.Unregister()
	})
	peer.Close()
	close(gw.ho.retired)
}

// UpgradeEnv is env without the variables of a previous upgrade.
func UpgradeEnv(env []string) []string {
	out := make([]string, 0, len(env))
	for _, kv := range env {
		if !strings.HasPrefix(kv, EnvUpgradePrefix) {
			out = append(out, kv)
		}
	}
	return out
}

// Executable is the binary now at the path this process was started from: os.Executable names a
// binary replaced on disk "<path> (deleted)".
func Executable() (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", err
	}
	return strings.TrimSuffix(exe, " (deleted)"), nil
}
