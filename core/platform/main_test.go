package platform_test

import (
	"os"
	"testing"

	"github.com/platoim/plato/core/platform/platformtest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	platformtest.RemoveBuiltPlugins()
	os.Exit(code)
}
