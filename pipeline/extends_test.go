package pipeline

import (
	"strings"
	"testing"
)

// An app whose file extends default.yaml is derived again when default.yaml is reloaded, and keeps
// its chain when the new default.yaml is broken.
func TestReloadOfTheDefaultDerivesTheAppsThatExtendIt(t *testing.T) {
	dir := t.TempDir()
	writePipeline(t, dir, "default", versioned("v1"))
	writePipeline(t, dir, "chat", "version: 1\nextends: default\nstages:\n"+
		stageYAML("extra", "builtin:cfgtag", "uplink", "config: {tag: e}")+"    after: ver\n")
	p := start(t, reloadConfig(dir))
	check := func(app, want string) {
		t.Helper()
		if o := runWait(t, p, uplink(app, 1, 1, "m")); string(o.Payload) != want {
			t.Fatalf("%s: %q, want %q", app, o.Payload, want)
		}
	}
	check("chat", "m|k|v1|e")
	check("other", "m|k|v1")

	writePipeline(t, dir, "default", versioned("v2"))
	if err := p.Reload("default"); err != nil {
		t.Fatal(err)
	}
	check("chat", "m|k|v2|e")
	check("other", "m|k|v2")

	before := p.chainOf("chat")
	writePipeline(t, dir, "default", strings.Replace(versioned("v3"), "builtin:cfgtag", "builtin:nosuch", 1))
	if err := p.Reload("default"); err == nil {
		t.Fatal("a default.yaml naming an unknown builtin was loaded")
	}
	if p.chainOf("chat") != before {
		t.Fatal("the extending app's chain changed although default.yaml was refused")
	}
	check("chat", "m|k|v2|e")
}
