package buildinfo

import (
	"runtime/debug"
	"strings"
	"testing"
	"time"
)

func TestRead(t *testing.T) {
	bi := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "github.com/platoim/plato", Version: "v0.0.0-20261205052604-7806741aabbc+dirty"},
		Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "7806741aabbccddeeff00112233445566778899"},
			{Key: "vcs.modified", Value: "true"},
			{Key: "vcs.time", Value: "2026-12-05T05:26:04Z"},
		}}
	in := read(bi, true)
	want := Info{Version: bi.Main.Version, Revision: "7806741aabbccddeeff00112233445566778899", Dirty: true,
		Time: time.Date(2026, 12, 5, 5, 26, 4, 0, time.UTC), GoVersion: "go1.26.8"}
	if in != want {
		t.Fatalf("read: %+v, want %+v", in, want)
	}
	if got := in.Short(); got != bi.Main.Version {
		t.Errorf("Short: %q: the pseudo-version already names the revision and the dirty tree", got)
	}
	s := in.String()
	for _, w := range []string{"version   v0.0.0-", "revision  7806741aabbccddeeff00112233445566778899 (dirty", "time      2026-12-05T05:26:04Z", "go        go1.26.8"} {
		if !strings.Contains(s, w) {
			t.Errorf("String lacks %q:\n%s", w, s)
		}
	}

	tagged := read(&debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v1.2.0"},
		Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "abcdef0123456789"}}}, true)
	if got := tagged.Short(); got != "v1.2.0 abcdef012345" {
		t.Errorf("Short of a tag: %q", got)
	}
	devel := read(&debug.BuildInfo{GoVersion: "go1.26.8"}, true)
	if devel.Version != "(devel)" || !strings.Contains(devel.String(), "revision  unknown") {
		t.Errorf("no version, no VCS: %+v\n%s", devel, devel.String())
	}
	if read(nil, false).Version != "unknown" {
		t.Error("no build info: want unknown")
	}
	if Get().GoVersion == "" {
		t.Error("Get: this test binary has build info with a Go version")
	}
}
