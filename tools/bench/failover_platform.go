package bench

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/platoim/plato/internal/natsd"
	"github.com/platoim/plato/sdk/protocol"
	"github.com/platoim/plato/sdk/token"
)

// The failover scenario's own platform: an embedded NATS server and the business server in this
// process, two state servers and one gateway as processes of the plato binary (Options.PlatoCommand),
// all on 127.0.0.1, configured by one file in a temporary directory and an environment override
// per process (PLATO_STATE__ID, PLATO_STATE__ADDR, the app's business address). Everything stops,
// and the directory goes, with stop.

// Bounds of the platform's own steps.
const (
	procStartTimeout = 30 * time.Second // until a process prints where it listens
	procStopTimeout  = 15 * time.Second // SIGINT to exit, then SIGKILL
	// registryTTL is how long a killed state server stays in the registry.
	registryTTL = 3 * time.Second
)

// Names of the two state servers; the first is the one killed.
var foStateIDs = [2]string{"state-1", "state-2"}

const (
	victim   = 0
	survivor = 1
)

type foPlatform struct {
	command func(args ...string) *exec.Cmd
	dir     string
	cfg     string
	appID   string
	nats    *natsd.Server
	biz     *foBusiness

	tokenSecret, appKey string
	stateAddr           [2]string
	states              [2]*foProc
	gw                  *foProc
	gwAddr              string
	adminURL            string
}

// startFoPlatform starts NATS, the business server, the state servers and the gateway, and
// returns once the gateway forwards logins to both state servers. On error what started is
// stopped.
func startFoPlatform(ctx context.Context, o Options) (p *foPlatform, err error) {
	p = &foPlatform{command: o.PlatoCommand, appID: o.AppID}
	defer func() {
		if err != nil {
			p.stop()
			p = nil
		}
	}()
	if p.dir, err = os.MkdirTemp("", "plato-bench-failover-"); err != nil {
		return p, err
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	if p.nats, err = natsd.Start(ctx, natsd.Config{Host: "127.0.0.1", Port: 0, StoreDir: filepath.Join(p.dir, "nats")}, quiet); err != nil {
		return p, fmt.Errorf("starting NATS: %w", err)
	}
	if p.biz, err = startFoBusiness(2); err != nil {
		return p, err
	}
	p.tokenSecret, p.appKey = randomHex(24), randomHex(16)
	for i := range p.stateAddr {
		if p.stateAddr[i], err = freeLoopbackAddr(); err != nil {
			return p, err
		}
	}
	p.cfg = filepath.Join(p.dir, "plato.yaml")
	if err = os.WriteFile(p.cfg, []byte(foConfig(p.dir, p.nats.ClientURL(), p.tokenSecret, o.AppID, p.appKey, randomHex(24), p.biz.addr(0))), 0o600); err != nil {
		return p, err
	}
	for i := range p.states {
		if err = p.startState(ctx, i); err != nil {
			return p, err
		}
	}
	p.gw, err = startFoProc(p.command, "gateway", []string{"PLATO_ADMIN__ADDR=127.0.0.1:0"}, "gateway", "--config", p.cfg)
	if err != nil {
		return p, err
	}
	if p.gwAddr, err = p.gw.waitLine(ctx, reGatewayLine, procStartTimeout); err != nil {
		return p, err
	}
	if p.adminURL, err = p.gw.waitLine(ctx, reAdminLine, time.Second); err != nil {
		p.adminURL = "" // the metrics are a cross-check only
	}
	if err = p.waitBothStates(ctx, 30*time.Second); err != nil {
		return p, err
	}
	return p, nil
}

// foConfig is the platform's configuration file: state server i gets its ID, address and business
// address from its environment.
func foConfig(dir, natsURL, tokenSecret, app, appKey, jwtSecret, business string) string {
	return fmt.Sprintf(`# written by plato bench failover
data_dir: %q
log: {level: warn}
nats: {url: %q}
registry: {ttl: %s}
auth: {token_secret: %q}
admin: {addr: ""}
ipconf: {addr: "127.0.0.1:0"}
gateway: {id: gw-bench, addr: "127.0.0.1:0"}
apps:
  %s:
    business: %q
    keys: {bench: %q}
    auth: {jwt: {secrets: {bench: %q}}}
    limits: {device_uplinks_per_sec: 1000000, device_uplink_burst: 1000000, device_bytes_per_sec: 1000000000}
`, filepath.Join(dir, "data"), natsURL, registryTTL, tokenSecret, app, business, appKey, jwtSecret)
}

// startState starts state server i (again, after a kill: same ID and address).
func (p *foPlatform) startState(ctx context.Context, i int) error {
	env := []string{
		"PLATO_STATE__ID=" + foStateIDs[i], "PLATO_STATE__ADDR=" + p.stateAddr[i],
		"PLATO_APPS__" + strings.ToUpper(p.appID) + "__BUSINESS=" + p.biz.addr(i),
	}
	pr, err := startFoProc(p.command, foStateIDs[i], env, "state", "--config", p.cfg)
	if err != nil {
		return err
	}
	p.states[i] = pr
	_, err = pr.waitLine(ctx, reRunningLine, procStartTimeout)
	return err
}

// waitBothStates logs probe devices in until the business has heard of one through each state
// server: the gateway then knows both, and the fleet's devices spread over them.
func (p *foPlatform) waitBothStates(ctx context.Context, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	var seen [2]bool
	for k := 0; !(seen[0] && seen[1]); k++ {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("the gateway did not forward logins to both state servers within %v (through %v)", limit, seen)
		}
		did := "probe-" + strconv.Itoa(k)
		pr, err := p.probe(ctx, did)
		if err != nil {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		pr.close()
		if s := pr.state; s >= 0 {
			seen[s] = true
		}
	}
	return nil
}

// probeConn is a device logged in outside the fleet, to see where logins go.
type probeConn struct {
	nc    net.Conn
	state int // the state server the business heard its login from, or -1
}

func (c *probeConn) close() {
	_, _ = c.nc.Write(protocol.AppendFrame(nil, protocol.SigClose, 0, 0, (&protocol.Close{Code: protocol.CodeClientClose}).Append(nil)))
	c.nc.Close()
}

// probe logs did in, sends one uplink and waits for its ACK, then for the business to say which
// state server it came through.
func (p *foPlatform) probe(ctx context.Context, did string) (*probeConn, error) {
	signer, err := token.NewSigner([]byte(p.tokenSecret), tokenTTL)
	if err != nil {
		return nil, err
	}
	tok, _ := signer.Issue(p.appID, did, did, time.Now(), time.Time{})
	nc, br, _, err := dialLogin(ctx, nil, p.gwAddr, &protocol.Login{AppID: p.appID, DID: did, UID: did, Token: tok, Platform: "plato-bench/1"})
	if err != nil {
		return nil, err
	}
	c := &probeConn{nc: nc, state: -1}
	_ = nc.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := nc.Write(protocol.AppendFrame(nil, protocol.SigUplink, 0, 1, []byte(`{"to":"probe","text":"1"}`))); err != nil {
		c.close()
		return nil, fmt.Errorf("probe uplink: %s", errClass(err))
	}
	for {
		f, _, err := protocol.ReadFrame(br, protocol.DefaultMaxBody, nil)
		if err != nil {
			c.close()
			return nil, fmt.Errorf("probe uplink ack: %s", errClass(err))
		}
		if f.Signal == protocol.SigUplinkAck {
			var ack protocol.Ack
			if err := ack.Decode(f.Body); err != nil || ack.Code != protocol.CodeOK {
				c.close()
				return nil, fmt.Errorf("probe uplink ack code %d", ack.Code)
			}
			break
		}
	}
	_ = nc.SetDeadline(time.Time{})
	// The CONNECTED event travels apart from the uplink: wait for it a little.
	for end := time.Now().Add(2 * time.Second); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
		if c.state = p.biz.stateOf(did); c.state >= 0 {
			break
		}
	}
	return c, nil
}

// gatewayMetric reads one counter from the gateway's /metrics, or -1.
func (p *foPlatform) gatewayMetric(name string) float64 {
	if p.adminURL == "" {
		return -1
	}
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(p.adminURL + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	return metricValue(resp.Body, name)
}

// metricValue finds name's value in Prometheus text (the sum over its label sets), or -1.
func metricValue(r io.Reader, name string) float64 {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	sum, found := 0.0, false
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, name)
		if !ok || (rest != "" && rest[0] != ' ' && rest[0] != '{') {
			continue
		}
		f := strings.Fields(rest[strings.LastIndexByte(rest, '}')+1:])
		if len(f) == 0 {
			continue
		}
		if v, err := strconv.ParseFloat(f[0], 64); err == nil {
			sum, found = sum+v, true
		}
	}
	if !found {
		return -1
	}
	return sum
}

// stop stops the gateway, the state servers, NATS and the business server, and removes the
// directory.
func (p *foPlatform) stop() {
	var wg sync.WaitGroup
	if p.gw != nil {
		p.gw.stop()
	}
	for _, s := range p.states {
		if s != nil {
			wg.Add(1)
			go func() { defer wg.Done(); s.stop() }()
		}
	}
	wg.Wait()
	if p.nats != nil {
		p.nats.Shutdown()
	}
	if p.biz != nil {
		p.biz.stop()
	}
	if p.dir != "" {
		_ = os.RemoveAll(p.dir)
	}
}

// Lines the roles print on stdout when they are up.
var (
	reGatewayLine = regexp.MustCompile(`gateway\s+(\S+)\s+\(device`)
	reAdminLine   = regexp.MustCompile(`admin\s+(http://\S+)`)
	reRunningLine = regexp.MustCompile(`(Plato is running)`)
)

// foProc is one platform process: its stdout lines and its log lines of level WARN or ERROR are
// kept, with when they arrived.
type foProc struct {
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

// startFoProc runs command(args...) with env added to its environment: the command's own when it
// sets one, else this process's less any PLATO_ setting (the caller's environment must not
// reconfigure the bench's platform).
func startFoProc(command func(args ...string) *exec.Cmd, name string, env []string, args ...string) (*foProc, error) {
	cmd := command(args...)
	base := cmd.Env
	if base == nil {
		base = withoutPlatoEnv(os.Environ())
	}
	cmd.Env = append(base, env...)
	detach(cmd)
	p := &foProc{name: name, cmd: cmd, tail: &tailBuffer{max: 8192}, exited: make(chan struct{}), more: make(chan struct{}, 1)}
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

func (p *foProc) signal() {
	select {
	case p.more <- struct{}{}:
	default:
	}
}

// waitLine returns the first submatch of re in the process's stdout, waiting up to limit.
func (p *foProc) waitLine(ctx context.Context, re *regexp.Regexp, limit time.Duration) (string, error) {
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
func (p *foProc) kill() time.Time {
	_ = p.cmd.Process.Kill()
	at := time.Now()
	<-p.exited
	return at
}

// stop sends SIGINT, then SIGKILL if it has not exited within procStopTimeout.
func (p *foProc) stop() {
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
func (p *foProc) logsSince(t time.Time) []logLine {
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

var errNoPlatoCommand = errors.New("the failover scenario starts state servers and a gateway: it needs the plato binary (Options.PlatoCommand)")
