package stage

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protowire"
)

// The data socket: batches and their results travel as raw frames (rawframe.go) over a unix
// socket instead of the gRPC Process stream, which cost about three times as much CPU per message
// (docs/adr/0011-stage-data-socket.md). gRPC, with go-plugin's AutoMTLS, stays the control channel: Describe, Init,
// health, the Host service, and the StageData.Open call that sets the socket up.
//
// Open: the host listens on a fresh socket, mode 0600 in a directory of its own, mode 0700, and
// sends its path and a random secret in StageData.Open, over the mTLS channel. The plugin dials
// it, sends the secret as its first frame, and answers. The host accepts, checks the secret, and
// removes the socket file: nobody else can connect any more, and nothing on the socket is
// accepted before the secret. A plugin built before the data socket answers Open with
// Unimplemented, and the host keeps the Process stream for it; a host built before it never
// calls Open, and the plugin serves the stream as it always did.

// rawEnvOff is the plugin environment variable that makes Serve leave the data socket out, as if
// the plugin were built against an SDK without it: PLATO_STAGE_RAW=off.
const rawEnvOff = "PLATO_STAGE_RAW"

const (
	dataServiceName = "plato.stage.v1.StageData"
	dataOpenMethod  = "/" + dataServiceName + "/Open"
	// openRawTimeout bounds setting up the socket when the caller's ctx has no deadline.
	openRawTimeout = 10 * time.Second
	secretSize     = 32
)

// Fields of the Open request (encoded by hand; there is no generated type for it).
const fOpenPath, fOpenSecret = 1, 2

// dataOpener is what the StageData service is registered for (plugin side).
type dataOpener interface {
	openData(ctx context.Context, req []byte) error
}

var dataServiceDesc = grpc.ServiceDesc{
	ServiceName: dataServiceName,
	HandlerType: (*dataOpener)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "Open",
		Handler: func(srv any, ctx context.Context, dec func(any) error, icpt grpc.UnaryServerInterceptor) (any, error) {
			in := new(wireMsg)
			if err := dec(in); err != nil {
				return nil, err
			}
			h := func(ctx context.Context, req any) (any, error) {
				if err := srv.(dataOpener).openData(ctx, req.(*wireMsg).b); err != nil {
					return nil, err
				}
				return &wireMsg{b: []byte{}}, nil
			}
			if icpt == nil {
				return h(ctx, in)
			}
			return icpt(ctx, in, &grpc.UnaryServerInfo{Server: srv, FullMethod: dataOpenMethod}, h)
		},
	}},
	Metadata: "stage data socket (hand-encoded)",
}

// Data paths, as DataPath reports them.
const (
	PathSocket    = "socket"
	PathGRPC      = "grpc"
	PathInProcess = "in-process"
)

// DataPath says how p's batches travel: PathSocket (the plugin's data socket), PathGRPC (the
// gRPC Process stream: a plugin or a host without the socket), PathInProcess, or "" while a
// plugin's first batch stream is not open yet.
func DataPath(p Processor) string {
	switch p := p.(type) {
	case *remote:
		if v := p.path.Load(); v != nil {
			return *v
		}
		return ""
	case *inProcess:
		return PathInProcess
	}
	return ""
}

// Fault is implemented by the Processor of a plugin process (Dispense). It returns why the plugin
// can no longer be trusted, or nil: it sent a frame on the data socket that breaks the protocol
// (too long, or not a Results). The host cut the socket off then, every later batch fails at
// once, and the plugin should be treated as crashed and replaced.
type Fault interface {
	Fault() error
}

// Fault implements Fault.
func (r *remote) Fault() error {
	if e := r.fault.Load(); e != nil {
		return *e
	}
	return nil
}

func (r *remote) setFault(err error) {
	r.fault.CompareAndSwap(nil, &err)
}

// openRaw sets up a data socket with the plugin (host side). A plugin without one answers
// Unimplemented (the caller falls back to the Process stream).
func (r *remote) openRaw(ctx context.Context) (*rawConn, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, openRawTimeout)
		defer cancel()
	}
	dir, err := os.MkdirTemp("", "plato-stage-") // mode 0700
	if err != nil {
		return nil, fmt.Errorf("creating the data socket's directory: %w", err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "data.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("listening on the data socket: %w", err)
	}
	defer ln.Close() // removes the socket file: one connection is all we take
	if err := os.Chmod(path, 0o600); err != nil {
		return nil, fmt.Errorf("restricting the data socket: %w", err)
	}
	secret := make([]byte, secretSize)
	if _, err := rand.Read(secret); err != nil {
		return nil, fmt.Errorf("making the data socket's secret: %w", err)
	}
	req := protowire.AppendString(protowire.AppendTag(nil, fOpenPath, protowire.BytesType), path)
	req = protowire.AppendBytes(protowire.AppendTag(req, fOpenSecret, protowire.BytesType), secret)
	if err := r.conn.Invoke(ctx, dataOpenMethod, &wireMsg{b: req}, &wireMsg{}, grpc.ForceCodec(wireCodec{})); err != nil {
		return nil, callError("stage data open", err)
	}
	dl, _ := ctx.Deadline()
	if err := ln.SetDeadline(dl); err != nil {
		return nil, fmt.Errorf("accepting the data socket: %w", err)
	}
	// The plugin connected before answering. Anyone else who could reach the socket (our own
	// user) is turned away by the secret; keep accepting until the plugin's connection or ctx.
	for {
		c, err := ln.AcceptUnix()
		if err != nil {
			return nil, fmt.Errorf("accepting the data socket: %w", err)
		}
		if err := checkHello(c, secret, dl); err != nil {
			_ = c.Close()
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return nil, fmt.Errorf("data socket: no hello from the plugin: %w", err)
			}
			continue
		}
		rc, err := newRawConn(c, &r.frames, &r.answered, r.setFault)
		if err != nil {
			_ = c.Close()
			return nil, err
		}
		return rc, nil
	}
}

// checkHello reads the first frame of c and compares it with secret.
func checkHello(c *net.UnixConn, secret []byte, dl time.Time) error {
	if err := c.SetReadDeadline(dl); err != nil {
		return err
	}
	var hdr [frameHeader]byte
	b, err := readFrame(c, maxHelloFrame, &hdr, nil)
	if err != nil {
		return err
	}
	if subtle.ConstantTimeCompare(b, secret) != 1 {
		return errors.New("wrong secret")
	}
	return c.SetReadDeadline(time.Time{})
}

// rawConn is a data socket as the host's mux uses it: batches out (whole frames, header
// included: see remote.Process), Results in.
type rawConn struct {
	c        *net.UnixConn
	sc       syscall.RawConn
	fr       frameReader // the holder of the reading role's (stream_mux_lead.go)
	frames   *framePool  // where sent batches' buffers go back
	answered *atomic.Uint64
	fault    func(error)
	io       io.ReadWriter
}

func newRawConn(c *net.UnixConn, frames *framePool, answered *atomic.Uint64, fault func(error)) (*rawConn, error) {
	sc, err := c.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("data socket: %w", err)
	}
	rc := &rawConn{c: c, sc: sc, frames: frames, answered: answered, fault: fault}
	rc.io = newSocketIO(c)
	rc.fr = frameReader{r: bufio.NewReaderSize(rc.io, 64<<10), limit: maxFrame}
	return rc, nil
}

func (c *rawConn) setReadDeadline(t time.Time) error { return c.c.SetReadDeadline(t) }

func (c *rawConn) close() { _ = c.c.Close() }

// send writes a frame, or what trySend left of it, blocking until it is written (the sender
// goroutine's way).
func (c *rawConn) send(b []byte) error {
	if _, err := c.io.Write(b); err != nil {
		if errors.Is(err, net.ErrClosed) {
			return io.EOF // closed by the receiver's failure, which carries the reason
		}
		return fmt.Errorf("sending a batch on the data socket: %w", err)
	}
	c.frames.put(b)
	return nil
}

// trySend writes as much of the frame b as the socket takes without blocking, in the caller's
// goroutine: the whole of it but when the plugin is behind in reading. It saves handing every
// batch to the sender goroutine, which costs a goroutine switch (and often a thread wake-up) per
// batch on each side.
func (c *rawConn) trySend(b []byte) (n int, err error) {
	werr := c.sc.Write(func(fd uintptr) bool {
		for n < len(b) {
			m, e := rawWrite(fd, b[n:])
			switch {
			case e == syscall.EINTR:
				continue
			case e == syscall.EAGAIN:
				return true // full: the rest goes through the sender goroutine
			case e != nil:
				err = e
				return true
			}
			n += m
		}
		return true
	})
	if err == nil {
		err = werr
	}
	if err != nil {
		return n, fmt.Errorf("sending a batch on the data socket: %w", err)
	}
	if n == len(b) {
		c.frames.put(b)
	}
	return n, nil
}

func (c *rawConn) recv() (uint64, result, error) {
	b, err := c.fr.next() // its replies' payloads are sub-slices: not pooled
	if err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return 0, result{}, err // the reading caller's ctx ended; the frame's start is kept
		}
		if isFrameError(err) {
			err = fmt.Errorf("stage plugin sent a bad frame on the data socket: %w", err)
			c.fault(err)
			return 0, result{}, err
		}
		if errors.Is(err, io.EOF) {
			return 0, result{}, errors.New("the plugin closed the data socket")
		}
		return 0, result{}, fmt.Errorf("reading the data socket: %w", err)
	}
	id, failure, err := peekResults(b)
	if err != nil {
		err = fmt.Errorf("stage plugin sent a malformed result on the data socket: %w", err)
		c.fault(err)
		return 0, result{}, err
	}
	c.answered.Add(1)
	return id, result{failure: failure, b: b}, nil
}

// dataServer is the plugin side's StageData service.
type dataServer struct{ s *server }

// openData dials the host's data socket, says the secret, and serves batches on it until the host
// closes it.
func (d *dataServer) openData(ctx context.Context, req []byte) error {
	var path string
	var secret []byte
	err := forEachField(req, func(n protowire.Number, t protowire.Type, v []byte, _ uint64) error {
		switch {
		case n == fOpenPath && t == protowire.BytesType:
			path = string(v)
		case n == fOpenSecret && t == protowire.BytesType:
			secret = v
		}
		return nil
	})
	if err != nil || path == "" || len(secret) == 0 || len(secret) > maxHelloFrame {
		return errors.New("malformed data socket request")
	}
	var dialer net.Dialer
	nc, err := dialer.DialContext(ctx, "unix", path)
	if err != nil {
		return fmt.Errorf("dialing the host's data socket: %w", err)
	}
	c := nc.(*net.UnixConn)
	var hdr [frameHeader]byte
	if err := writeFrame(c, secret, &hdr); err != nil {
		_ = c.Close()
		return fmt.Errorf("greeting the host's data socket: %w", err)
	}
	go d.s.serveRaw(c)
	return nil
}

// serveRaw runs the batches that come on c until c closes (rawserve.go).
func (s *server) serveRaw(c *net.UnixConn) { newRawReader(s, c).loop() }

// rawSender is the plugin's resultSink on the data socket: it serializes the plugin's frames and
// recycles the buffers of batches and results.
type rawSender struct {
	mu      sync.Mutex
	c       *net.UnixConn
	w       io.Writer
	batches framePool
	results framePool
}

func (o *rawSender) buffer(n int) []byte { return beginFrame(o.results.get(n + frameHeader)) }

func (o *rawSender) send(b []byte) error {
	b = endFrame(b)
	o.mu.Lock()
	_, err := o.w.Write(b)
	o.mu.Unlock()
	o.results.put(b)
	return err
}

func (o *rawSender) release(batch []byte) { o.batches.put(batch) }

// sendRaw writes bytes as they are (test stages only: internal/wiretest).
func (o *rawSender) sendRaw(b []byte) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	_, err := o.c.Write(b)
	return err
}

func (o *rawSender) close() { _ = o.c.Close() }
