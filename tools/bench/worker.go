package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// RunWorker is a worker process's main: `plato bench --worker` calls it with its stdin and stdout.
// It reads a WorkerSpec line, then commands, and writes Reports (see proto.go). It returns when its
// role is done, when stdin ends, or at the spec's deadline, whichever is first; a fatal error is
// also reported on stdout so the parent can show it.
func RunWorker(ctx context.Context, stdin io.Reader, stdout io.Writer) error {
	br := bufio.NewReader(stdin)
	spec, err := readSpec(br)
	if err != nil {
		return err
	}
	out := newReportWriter(stdout)
	ctx, cancel := context.WithDeadline(ctx, spec.Deadline)
	defer cancel()
	cmds := make(chan string, 4)
	go func() {
		defer close(cmds)
		for {
			line, err := br.ReadString('\n')
			if line = strings.TrimSpace(line); line != "" {
				select {
				case cmds <- line:
				case <-ctx.Done():
					return
				}
			}
			if err != nil {
				return
			}
		}
	}()
	switch spec.Role {
	case roleDevices:
		err = runDevices(ctx, spec, cmds, out)
	case roleEcho:
		err = runEcho(ctx, spec, cmds, out)
	case roleFailover:
		err = runFailoverDevices(ctx, spec, cmds, out)
	default:
		err = fmt.Errorf("unknown worker role %q", spec.Role)
	}
	if err != nil && !errors.Is(err, errParentGone) {
		_ = out.send(Report{Type: repError, Worker: spec.Worker, Error: err.Error()})
	}
	return err
}

// runEcho is the echo role: serve until the parent says stop or goes away, or the deadline.
func runEcho(ctx context.Context, spec WorkerSpec, cmds <-chan string, out *reportWriter) error {
	s, err := startEcho(spec.Listen)
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.shutdown(sctx)
	}()
	if err := out.send(Report{Type: repListening, Worker: spec.Worker, Addr: s.addr(), PID: os.Getpid()}); err != nil {
		return err
	}
	select {
	case <-cmds:
	case <-ctx.Done():
	}
	return nil
}
