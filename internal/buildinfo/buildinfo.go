// Package buildinfo says which build of Plato is running: the module version and the VCS
// revision the Go toolchain stamped into the binary (runtime/debug.ReadBuildInfo), so that
// `plato version`, every registry entry and the ops console name the same thing.
package buildinfo

import (
	"fmt"
	"runtime/debug"
	"strings"
	"sync"
	"time"
)

// Info is one binary's build.
type Info struct {
	// Version is the main module's version: a tag (v1.2.3), a pseudo-version the toolchain
	// derived from the VCS (v0.0.0-20261205052604-7806741aabbc, "+dirty" when the tree had
	// changes), or "(devel)" when it knew neither.
	Version string `json:"version"`
	// Revision is the VCS commit, Dirty whether the work tree had uncommitted changes, and Time
	// the commit's time; all empty when the binary was built without VCS stamping (go run, or
	// -buildvcs=false).
	Revision string    `json:"revision,omitempty"`
	Dirty    bool      `json:"dirty,omitempty"`
	Time     time.Time `json:"time,omitzero"`
	// GoVersion is the toolchain that built it.
	GoVersion string `json:"go_version"`
}

// read decodes bi; ok false gives an Info that says "unknown".
func read(bi *debug.BuildInfo, ok bool) Info {
	if !ok || bi == nil {
		return Info{Version: "unknown"}
	}
	in := Info{Version: bi.Main.Version, GoVersion: bi.GoVersion}
	if in.Version == "" {
		in.Version = "(devel)"
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			in.Revision = s.Value
		case "vcs.modified":
			in.Dirty = s.Value == "true"
		case "vcs.time":
			if t, err := time.Parse(time.RFC3339, s.Value); err == nil {
				in.Time = t
			}
		}
	}
	return in
}

// get reads the build once: it cannot change while the process runs.
var get = sync.OnceValue(func() Info { return read(debug.ReadBuildInfo()) })

// Get is this binary's build.
func Get() Info { return get() }

// Short is what a registry entry and the console show: the version, and the revision's first 12
// characters when the version does not already carry them, with "+dirty" for a changed tree.
func (in Info) Short() string {
	s := in.Version
	if r := in.Revision; r != "" {
		if len(r) > 12 {
			r = r[:12]
		}
		if !strings.Contains(s, r) {
			s += " " + r
		}
		if in.Dirty && !strings.Contains(s, "dirty") {
			s += "+dirty"
		}
	}
	return s
}

// String is what `plato version` prints: one line per fact.
func (in Info) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "version   %s\n", in.Version)
	rev := in.Revision
	if rev == "" {
		rev = "unknown (built without VCS information: go run, or -buildvcs=false)"
	} else if in.Dirty {
		rev += " (dirty: uncommitted changes)"
	}
	fmt.Fprintf(&b, "revision  %s\n", rev)
	if !in.Time.IsZero() {
		fmt.Fprintf(&b, "time      %s\n", in.Time.UTC().Format(time.RFC3339))
	}
	fmt.Fprintf(&b, "go        %s\n", in.GoVersion)
	return b.String()
}
