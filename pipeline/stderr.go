package pipeline

import (
	"bytes"
	"slices"
	"strings"
	"sync"
)

// Bounds of what is kept of a plugin's stderr.
const (
	stderrLines   = 20  // the last lines
	stderrLineMax = 512 // bytes of one line; the rest of it is dropped
)

// stderrTail keeps the last lines a plugin process wrote to its stderr, for the log line of its
// crash: a plugin that panics or gives up says why there, and go-plugin's relay of those lines
// may be filtered out by the log level. go-plugin writes every line to it (ClientConfig.Stderr),
// then a newline, from one reader goroutine; the supervisor reads it once the process is reaped.
type stderrTail struct {
	mu      sync.Mutex
	lines   [stderrLines]string
	n, next int
	partial []byte
	// panic is the first "panic: " or "fatal error: " line, shown even after a long stack trace
	// pushed it out of lines.
	panic string
}

func (t *stderrTail) Write(b []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := len(b)
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			t.add(b)
			break
		}
		t.add(b[:i])
		t.flush()
		b = b[i+1:]
	}
	return n, nil
}

func (t *stderrTail) add(b []byte) {
	if room := stderrLineMax - len(t.partial); room > 0 {
		t.partial = append(t.partial, b[:min(len(b), room)]...)
	}
}

func (t *stderrTail) flush() {
	line := strings.TrimRight(string(t.partial), "\r ")
	t.partial = t.partial[:0]
	if line == "" {
		return
	}
	if t.panic == "" && (strings.HasPrefix(line, "panic: ") || strings.HasPrefix(line, "fatal error: ")) {
		t.panic = line
	}
	t.lines[t.next] = line
	t.next = (t.next + 1) % stderrLines
	t.n = min(t.n+1, stderrLines)
}

// last returns the kept lines, oldest first, after the panic line when it scrolled out.
func (t *stderrTail) last() []string {
	if t == nil {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]string, 0, t.n+3)
	for i := range t.n {
		out = append(out, t.lines[(t.next-t.n+i+stderrLines)%stderrLines])
	}
	if len(t.partial) > 0 {
		out = append(out, string(t.partial))
	}
	if t.panic != "" && !slices.Contains(out, t.panic) {
		out = append([]string{t.panic, "..."}, out...)
	}
	return out
}
