// Command retransmit is Plato's reference retransmit stage as a plugin binary: it resends
// unacknowledged downlinks with exponential backoff and reports the ones it gives up on (see
// package retransmitstage). The state server starts it; it is not run by hand.
package main

import (
	"github.com/platoim/plato/plugins/retransmit/retransmitstage"
	"github.com/platoim/plato/sdk/stage"
)

func main() { stage.Serve(retransmitstage.New()) }
