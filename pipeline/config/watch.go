package config

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"time"

	"github.com/fsnotify/fsnotify"
)

// How Watch groups the events of one edit: editors write a temporary file and rename it over the
// original, or truncate and write in several steps.
const (
	// DebounceQuiet is how long the directory must stay quiet before Watch reports a burst.
	DebounceQuiet = 150 * time.Millisecond
	// DebounceMax bounds how long a continuous stream of writes delays the report.
	DebounceMax = time.Second
)

// Watch watches dir for edits to pipeline files and calls onChange with the app ID of each file
// written, created, renamed or removed (DefaultAppID for default.yaml), once per burst of events:
// after the directory has been quiet for DebounceQuiet, or at most DebounceMax after the burst
// began. It does not load anything: the callback reloads (LoadApp) and swaps in the result, and a
// removed file means the app falls back to the default pipeline. Files LoadDir ignores are ignored
// here too. When the watcher may have missed events (its queue overflowed, or the directory's
// contents were swapped at once, as a Kubernetes ConfigMap volume does through ..data), every app
// ID known in the directory is reported.
//
// onChange runs on Watch's goroutine, one call at a time, app IDs in sorted order; while it runs,
// new events wait. Edits made before Watch has started watching are not reported, so a caller
// starts Watch first and loads the directory afterwards (or reloads on the first report).
// Watch returns nil when ctx ends, and an error when dir cannot be watched or is removed.
func Watch(ctx context.Context, dir string, onChange func(appID string)) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watching pipeline directory: %w", err)
	}
	defer w.Close()
	if err := w.Add(dir); err != nil {
		return fmt.Errorf("watching pipeline directory %s: %w", dir, err)
	}
	clean := filepath.Clean(dir)
	known := map[string]bool{}
	rescan := func(pending map[string]bool) {
		files, _ := listDir(dir)
		for app := range files {
			known[app] = true
		}
		for app := range known {
			pending[app] = true
		}
	}
	rescan(map[string]bool{}) // learn the apps present now, so a later rescan reports their removal

	pending := map[string]bool{}
	var quiet, deadline <-chan time.Time
	var quietTimer *time.Timer
	flush := func() {
		quiet, deadline = nil, nil
		apps := make([]string, 0, len(pending))
		for app := range pending {
			apps = append(apps, app)
		}
		sort.Strings(apps)
		clear(pending)
		for _, app := range apps {
			if ctx.Err() != nil {
				return
			}
			onChange(app)
		}
	}
	touch := func() {
		if quietTimer == nil {
			quietTimer = time.NewTimer(DebounceQuiet)
		} else {
			quietTimer.Reset(DebounceQuiet)
		}
		quiet = quietTimer.C
		if deadline == nil {
			deadline = time.After(DebounceMax)
		}
	}
	defer func() {
		if quietTimer != nil {
			quietTimer.Stop()
		}
	}()

	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return errors.New("watching pipeline directory: the watcher stopped")
			}
			if filepath.Clean(ev.Name) == clean && ev.Has(fsnotify.Remove|fsnotify.Rename) {
				return fmt.Errorf("watching pipeline directory %s: it was removed or renamed", dir)
			}
			if ev.Op == fsnotify.Chmod { // a chmod alone changes no content
				continue
			}
			name := filepath.Base(ev.Name)
			if name == "..data" {
				rescan(pending)
				touch()
				continue
			}
			app, ok := pipelineFileName(name)
			if !ok || !ValidAppID(app) {
				continue
			}
			known[app] = true
			pending[app] = true
			touch()
		case err, ok := <-w.Errors:
			if !ok {
				return errors.New("watching pipeline directory: the watcher stopped")
			}
			_ = err // events may have been lost (fsnotify.ErrEventOverflow): report everything
			rescan(pending)
			touch()
		case <-quiet:
			flush()
		case <-deadline:
			flush()
		}
	}
}
