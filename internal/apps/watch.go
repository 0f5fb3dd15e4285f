package apps

import (
	"context"
	"log/slog"
	"os"
	"time"

	"github.com/platoim/plato/internal/config"
	"github.com/platoim/plato/internal/tick"
)

// watchEvery is how often the configuration file is looked at for changes.
const watchEvery = time.Second

// Watch reloads the apps from the configuration file at path whenever it changes, until ctx
// ends: load reads the whole configuration again (file, environment, flags) and Watch takes its
// apps section. A change that does not load or compile is logged and the current apps stay; the
// rest of the configuration needs a restart to change.
func (t *Table) Watch(ctx context.Context, path string, load func() (config.Config, error), opts Options, log *slog.Logger) {
	last := modTime(path)
	tick.Every(ctx, watchEvery, func(time.Time) {
		m := modTime(path)
		if m.Equal(last) {
			return
		}
		last = m
		cfg, err := load()
		if err != nil {
			t.reloadErrors.Add(1)
			log.Error("the configuration changed but does not load; the apps stay as they were", "file", path, "err", err)
			return
		}
		if err := t.Replace(cfg.Apps, opts); err != nil {
			t.reloadErrors.Add(1)
			log.Error("the apps of the new configuration cannot be used; they stay as they were", "file", path, "err", err)
			return
		}
		t.reloads.Add(1)
		log.Info("apps reloaded", "file", path, "apps", t.IDs())
	})
}

func modTime(path string) time.Time {
	fi, err := os.Stat(path)
	if err != nil {
		return time.Time{}
	}
	return fi.ModTime()
}
