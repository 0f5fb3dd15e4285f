package gateway

import (
	"fmt"
	"log/slog"

	"github.com/cloudwego/netpoll"

	"github.com/platoim/plato/internal/taskrun"
)

// netpoll's buffer policy for a process that holds many mostly idle device connections.
//
// netpoll gives every connection, at accept, a read node of its default buffer size (8 KiB) and,
// at the first write, a write node of at least LinkBufferCap (4 KiB); both stay with the
// connection for its life, however rarely it talks (docs/netpoll-proposal.md). A device sends a
// heartbeat of 20 bytes a minute and the odd uplink of a few hundred, so small nodes cost it
// nothing, and netpoll grows a busy connection's reads on its own (its book size doubles each time
// a read fills the node) and sizes a write node to the frame when the frame is larger.
const (
	// NetpollReadBuffer is the read node a new connection gets: a Login with its token fits.
	NetpollReadBuffer = 512
	// NetpollMinNode is the smallest node netpoll allocates: the write node an idle connection
	// keeps after its last write holds at least this much.
	NetpollMinNode = 128
)

// netpollRunner runs netpoll's tasks in this process once TuneNetpoll installed it (netpoll's
// runner is process-wide, as its buffer policy is): set once, before any connection exists.
var netpollRunner *taskrun.Runner

// NetpollIdleWorkers reports the goroutines netpoll's runner keeps waiting for tasks (at most
// taskrun.MaxIdle), 0 before TuneNetpoll: a test that counts goroutines leaves them out.
func NetpollIdleWorkers() int {
	if netpollRunner == nil {
		return 0
	}
	return netpollRunner.Idle()
}

// TuneNetpoll sets netpoll's process-wide buffer policy (NetpollReadBuffer, NetpollMinNode) and
// its task runner (taskrun.Runner: workers that keep their stacks between tasks). It
// changes package variables of netpoll that every new connection reads, so it is called once, at
// the start of a process, before any netpoll connection or event loop exists: `plato` does it in
// main, and tests in their TestMain.
func TuneNetpoll() error {
	netpoll.LinkBufferCap = NetpollMinNode
	netpollRunner = taskrun.NewRunner(func(r any, stack []byte) {
		slog.Error("a netpoll task panicked", "panic", r, "stack", string(stack))
	})
	// The zero values keep netpoll's defaults: the poller count, round-robin balancing, copying
	// reads.
	if err := netpoll.Configure(netpoll.Config{BufferSize: NetpollReadBuffer, LoadBalance: netpoll.RoundRobin, Runner: netpollRunner.Run}); err != nil {
		return fmt.Errorf("gateway: configuring netpoll's buffers: %w", err)
	}
	return nil
}
