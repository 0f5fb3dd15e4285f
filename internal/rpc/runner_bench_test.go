package rpc_test

import (
	"fmt"
	"os"

	"github.com/cloudwego/netpoll"

	"github.com/platoim/plato/internal/taskrun"
)

// PLATO_BENCH_NETPOLL_RUNNER=1 runs this package's benchmarks with netpoll's tasks on
// taskrun.Runner, as the plato binary does (gateway.TuneNetpoll), instead of netpoll's gopool:
// BenchmarkCall with and without it measures what the runner saves per call (ADR 0014). netpoll
// reads its runner per task, so it is set here, before any connection exists, or not at all.
func init() {
	if os.Getenv("PLATO_BENCH_NETPOLL_RUNNER") != "1" {
		return
	}
	if err := netpoll.Configure(netpoll.Config{Runner: taskrun.NewRunner(nil).Run, LoadBalance: netpoll.RoundRobin}); err != nil {
		fmt.Fprintln(os.Stderr, "configuring netpoll's runner:", err)
		os.Exit(1)
	}
}
