package bench

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/platoim/plato/internal/natsd"
	"github.com/platoim/plato/sdk/protocol"
	"github.com/platoim/plato/sdk/token"
)

// What the scenarios that start a platform of their own (failover, slow-consumers, crashloop,
// nats-restart) share: processes of the plato binary, each started with the platform's one
// configuration file and an environment override, watched for the line that says where it
// listens, and stopped with SIGINT then SIGKILL; and the platform's temporary directory, its
// business server and, but for nats-restart, NATS in this process.

// Bounds of a platform process's own steps.
const (
	procStartTimeout = 30 * time.Second // until a process prints where it listens
	procStopTimeout  = 15 * time.Second // SIGINT to exit, then SIGKILL
)

// platformBase is what every scenario's platform holds. Its stop goes after the processes', as
// they need NATS and the business server to the end.
type platformBase struct {
	command    func(args ...string) *exec.Cmd // the plato binary (Options.PlatoCommand)
	dir        string
	cfg        string        // the configuration file, in dir
	natsServer *natsd.Server // nil where NATS is a process of its own
	biz        *foBusiness
}

// open makes the platform's directory, starts NATS in this process if inProcessNATS, and the
// business server with listeners listeners.
func (b *platformBase) open(ctx context.Context, scenario string, inProcessNATS bool, listeners int) (err error) {
	if b.dir, err = os.MkdirTemp("", "plato-bench-"+scenario+"-"); err != nil {
		return err
	}
	if inProcessNATS {
		quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
		if b.natsServer, err = natsd.Start(ctx, natsd.Config{Host: "127.0.0.1", Port: 0, StoreDir: filepath.Join(b.dir, "nats")}, quiet); err != nil {
			return fmt.Errorf("starting NATS: %w", err)
		}
	}
	b.biz, err = startFoBusiness(listeners)
	return err
}

// writeConfig writes conf as the platform's configuration file.
func (b *platformBase) writeConfig(conf string) error {
	b.cfg = filepath.Join(b.dir, "plato.yaml")
	return os.WriteFile(b.cfg, []byte(conf), 0o600)
}

// startProc starts `plato <role> --config <the file>` as name, with env added to its
// environment, sets *dst to it at once (so that the platform's stop ends it whatever happens
// next), and returns the first submatch of ready on its stdout.
func (b *platformBase) startProc(ctx context.Context, dst **platoProc, name, role string, env []string, ready *regexp.Regexp) (string, error) {
	pr, err := startPlatoProc(b.command, name, env, role, "--config", b.cfg)
	if err != nil {
		return "", err
	}
	*dst = pr
	return pr.waitLine(ctx, ready, procStartTimeout)
}

// stop stops NATS and the business server, and removes the directory.
func (b *platformBase) stop() {
	if b.natsServer != nil {
		b.natsServer.Shutdown()
	}
	if b.biz != nil {
		b.biz.stop()
	}
	if b.dir != "" {
		_ = os.RemoveAll(b.dir)
	}
}

// stopOnError, deferred by a platform's start function, stops what started and clears *p when
// the start failed.
func stopOnError[P interface{ stop() }](p *P, err *error) {
	if *err != nil {
		(*p).stop()
		var none P
		*p = none
	}
}

// stopProcs stops the processes at once and returns when they are all gone; nil ones are skipped.
func stopProcs(procs ...*platoProc) {
	var wg sync.WaitGroup
	for _, pr := range procs {
		if pr != nil {
			wg.Add(1)
			go func() { defer wg.Done(); pr.stop() }()
		}
	}
	wg.Wait()
}

// Lines the roles print on stdout when they are up.
var (
	reGatewayLine = regexp.MustCompile(`gateway\s+(\S+)\s+\(device`)
	reAdminLine   = regexp.MustCompile(`admin\s+(http://\S+)`)
	reRunningLine = regexp.MustCompile(`(Plato is running)`)
)

// platoProc is one platform process: its stdout lines and its log lines of level WARN or ERROR are
// kept, with when they arrived.
type platoProc struct {
	name   string
	cmd    *exec.Cmd
	tail   *tailBuffer
	exited chan struct{}

	mu    sync.Mutex
	lines []string
	logs  []logLine
	more  chan struct{}
}

type logLine struct {
	at   time.Time
	text string
}

// maxLogLines bounds the log lines a process keeps.
const maxLogLines = 500

// startPlatoProc runs command(args...) with env added to its environment: the command's own when it
// sets one, else this process's less any PLATO_ setting (the caller's environment must not
// reconfigure the bench's platform).
func startPlatoProc(command func(args ...string) *exec.Cmd, name string, env []string, args ...string) (*platoProc, error) {
	cmd := command(args...)
	base := cmd.Env
	if base == nil {
		base = withoutPlatoEnv(os.Environ())
	}
	// Gateways of one run side by side each get their own WebSocket port, state servers their own
	// HTTP API port (env may say otherwise).
	cmd.Env = append(append(base, "PLATO_GATEWAY__WS_ADDR=127.0.0.1:0", "PLATO_STATE__HTTP_ADDR=127.0.0.1:0"), env...)
	detach(cmd)
	p := &platoProc{name: name, cmd: cmd, tail: &tailBuffer{max: 8192}, exited: make(chan struct{}), more: make(chan struct{}, 1)}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s (%s): %w", name, cmd.Path, err)
	}
	var readers sync.WaitGroup
	readers.Add(2)
	go func() {
		defer readers.Done()
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			p.mu.Lock()
			p.lines = append(p.lines, sc.Text())
			p.mu.Unlock()
			p.signal()
		}
	}()
	go func() {
		defer readers.Done()
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(p.tail, line)
			if strings.Contains(line, "level=WARN") || strings.Contains(line, "level=ERROR") {
				p.mu.Lock()
				if len(p.logs) < maxLogLines {
					p.logs = append(p.logs, logLine{at: time.Now(), text: line})
				}
				p.mu.Unlock()
			}
		}
	}()
	go func() {
		readers.Wait()
		_ = cmd.Wait()
		close(p.exited)
		p.signal()
	}()
	return p, nil
}

func (p *platoProc) signal() {
	select {
	case p.more <- struct{}{}:
	default:
	}
}

// waitLine returns the first submatch of re in the process's stdout, waiting up to limit.
func (p *platoProc) waitLine(ctx context.Context, re *regexp.Regexp, limit time.Duration) (string, error) {
	timer := time.NewTimer(limit)
	defer timer.Stop()
	for {
		p.mu.Lock()
		for _, l := range p.lines {
			if m := re.FindStringSubmatch(l); m != nil {
				p.mu.Unlock()
				return m[len(m)-1], nil
			}
		}
		p.mu.Unlock()
		select {
		case <-p.exited:
			return "", fmt.Errorf("%s exited before it printed %q%s", p.name, re, p.tail.suffix())
		case <-p.more:
		case <-timer.C:
			return "", fmt.Errorf("%s did not print %q within %v%s", p.name, re, limit, p.tail.suffix())
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
}

// kill sends SIGKILL and waits for the process to be gone; it returns when the signal went.
func (p *platoProc) kill() time.Time {
	_ = p.cmd.Process.Kill()
	at := time.Now()
	<-p.exited
	return at
}

// stop sends SIGINT, then SIGKILL if it has not exited within procStopTimeout. A nil process is
// one that never started.
func (p *platoProc) stop() {
	if p == nil {
		return
	}
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.exited:
	case <-time.After(procStopTimeout):
		p.kill()
	}
}

// logsSince returns the WARN and ERROR lines that arrived at or after t.
func (p *platoProc) logsSince(t time.Time) []logLine {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []logLine
	for _, l := range p.logs {
		if !l.at.Before(t) {
			out = append(out, l)
		}
	}
	return out
}

// logTime is the time= of a slog text line, or the time it arrived.
func (l logLine) logTime() time.Time {
	if _, rest, ok := strings.Cut(l.text, "time="); ok {
		v, _, _ := strings.Cut(rest, " ")
		if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
			return t
		}
	}
	return l.at
}

// withoutPlatoEnv drops PLATO_ settings, so the caller's environment cannot reconfigure the
// bench's platform.
func withoutPlatoEnv(env []string) []string {
	out := make([]string, 0, len(env))
	for _, kv := range env {
		if !strings.HasPrefix(kv, "PLATO_") {
			out = append(out, kv)
		}
	}
	return out
}

func freeLoopbackAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// waitGatewayLogin logs a probe device in until the gateway forwards logins to a state server: a
// gateway says where it listens before its registry watch has shown it one, and answers 1210 until
// then.
func waitGatewayLogin(ctx context.Context, gwAddr, appID, tokenSecret string, limit time.Duration) error {
	signer, err := token.NewSigner([]byte(tokenSecret), tokenTTL)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(limit)
	for {
		tok, _ := signer.Issue(appID, "probe", "probe", time.Now(), time.Time{})
		nc, _, _, err := dialLogin(ctx, nil, gwAddr, &protocol.Login{AppID: appID, DID: "probe", UID: "probe", Token: tok})
		if err == nil {
			_, _ = nc.Write(protocol.AppendFrame(nil, protocol.SigClose, 0, 0, (&protocol.Close{Code: protocol.CodeClientClose}).Append(nil)))
			nc.Close()
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("the gateway did not accept a login within %v: %v", limit, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
