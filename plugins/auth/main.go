// Command auth is Plato's reference authentication stage as a plugin binary: it verifies a
// device's token at login and applies a per-signal ACL afterwards (see package authstage). The
// state server starts it; it is not run by hand.
package main

import (
	"github.com/platoim/plato/plugins/auth/authstage"
	"github.com/platoim/plato/sdk/stage"
)

func main() { stage.Serve(authstage.New()) }
