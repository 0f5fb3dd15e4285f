// Command sessionbind is Plato's reference session stage as a plugin binary: at login it asks the
// app's business server which sessions the connection belongs in and joins it to them (see package
// sessionbindstage). The state server starts it; it is not run by hand.
package main

import (
	"github.com/platoim/plato/plugins/sessionbind/sessionbindstage"
	"github.com/platoim/plato/sdk/stage"
)

func main() { stage.Serve(sessionbindstage.New()) }
