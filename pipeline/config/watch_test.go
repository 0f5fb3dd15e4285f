package config

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/platoim/plato/sdk/poll"
)

// recorder collects the app IDs Watch reports.
type recorder struct {
	mu   sync.Mutex
	apps []string
}

func (r *recorder) onChange(app string) {
	r.mu.Lock()
	r.apps = append(r.apps, app)
	r.mu.Unlock()
}

// take returns and forgets what was reported so far.
func (r *recorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.apps
	r.apps = nil
	return out
}

// waitFor polls until cond holds, calling poke (when not nil) between tries.
func waitFor(t *testing.T, what string, cond func() bool, poke func()) {
	t.Helper()
	poll.Until(t, what, func() bool {
		if cond() {
			return true
		}
		if poke != nil {
			poke()
		}
		return false
	})
}

func TestWatch(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "chat.yaml"), oneStage)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rec := &recorder{}
	done := make(chan error, 1)
	go func() { done <- Watch(ctx, dir, rec.onChange) }()

	// all is every report so far; phase the reports of the current step, without the default.yaml
	// ones, which the first step may leave behind.
	var all, phase []string
	collect := func() {
		for _, app := range rec.take() {
			all = append(all, app)
			if app != DefaultAppID {
				phase = append(phase, app)
			}
		}
	}
	count := func(app string) (n int) {
		for _, a := range all {
			if a == app {
				n++
			}
		}
		return n
	}

	// A plain write. Watch may not be watching yet: write again until it reports.
	waitFor(t, "default.yaml written", func() bool { collect(); return count(DefaultAppID) > 0 }, func() {
		writeFile(t, filepath.Join(dir, "default.yaml"), oneStage)
	})

	// An editor's save: write a hidden temporary file, rename it over the original. One report,
	// and none for the temporary file.
	phase = nil
	tmp := filepath.Join(dir, ".chat.yaml.swp")
	writeFile(t, tmp, oneStage+"    timeout: 1s\n")
	if err := os.Rename(tmp, filepath.Join(dir, "chat.yaml")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "chat.yaml renamed over", func() bool { collect(); return count("chat") == 1 }, nil)

	// Files that are not pipelines are ignored; a removal is reported.
	phase = nil
	writeFile(t, filepath.Join(dir, "notes.txt"), "x")
	if err := os.Remove(filepath.Join(dir, "chat.yaml")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "chat.yaml removed", func() bool { collect(); return count("chat") == 2 }, nil)

	// A burst touching several files reports each once, in order.
	phase = nil
	for i := 0; i < 5; i++ {
		writeFile(t, filepath.Join(dir, "b.yml"), oneStage)
		writeFile(t, filepath.Join(dir, "a.yaml"), oneStage)
	}
	waitFor(t, "a and b", func() bool { collect(); return count("a") > 0 && count("b") > 0 }, nil)
	if len(phase) == 2 && !slices.Equal(phase, []string{"a", "b"}) { // more: a slow machine split the burst
		t.Errorf("burst reported as %v, want [a b]", phase)
	}
	// The save above was one report, and nothing else was ever reported.
	if n := count("chat"); n != 2 {
		t.Errorf("chat reported %d times (a save and a removal), want 2: %v", n, all)
	}
	for _, app := range all {
		if !slices.Contains([]string{DefaultAppID, "chat", "a", "b"}, app) {
			t.Errorf("unexpected report %q: %v", app, all)
		}
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Watch returned %v after ctx ended, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Watch did not return after ctx ended")
	}
}

func TestWatchMissingDir(t *testing.T) {
	err := Watch(context.Background(), filepath.Join(t.TempDir(), "nope"), func(string) {})
	if err == nil {
		t.Fatal("watching a missing directory succeeded")
	}
}

func TestWatchDirRemoved(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pipelines")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	done := make(chan error, 1)
	go func() { done <- Watch(context.Background(), dir, rec.onChange) }()
	// Wait until Watch is watching: a write is reported.
	waitFor(t, "watching", func() bool { return len(rec.take()) > 0 }, func() {
		writeFile(t, filepath.Join(dir, "x.yaml"), oneStage)
	})
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err == nil {
			t.Error("Watch returned nil when its directory was removed")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Watch did not return when its directory was removed")
	}
}

// A Kubernetes ConfigMap volume swaps all files at once by replacing the ..data symlink; the
// files' own names see no event, so every app in the directory is reported.
func TestWatchConfigMapSwap(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "chat.yaml"), oneStage)
	writeFile(t, filepath.Join(dir, "default.yaml"), oneStage)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rec := &recorder{}
	go func() { _ = Watch(ctx, dir, rec.onChange) }()
	var seen []string
	n := 0
	waitFor(t, "chat and default after a ..data swap", func() bool {
		seen = append(seen, rec.take()...)
		return slices.Contains(seen, "chat") && slices.Contains(seen, DefaultAppID)
	}, func() {
		n++
		tmp := filepath.Join(dir, "..data_tmp")
		if err := os.Symlink(fmt.Sprintf("..%d", n), tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
			t.Fatal(err)
		}
	})
}
