package gateway

import (
	"fmt"

	"github.com/cloudwego/netpoll"
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

// TuneNetpoll sets netpoll's process-wide buffer policy (NetpollReadBuffer, NetpollMinNode). It
// changes package variables of netpoll that every new connection reads, so it is called once, at
// the start of a process, before any netpoll connection or event loop exists: `plato` does it in
// main, and tests in their TestMain.
func TuneNetpoll() error {
	netpoll.LinkBufferCap = NetpollMinNode
	// The zero values keep netpoll's defaults: the poller count, round-robin balancing, copying
	// reads.
	if err := netpoll.Configure(netpoll.Config{BufferSize: NetpollReadBuffer, LoadBalance: netpoll.RoundRobin}); err != nil {
		return fmt.Errorf("gateway: configuring netpoll's buffers: %w", err)
	}
	return nil
}
