package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
)

// workerHandle is the parent's end of one worker, in-process or a child process: the same JSON-line
// protocol either way, so the in-process path (tests, small runs) exercises what children do.
type workerHandle struct {
	id      int
	pid     int
	child   bool
	stdin   io.WriteCloser
	reports chan Report   // closed when the worker's stdout ends
	exited  chan struct{} // closed when the worker is gone
	kill    func()
	tail    *tailBuffer // the end of its stderr (and any stray stdout), for error messages

	mu     sync.Mutex
	closed bool
}

// startWorker starts worker id. Without a WorkerCommand it runs RunWorker in this process.
func (r *runner) startWorker(id int) (*workerHandle, error) {
	h := &workerHandle{id: id, reports: make(chan Report, 64), exited: make(chan struct{}), tail: &tailBuffer{max: 4096}}
	var stdout io.ReadCloser
	if r.opts.WorkerCommand == nil {
		inR, inW := io.Pipe()
		outR, outW := io.Pipe()
		h.stdin, stdout, h.pid = inW, outR, os.Getpid()
		h.kill = func() { inW.Close() } // stdin EOF: the worker stops at once
		go func() {
			defer close(h.exited)
			// Not the run's context: a worker ends by command, stdin EOF or its own deadline, so
			// an interrupted run still collects every worker's result.
			err := RunWorker(context.Background(), inR, outW)
			outW.CloseWithError(err)
		}()
	} else {
		cmd := r.opts.WorkerCommand()
		detach(cmd)
		var err error
		if h.stdin, err = cmd.StdinPipe(); err != nil {
			return nil, err
		}
		if stdout, err = cmd.StdoutPipe(); err != nil {
			return nil, err
		}
		cmd.Stderr = h.tail
		if err := cmd.Start(); err != nil {
			return nil, fmt.Errorf("starting worker %d (%s): %w", id, cmd.Path, err)
		}
		h.pid, h.child = cmd.Process.Pid, true
		h.kill = func() { _ = cmd.Process.Kill() }
		go func() {
			defer close(h.exited)
			_ = cmd.Wait()
		}()
	}
	go h.readReports(stdout)
	return h, nil
}

func (h *workerHandle) readReports(stdout io.ReadCloser) {
	defer close(h.reports)
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 64<<10), 64<<20) // a result carries histograms and per-second series
	for sc.Scan() {
		var rep Report
		if err := json.Unmarshal(sc.Bytes(), &rep); err != nil || rep.Type == "" {
			fmt.Fprintf(h.tail, "stdout: %s\n", sc.Bytes())
			continue
		}
		h.reports <- rep
	}
	// Unblock a worker still writing after a scan error, so it can exit.
	_, _ = io.Copy(io.Discard, stdout)
}

// send writes one line to the worker's stdin.
func (h *workerHandle) send(v any) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return fmt.Errorf("worker %d: stdin closed", h.id)
	}
	var b []byte
	if s, ok := v.(string); ok {
		b = []byte(s + "\n")
	} else {
		var err error
		if b, err = json.Marshal(v); err != nil {
			return err
		}
		b = append(b, '\n')
	}
	_, err := h.stdin.Write(b)
	return err
}

// finish closes stdin (the worker exits on EOF) and waits for it, killing it after grace.
func (h *workerHandle) finish(grace time.Duration) {
	h.mu.Lock()
	if !h.closed {
		h.closed = true
		h.stdin.Close()
	}
	h.mu.Unlock()
	select {
	case <-h.exited:
	case <-time.After(grace):
		h.kill()
		<-h.exited
	}
}

// next waits for the worker's next report of one of types (ticks go to onTick), until deadline.
func (h *workerHandle) next(deadline time.Time, onTick func(Report), types ...string) (Report, error) {
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	for {
		select {
		case rep, ok := <-h.reports:
			if !ok {
				return Report{}, fmt.Errorf("worker %d ended without a %s report%s", h.id, strings.Join(types, "/"), h.tail.suffix())
			}
			if rep.Type == repError {
				return Report{}, fmt.Errorf("worker %d: %s%s", h.id, rep.Error, h.tail.suffix())
			}
			if rep.Type == repTick {
				if onTick != nil {
					onTick(rep)
				}
				continue
			}
			for _, t := range types {
				if rep.Type == t {
					return rep, nil
				}
			}
		case <-timer.C:
			return Report{}, fmt.Errorf("worker %d: no %s report by %s%s", h.id, strings.Join(types, "/"), deadline.Format(time.TimeOnly), h.tail.suffix())
		}
	}
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append(t.b[:0], t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

// suffix is ": <tail>" for an error message, or "" when nothing was written.
func (t *tailBuffer) suffix() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := strings.TrimSpace(string(t.b))
	if s == "" {
		return ""
	}
	return "; its output ends with:\n" + s
}
