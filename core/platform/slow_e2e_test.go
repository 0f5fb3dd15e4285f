package platform_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/platoim/plato/core/platform"
	"github.com/platoim/plato/core/platform/platformtest"
	"github.com/platoim/plato/internal/config"
	"github.com/platoim/plato/sdk/business/rpc/plato/api"
	"github.com/platoim/plato/sdk/poll"
	"github.com/platoim/plato/sdk/protocol"
	"github.com/platoim/plato/sdk/token"
)

// slowDevice is a raw-socket device that logs in, then either reads everything (counting the
// Downlinks, which carry a push number in their first 8 bytes) or stops reading at once.
type slowDevice struct {
	did string
	nc  net.Conn
	br  *bufio.Reader

	// Filled by the reader of a device that reads.
	received atomic.Int64 // Downlinks read
	outOfSeq atomic.Int64 // Downlinks whose number was not the one after the last
	readErr  atomic.Pointer[error]
	done     chan struct{}
}

// dialSlowDevice logs did in. rcvbuf > 0 sets the device's receive buffer before it connects, as a
// small device would have: what a device that stopped reading lets the server send before its
// window closes is its own business, not what is measured here.
func dialSlowDevice(t *testing.T, p *platform.Platform, signer *token.Signer, did string, rcvbuf int) *slowDevice {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second, Control: func(_, _ string, c syscall.RawConn) error {
		if rcvbuf <= 0 {
			return nil
		}
		var serr error
		if err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, rcvbuf)
		}); err != nil {
			return err
		}
		return serr
	}}
	nc, err := d.Dial("tcp", p.Gateway.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	tok, _ := signer.Issue("demo", did, did, time.Now(), time.Time{})
	if _, err := nc.Write(protocol.AppendFrame(nil, protocol.SigLogin, 0, 1, (&protocol.Login{AppID: "demo", DID: did, UID: did, Token: tok}).Append(nil))); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReaderSize(nc, 4096)
	_ = nc.SetReadDeadline(time.Now().Add(15 * time.Second))
	f, _, err := protocol.ReadFrame(br, protocol.HardMaxBody, nil)
	var ack protocol.LoginAck
	if err != nil || f.Signal != protocol.SigLoginAck || ack.Decode(f.Body) != nil || ack.Code != protocol.CodeOK {
		t.Fatalf("%s: login answer %v, %v", did, f, err)
	}
	_ = nc.SetReadDeadline(time.Time{})
	return &slowDevice{did: did, nc: nc, br: br, done: make(chan struct{})}
}

// read reads Downlinks until the socket ends.
func (d *slowDevice) read() {
	defer close(d.done)
	var last uint64
	for {
		f, _, err := protocol.ReadFrame(d.br, protocol.HardMaxBody, nil)
		if err != nil {
			d.readErr.Store(&err)
			return
		}
		if f.Signal != protocol.SigDownlink {
			continue
		}
		var dl protocol.Downlink
		if dl.Decode(f.Body) != nil || len(dl.Payload) < 8 {
			err := fmt.Errorf("undecodable Downlink %v", f)
			d.readErr.Store(&err)
			return
		}
		n := binary.BigEndian.Uint64(dl.Payload)
		if n != last+1 {
			d.outOfSeq.Add(1)
		}
		last = n
		d.received.Add(1)
	}
}

// drainToEnd reads what the gateway sent a device that stopped reading, until the socket ends,
// and returns the code of the Close frame found on the way (0: none, the socket just ended).
func (d *slowDevice) drainToEnd(t *testing.T) protocol.Code {
	t.Helper()
	_ = d.nc.SetReadDeadline(time.Now().Add(20 * time.Second))
	code := protocol.Code(0)
	for {
		f, _, err := protocol.ReadFrame(d.br, protocol.HardMaxBody, nil)
		if err != nil {
			if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
				t.Fatalf("%s: the socket was still open 20 s after the device read again", d.did)
			}
			return code // EOF, a reset, or a frame cut short by the close
		}
		if f.Signal == protocol.SigClose {
			var m protocol.Close
			if m.Decode(f.Body) == nil {
				code = m.Code
			}
		}
	}
}

// pusher pushes payloads of size bytes to dids, every interval, numbering them from 1, until
// stop is closed or a target is no longer online. It returns how many it pushed.
func pusher(ctx context.Context, t *testing.T, p *platform.Platform, dids []string, size int, every time.Duration, stop <-chan struct{}) func() (pushed int64, bytes int64) {
	sc := platformtest.StateClient(t, p.State.Addr())
	var n atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tk := time.NewTicker(every)
		defer tk.Stop()
		payload := make([]byte, size)
		for k := uint64(1); ; k++ {
			binary.BigEndian.PutUint64(payload, k)
			resp, err := sc.Push(ctx, &api.PushRequest{Caller: platformtest.Caller("demo"), Dids: dids, Payload: payload, Qos: api.QoS_AT_MOST_ONCE})
			if err != nil || len(resp.Targets) != len(dids) {
				return
			}
			for _, tg := range resp.Targets {
				if tg.Status != api.PushStatus_SENT {
					return // cut: the state server no longer has the connection
				}
			}
			n.Store(int64(k))
			select {
			case <-stop:
				return
			case <-ctx.Done():
				return
			case <-tk.C:
			}
		}
	}()
	return func() (int64, int64) {
		wg.Wait()
		return n.Load(), n.Load() * int64(size)
	}
}

// TestSlowConsumersAreCutAndOthersKeepReceiving runs a real platform whose gateway bounds what a
// device may leave unread (16 KiB for 1 s) and each socket's send buffer (4 KiB), with devices
// that stop reading while pushes flood them (100 KB/s), one that stops reading at 1 KB every
// 250 ms (which no bound on the gateway's own queue ever caught), and devices that keep reading
// at both rates. The stalled ones must be closed with 1205 within a generous multiple of the
// stall, the slow one only once more than the threshold was pushed to it, and the others must get
// every push, in order.
func TestSlowConsumersAreCutAndOthersKeepReceiving(t *testing.T) {
	const (
		sndbuf    = 4096
		maxUnsent = 16 << 10
		maxStall  = time.Second
	)
	p, biz := startAll(t, func(c *config.Config) {
		c.Gateway.SocketSendBuffer = sndbuf
		c.Gateway.SlowConsumer.MaxUnsentBytes = maxUnsent
		c.Gateway.SlowConsumer.MaxStall = maxStall
		// The business hears DISCONNECTED with the close code at once, rather than after a
		// window in which the device might resume (1205 is resumable).
		c.State.ReconnectWindow = 0
	})
	signer := mustSigner(t, platformtest.Secret)
	healthy := make([]*slowDevice, 3)
	var healthyDIDs []string
	for i := range healthy {
		healthy[i] = dialSlowDevice(t, p, signer, fmt.Sprintf("healthy-%d", i), 0)
		healthyDIDs = append(healthyDIDs, healthy[i].did)
		go healthy[i].read()
	}
	trickleReader := dialSlowDevice(t, p, signer, "trickle-reader", 4096)
	go trickleReader.read()
	// The stalled devices read nothing after their LoginAck; their receive buffer is small so
	// that what they hold is theirs to bound, not the test's to wait for.
	stalled := []*slowDevice{dialSlowDevice(t, p, signer, "stalled-0", 4096), dialSlowDevice(t, p, signer, "stalled-1", 4096)}
	trickleStalled := dialSlowDevice(t, p, signer, "trickle-stalled", 4096)

	if got := p.Gateway.Stats().SocketSendBuffer; got <= 0 || got > 2*sndbuf {
		t.Fatalf("the kernel gave the device sockets a %d-byte send buffer, want at most %d (twice %d, Linux's bookkeeping)", got, 2*sndbuf, sndbuf)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	stop := make(chan struct{})
	start := time.Now()
	healthyDone := pusher(ctx, t, p, healthyDIDs, 1024, 50*time.Millisecond, stop)
	trickleReaderDone := pusher(ctx, t, p, []string{trickleReader.did}, 1024, 250*time.Millisecond, stop)
	var floods []func() (int64, int64)
	for _, d := range stalled {
		floods = append(floods, pusher(ctx, t, p, []string{d.did}, 2048, 20*time.Millisecond, stop))
	}
	trickleDone := pusher(ctx, t, p, []string{trickleStalled.did}, 1024, 250*time.Millisecond, stop)

	// Generous: the flooded devices cross the threshold in a fraction of a second.
	for _, d := range stalled {
		poll.Within(t, 15*maxStall, d.did+" to be closed", func() bool { return len(biz.Events(api.EventKind_DISCONNECTED, d.did)) > 0 })
	}
	// At 4 KB/s the trickle needs about 5 s to put more than 16 KiB past a 4 KiB receive window.
	poll.Within(t, 40*time.Second, "the stalled trickle to be closed", func() bool {
		return len(biz.Events(api.EventKind_DISCONNECTED, trickleStalled.did)) > 0
	})
	cutAfter := time.Since(start)
	close(stop)
	_, trickleBytes := trickleDone()
	for _, f := range floods {
		f()
	}
	for _, d := range append(stalled, trickleStalled) {
		ev := biz.Events(api.EventKind_DISCONNECTED, d.did)[0]
		if protocol.Code(ev.Reason) != protocol.CodeSlowConsumer {
			t.Errorf("%s: DISCONNECTED with %d, want 1205", d.did, ev.Reason)
		}
	}
	if trickleBytes < maxUnsent {
		t.Errorf("the trickle was cut after %d bytes pushed, before it could have had %d unsent", trickleBytes, maxUnsent)
	}
	t.Logf("stalled devices cut; the trickle after %v and %d bytes", cutAfter, trickleBytes)

	// The devices that read got everything, in order, and were never cut.
	healthyPushed, _ := healthyDone()
	readerPushed, _ := trickleReaderDone()
	if healthyPushed < 20 || readerPushed < 4 {
		t.Fatalf("only %d pushes to the healthy devices and %d to the trickle reader", healthyPushed, readerPushed)
	}
	for _, d := range append(healthy, trickleReader) {
		want := healthyPushed
		if d == trickleReader {
			want = readerPushed
		}
		poll.Within(t, 10*time.Second, d.did+" to read every push", func() bool { return d.received.Load() >= want })
		if got, bad := d.received.Load(), d.outOfSeq.Load(); got != want || bad != 0 {
			t.Errorf("%s: read %d pushes (%d out of sequence), want %d", d.did, got, bad, want)
		}
		if e := d.readErr.Load(); e != nil {
			t.Errorf("%s: socket ended: %v", d.did, *e)
		}
		if n := len(biz.Events(api.EventKind_DISCONNECTED, d.did)); n != 0 {
			t.Errorf("%s was disconnected", d.did)
		}
	}

	s := p.Gateway.Stats()
	t.Logf("gateway: %d slow consumers (queue_full %d, stalled %d, write_timeout %d), send buffer %d",
		s.SlowConsumers, s.SlowQueueFull, s.SlowStalled, s.SlowWriteTimeout, s.SocketSendBuffer)
	if s.SlowConsumers != 3 || s.SlowStalled < 1 {
		t.Errorf("slow consumers %d (queue_full %d, stalled %d, write_timeout %d), want 3 of which the trickle stalled",
			s.SlowConsumers, s.SlowQueueFull, s.SlowStalled, s.SlowWriteTimeout)
	}

	// A stalled device that reads again finds the gateway's end closed: after what was on its
	// way, the Close 1205 when its socket had room for it, else just the end of the stream.
	for _, d := range append(stalled, trickleStalled) {
		code := d.drainToEnd(t)
		if code != 0 && code != protocol.CodeSlowConsumer {
			t.Errorf("%s: Close %d, want 1205 or none", d.did, code)
		}
		t.Logf("%s read to the end of its socket: Close %d", d.did, code)
	}
	poll.Within(t, 10*time.Second, "the watch to let go of the closed connections", func() bool {
		return p.Gateway.Stats().SlowWatched == 0
	})
}
