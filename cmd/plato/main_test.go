package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/platoim/plato/core/platform/platformtest"
)

// TestMain removes the binaries the tests built: plato is 60 MB and each plugin 20 MB, and a
// machine that runs the tests many times fills its disk with them otherwise.
func TestMain(m *testing.M) {
	code := m.Run()
	if binPath != "" {
		_ = os.RemoveAll(filepath.Dir(binPath))
	}
	platformtest.RemoveBuiltPlugins()
	os.Exit(code)
}
