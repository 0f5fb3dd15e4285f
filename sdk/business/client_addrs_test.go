package business

import (
	"slices"
	"testing"
)

func TestSplitAddrs(t *testing.T) {
	for in, want := range map[string][]string{
		"127.0.0.1:8901":                      {"127.0.0.1:8901"},
		"10.0.0.1:8901, 10.0.0.2:8901,":       {"10.0.0.1:8901", "10.0.0.2:8901"},
		"/run/plato/state.sock,10.0.0.2:8901": {"/run/plato/state.sock", "10.0.0.2:8901"},
		" , ":                                 nil,
	} {
		if got := splitAddrs(in); !slices.Equal(got, want) {
			t.Errorf("splitAddrs(%q) = %q, want %q", in, got, want)
		}
	}
}
