// Command qosroute is Plato's reference routing stage as a plugin binary: it chooses, for every
// business push, direct or broadcast delivery and the QoS (see package qosroutestage). The state
// server starts it; it is not run by hand.
package main

import (
	"github.com/platoim/plato/plugins/qosroute/qosroutestage"
	"github.com/platoim/plato/sdk/stage"
)

func main() { stage.Serve(qosroutestage.New()) }
