package main

import (
	"sort"

	"github.com/platoim/plato/plugins/auth/authstage"
	"github.com/platoim/plato/plugins/qosroute/qosroutestage"
	"github.com/platoim/plato/plugins/retransmit/retransmitstage"
	"github.com/platoim/plato/plugins/sessionbind/sessionbindstage"
	"github.com/platoim/plato/sdk/stage"
)

// builtins are the reference stages a pipeline may run in-process ("plugin: builtin:auth"): the
// same code as the plugin binaries in plugins/, through one explicit registry.
func builtins() map[string]func() stage.Stage {
	return map[string]func() stage.Stage{
		"auth":        authstage.New,
		"qosroute":    qosroutestage.New,
		"retransmit":  retransmitstage.New,
		"sessionbind": sessionbindstage.New,
	}
}

func builtinNames() []string {
	var out []string
	for n := range builtins() {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}
