package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/platoim/plato/core/gateway"
	"github.com/platoim/plato/core/platform"
	"github.com/platoim/plato/internal/config"
)

// envUpgradeAdminFD names the descriptor of the admin listener an upgrade passes on.
const envUpgradeAdminFD = gateway.EnvUpgradePrefix + "ADMIN_FD"

// runGateway is `plato gateway`: one gateway process, which upgrades itself in place on SIGUSR2 or
// when `plato gateway upgrade` asks on its control socket (docs/operations.md).
func runGateway(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "upgrade" {
		return runGatewayUpgrade(ctx, args[1:], stdout, stderr)
	}
	inh, err := gateway.InheritFromEnv()
	if err != nil {
		return err
	}
	fs := flag.NewFlagSet("plato gateway", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: plato gateway [flags]\n       plato gateway upgrade [--pid N | --control PATH] [flags]\n\nRuns a device gateway. kill -USR2 <pid> or `plato gateway upgrade` replaces its binary in place\nwithout dropping a connection.")
		fs.PrintDefaults()
	}
	var cf commonFlags
	cf.register(fs, roleAddrKeys["gateway"])
	if err := fs.Parse(args); err != nil {
		inh.Fail(err)
		return err
	}
	cfg, err := cf.load(roleAddrKeys["gateway"])
	if err != nil {
		inh.Fail(fmt.Errorf("loading the configuration: %w", err))
		return err
	}
	logger := newLogger(cfg.Log, stderr)
	opts := platform.Options{Builtins: builtins(), Demo: demoServer, Inherit: inh}
	if inh != nil {
		if opts.AdminListener, err = inheritedListener(os.Getenv(envUpgradeAdminFD)); err != nil {
			inh.Fail(err)
			return err
		}
	}
	p, err := platform.Start(ctx, cfg, []string{platform.RoleGateway}, logger, opts)
	if err != nil {
		inh.Fail(err) // a no-op when the gateway said it already
		return err
	}
	printAddresses(stdout, p)
	ctl, err := listenControl(cfg)
	if err != nil {
		logger.Warn("no control socket: plato gateway upgrade cannot reach this process (kill -USR2 still upgrades it)", "err", err)
	}
	up := &upgrader{p: p, cfg: cfg, log: logger, stdout: stdout}
	if ctl != nil {
		go up.serveControl(ctl)
		defer func() { ctl.Close(); _ = os.Remove(ctl.Addr().String()) }()
	}
	usr2 := make(chan os.Signal, 1)
	signal.Notify(usr2, syscall.SIGUSR2)
	defer signal.Stop(usr2)
wait:
	for {
		select {
		case <-usr2:
			go func() { _, _ = up.upgrade(ctx) }()
		case <-p.Gateway.Retired():
			// Everything is the new process's: stop what is left without telling anyone.
			sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			_ = p.Shutdown(sctx)
			cancel()
			up.awaitAnswers()
			fmt.Fprintln(stdout, "handed over to the new process; exiting")
			return nil
		case <-ctx.Done():
			break wait
		}
	}
	fmt.Fprintln(stdout, "shutting down...")
	sctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := p.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutting down: %w", err)
	}
	fmt.Fprintln(stdout, "stopped")
	return nil
}

// ignoreUpgradeSignal keeps a process that is not a `plato gateway` alive on SIGUSR2 (whose
// default is to end it): only gateway processes upgrade in place.
func ignoreUpgradeSignal(ctx context.Context, log *slog.Logger) {
	usr2 := make(chan os.Signal, 1)
	signal.Notify(usr2, syscall.SIGUSR2)
	go func() {
		defer signal.Stop(usr2)
		for {
			select {
			case <-usr2:
				log.Warn("SIGUSR2 ignored: only a plato gateway process upgrades in place (docs/operations.md)")
			case <-ctx.Done():
				return
			}
		}
	}()
}

func inheritedListener(v string) (net.Listener, error) {
	if v == "" {
		return nil, nil
	}
	fd, err := strconv.Atoi(v)
	if err != nil || fd < 3 {
		return nil, fmt.Errorf("%s=%q is not a descriptor", envUpgradeAdminFD, v)
	}
	f := os.NewFile(uintptr(fd), "admin-listener")
	defer f.Close()
	ln, err := net.FileListener(f)
	if err != nil {
		return nil, fmt.Errorf("adopting the admin listener: %w", err)
	}
	return ln, nil
}

// upgrader runs one upgrade at a time for a gateway process.
type upgrader struct {
	p      *platform.Platform
	cfg    config.Config
	log    *slog.Logger
	stdout io.Writer
	// The control connections not answered yet: the process, once retired, waits for them before
	// it exits, or `plato gateway upgrade` would read EOF instead of the outcome of the upgrade that
	// retired it.
	mu        sync.Mutex
	answering int
	retired   bool
	answered  chan struct{} // closed when answering drops to 0 after retired
}

// answersBound is how long a retired process waits for its control answers to be written.
const answersBound = 5 * time.Second

// take counts a control connection to answer; false once the process is retired.
func (u *upgrader) take() bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.retired {
		return false
	}
	u.answering++
	return true
}

func (u *upgrader) answeredOne() {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.answering--
	if u.answering == 0 && u.answered != nil {
		close(u.answered)
		u.answered = nil
	}
}

// awaitAnswers takes no more control connections and waits until those taken are answered, at
// most answersBound.
func (u *upgrader) awaitAnswers() {
	u.mu.Lock()
	u.retired = true
	if u.answering == 0 {
		u.mu.Unlock()
		return
	}
	done := make(chan struct{})
	u.answered = done
	u.mu.Unlock()
	select {
	case <-done:
	case <-time.After(answersBound):
		u.log.Warn("upgrade: exiting before the outcome was written to plato gateway upgrade")
	}
}

// upgrade starts the binary now on disk, with this process's arguments and environment, and
// hands the gateway over to it.
func (u *upgrader) upgrade(ctx context.Context) (gateway.UpgradeResult, error) {
	exe, err := gateway.Executable()
	if err != nil {
		return gateway.UpgradeResult{OldPID: os.Getpid(), Err: err.Error()}, fmt.Errorf("%w: finding the binary: %v", gateway.ErrUpgradeRefused, err)
	}
	opts := gateway.UpgradeOptions{
		Exe: exe, Args: os.Args[1:], Env: gateway.UpgradeEnv(os.Environ()),
		ReadyTimeout: u.cfg.Gateway.Upgrade.ReadyTimeout, Deadline: u.cfg.Gateway.Upgrade.Deadline,
	}
	if u.p.Admin != nil {
		if lf, ok := u.p.Admin.Listener().(interface{ File() (*os.File, error) }); ok {
			if f, err := lf.File(); err == nil {
				defer f.Close()
				opts.ExtraFiles = append(opts.ExtraFiles, f)
				opts.Env = append(opts.Env, envUpgradeAdminFD+"=4")
			}
		}
	}
	u.log.Info("upgrade: starting the new binary", "exe", exe)
	res, err := u.p.Gateway.Upgrade(ctx, opts)
	if err == nil {
		fmt.Fprintf(u.stdout, "upgraded: new pid %d, %d connections handed over in %d ms\n", res.NewPID, res.Handed, res.HandoverMillis)
	}
	return res, err
}

// controlPath is the control socket of the gateway process pid.
func controlPath(cfg config.Config, pid int) (string, error) {
	dir := cfg.Gateway.Upgrade.ControlDir
	if dir == "" {
		dir = cfg.DataDir
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "gateway-"+strconv.Itoa(pid)+".ctl"), nil
}

func listenControl(cfg config.Config) (net.Listener, error) {
	path, err := controlPath(cfg, os.Getpid())
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	_ = os.Remove(path) // left by a process of the same pid that died
	return net.Listen("unix", path)
}

// serveControl answers `plato gateway upgrade`: a line "upgrade" runs an upgrade and answers its
// result as one JSON line.
func (u *upgrader) serveControl(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		if !u.take() {
			c.Close()
			return
		}
		go func() {
			defer u.answeredOne()
			defer c.Close()
			line, err := bufio.NewReader(io.LimitReader(c, 256)).ReadString('\n')
			if err != nil && line == "" {
				return
			}
			var res gateway.UpgradeResult
			switch strings.TrimSpace(line) {
			case "upgrade":
				res, _ = u.upgrade(context.Background())
			default:
				res = gateway.UpgradeResult{OldPID: os.Getpid(), Err: fmt.Sprintf("unknown command %q (want \"upgrade\")", strings.TrimSpace(line))}
			}
			_ = json.NewEncoder(c).Encode(res)
		}()
	}
}

// runGatewayUpgrade is `plato gateway upgrade`: it asks a running gateway process to upgrade in
// place and prints the outcome; it fails when the upgrade was refused.
func runGatewayUpgrade(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("plato gateway upgrade", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cf commonFlags
	cf.registerFile(fs)
	pid := fs.Int("pid", 0, "pid of the gateway process (its control socket is <gateway.upgrade.control_dir>/gateway-<pid>.ctl)")
	control := fs.String("control", "", "path of the gateway's control socket (instead of --pid)")
	timeout := fs.Duration("timeout", 5*time.Minute, "how long to wait for the outcome")
	if err := fs.Parse(args); err != nil {
		return err
	}
	path := *control
	if path == "" {
		cfg, err := cf.load("")
		if err != nil {
			return err
		}
		if *pid > 0 {
			if path, err = controlPath(cfg, *pid); err != nil {
				return err
			}
		} else if path, err = onlyControl(cfg); err != nil {
			return err
		}
	}
	c, err := net.DialTimeout("unix", path, 5*time.Second)
	if err != nil {
		return fmt.Errorf("reaching the gateway's control socket %s: %w", path, err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(*timeout))
	if _, err := io.WriteString(c, "upgrade\n"); err != nil {
		return fmt.Errorf("asking for the upgrade: %w", err)
	}
	var res gateway.UpgradeResult
	if err := json.NewDecoder(c).Decode(&res); err != nil {
		return fmt.Errorf("reading the outcome of the upgrade: %w", err)
	}
	if !res.OK {
		return fmt.Errorf("gateway pid %d: %s", res.OldPID, res.Err)
	}
	fmt.Fprintf(stdout, "upgraded gateway: pid %d -> %d; %d connections handed over in %d ms (new process ready in %d ms), %d redirected, %d frames forwarded\n",
		res.OldPID, res.NewPID, res.Handed, res.HandoverMillis, res.ReadyMillis, res.Redirected, res.Forwarded)
	return nil
}

// onlyControl finds the control socket when exactly one gateway process has one.
func onlyControl(cfg config.Config) (string, error) {
	p, err := controlPath(cfg, 0)
	if err != nil {
		return "", err
	}
	found, _ := filepath.Glob(filepath.Join(filepath.Dir(p), "gateway-*.ctl"))
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		return "", errors.New("no gateway control socket in " + filepath.Dir(p) + ": give --pid or --control")
	default:
		return "", fmt.Errorf("%d gateway control sockets in %s: give --pid or --control", len(found), filepath.Dir(p))
	}
}
