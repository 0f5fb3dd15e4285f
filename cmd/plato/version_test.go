package main

import (
	"bytes"
	"encoding/json"
	"runtime"
	"strings"
	"testing"

	"github.com/platoim/plato/internal/buildinfo"
)

// TestVersion: `plato version` prints what the toolchain stamped into the binary, not "dev".
func TestVersion(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"version"}, &out, &errb); code != 0 {
		t.Fatalf("plato version: exit %d: %s", code, errb.String())
	}
	s := out.String()
	if strings.Contains(s, "dev\n") || !strings.Contains(s, "version   ") || !strings.Contains(s, "revision  ") || !strings.Contains(s, "go        "+runtime.Version()) {
		t.Errorf("plato version:\n%s", s)
	}
	out.Reset()
	if code := run([]string{"version", "--json"}, &out, &errb); code != 0 {
		t.Fatalf("plato version --json: exit %d: %s", code, errb.String())
	}
	var in buildinfo.Info
	if err := json.Unmarshal(out.Bytes(), &in); err != nil || in != buildinfo.Get() {
		t.Errorf("plato version --json: %+v %v, want %+v", in, err, buildinfo.Get())
	}
}
