package pipeline

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc/health/grpc_health_v1"

	"github.com/platoim/plato/internal/cloexec"
	"github.com/platoim/plato/sdk/stage"
)

// hangTimeouts is how many calls in a row must time out before a plugin counts as hung and is
// killed: one slow batch is the stage's business (its policy applies), three in a row is a
// process that stopped answering.
const hangTimeouts = 3

// proc is one process of a stage (or its in-process Processor): what a batch is sent to.
type proc struct {
	pr       stage.Processor
	client   *plugin.Client // nil in process
	process  *os.Process    // nil in process
	pid      int
	started  time.Time
	inflight atomic.Int64 // batches being processed; a swap or retire waits for zero
	timeouts atomic.Int32 // consecutive timed-out calls
	// answeredAt is the plugin's answer count (stage.Liveness) at the first of those timeouts: an
	// answer since, even a late one, means the plugin is slow, not stuck.
	answeredAt atomic.Uint64
	hung       atomic.Bool // set on the hangTimeouts-th with no answer since: the supervisor kills it
	acts       acts        // what its Init declared (actson.go); set before it becomes current
	stopOnce   sync.Once

	// Plugins only.
	cmd     *exec.Cmd       // its ProcessState says how it ended, once stop returned
	tail    *stderrTail     // its last stderr lines
	gone    <-chan struct{} // closed when the process has terminated (nil: not watched)
	unwatch func()
	sockDir string // holds go-plugin's control socket; removed by stop
}

// startPlugin launches the plugin binary of spec and dispenses its Processor. It does not Describe
// or Init it (startProc does).
func (in *instance) startPlugin(ctx context.Context, spec stageSpec) (*proc, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// The host's sockets (devices, peers) must not reach the plugin: netpoll accepts them without
	// close-on-exec, and a plugin holding a copy keeps the connection up after Plato closes it.
	if err := cloexec.All(); err != nil {
		in.log.Warn("could not keep the host's descriptors from the plugin", "err", err)
	}
	// go-plugin's control socket goes in a directory of the host's, removed when the process is
	// stopped: by default the plugin makes it in the temporary directory and removes it only when it
	// exits cleanly, so each killed or crashed plugin would leave one behind there.
	sockDir, err := os.MkdirTemp("", "plato-stage-ctl-")
	if err != nil {
		return nil, fmt.Errorf("starting plugin %s: a directory for its socket: %w", spec.path, err)
	}
	cmd := exec.Command(spec.path)
	cmd.Env = append(append(os.Environ(), in.p.cfg.Env...), plugin.EnvUnixSocketDir+"="+sockDir)
	cmd.SysProcAttr = pluginProcAttr()
	tail := &stderrTail{}
	cc := &plugin.ClientConfig{
		HandshakeConfig:  stage.Handshake,
		VersionedPlugins: stage.VersionedPlugins(),
		Cmd:              cmd,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		AutoMTLS:         true,
		Logger:           newHCLogger(in.log),
		StartTimeout:     in.p.cfg.StartTimeout,
		// What the plugin writes to os.Stderr after Serve (stray prints, not its logger) still
		// reaches the host's log; its stdout is the handshake's and then discarded.
		SyncStderr: slog.NewLogLogger(in.log.Handler(), slog.LevelInfo).Writer(),
		// Every raw stderr line, for the log line of a crash (go-plugin relays them to Logger
		// too, at the level it parses, which the host's log level may filter out).
		Stderr: tail,
	}
	if spec.pinned {
		sum, err := hex.DecodeString(spec.hash)
		if err != nil {
			_ = os.RemoveAll(sockDir)
			return nil, fmt.Errorf("decoding sha256 of %s: %w", spec.path, err)
		}
		cc.SecureConfig = &plugin.SecureConfig{Checksum: sum, Hash: sha256.New()}
	}
	client := plugin.NewClient(cc)
	pr, err := stage.Dispense(client)
	if err != nil {
		client.Kill() // returns once the stderr reader is done: tail is complete
		_ = os.RemoveAll(sockDir)
		return nil, fmt.Errorf("starting plugin %s: %w%s", spec.path, err, stderrSuffix(tail.last()))
	}
	p := &proc{pr: pr, client: client, started: time.Now(), cmd: cmd, tail: tail, sockDir: sockDir, unwatch: func() {}}
	if cmd.Process != nil {
		p.process, p.pid = cmd.Process, cmd.Process.Pid
		p.gone, p.unwatch = watchExit(p.pid)
	}
	in.log.Info("stage process started", "path", spec.path, "pid", p.pid)
	return p, nil
}

// pingTimeout bounds a health check: go-plugin's own Ping has no deadline, and a frozen process
// would hold the supervisor forever.
const pingTimeout = 2 * time.Second

// healthy checks a plugin over go-plugin's gRPC health service; an in-process stage is always
// healthy.
func (p *proc) healthy(ctx context.Context) error {
	if p.client == nil {
		return nil
	}
	if p.client.Exited() {
		return errors.New("plugin process exited")
	}
	rpc, err := p.client.Client()
	if err != nil {
		return fmt.Errorf("connecting to plugin: %w", err)
	}
	g, ok := rpc.(*plugin.GRPCClient)
	if !ok {
		return fmt.Errorf("pinging plugin: unexpected protocol client %T", rpc)
	}
	ctx, cancel := context.WithTimeout(ctx, pingTimeout)
	defer cancel()
	req := &grpc_health_v1.HealthCheckRequest{Service: plugin.GRPCServiceName}
	resp, err := grpc_health_v1.NewHealthClient(g.Conn).Check(ctx, req)
	if err != nil {
		return fmt.Errorf("pinging plugin: %w", err)
	}
	if st := resp.GetStatus(); st != grpc_health_v1.HealthCheckResponse_SERVING {
		return fmt.Errorf("pinging plugin: status %v", st)
	}
	return nil
}

// exited reports whether the plugin process is gone.
func (p *proc) exited() bool {
	if p.client == nil {
		return false
	}
	select {
	case <-p.gone: // nil: never ready
		return true
	default:
	}
	return p.client.Exited()
}

// stop closes the stage and ends its process gracefully (go-plugin gives it two seconds before a
// SIGKILL), waiting until it is gone and reaped.
func (p *proc) stop() {
	p.stopOnce.Do(func() {
		_ = p.pr.Close()
		if p.client != nil {
			p.client.Kill()
			p.unwatch()
			_ = os.RemoveAll(p.sockDir)
		}
	})
}

// exitStatus says how a stopped plugin process ended ("signal: killed", "exit status 2"), or ""
// while it is unknown.
func (p *proc) exitStatus() string {
	if p.cmd == nil || p.cmd.ProcessState == nil {
		return ""
	}
	return p.cmd.ProcessState.String()
}

// stderrSuffix renders a plugin's last stderr lines for an error message, or "".
func stderrSuffix(lines []string) string {
	if len(lines) == 0 {
		return ""
	}
	return "; the plugin's last stderr lines: " + strings.Join(lines, " | ")
}

// signalKill sends SIGKILL to a hung or dead process; stop then reaps it without the two-second
// grace period (os.Process never signals a pid it has already reaped).
func (p *proc) signalKill() {
	if p.process != nil && !p.exited() {
		_ = p.process.Kill()
	}
}

// fault is why the plugin can no longer be trusted (stage.Fault), or nil.
func (p *proc) fault() error {
	if f, ok := p.pr.(stage.Fault); ok {
		return f.Fault()
	}
	return nil
}

// answered is the plugin's count of answered batches, or 0 when its Processor does not say.
func (pr *proc) answered() uint64 {
	if l, ok := pr.pr.(stage.Liveness); ok {
		return l.Answered()
	}
	return 0
}
