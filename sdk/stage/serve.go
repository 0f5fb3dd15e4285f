package stage

import (
	"math"
	"os"
	"time"

	plugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/platoim/plato/sdk/gcfloor"
)

// parentPollInterval is how often a plugin checks that its host is still alive.
const parentPollInterval = time.Second

// PluginGCHeapFloor is the heap a plugin process may grow to before Go's collector runs, however
// little of it is live (sdk/gcfloor); GOGC in the plugin's environment turns it off.
const PluginGCHeapFloor = 16 << 20

// Serve is the whole main of a stage plugin:
//
//	func main() { stage.Serve(&myStage{}) }
//
// It answers go-plugin's handshake, serves s over gRPC until the host stops the plugin, and then
// returns (or exits the process). Nothing may be written to stdout before Serve: the first line on
// stdout is go-plugin's handshake, and anything before it makes the host refuse the plugin. After
// Serve has started, go-plugin redirects os.Stdout and os.Stderr into its own stream, so stray
// prints no longer break anything, but they are not logs either: log through InitRequest.Logger,
// which writes JSON lines to the real stderr that the host relays at their level under the stage's
// name.
//
// Serve also keeps the plugin's heap goal at 16 MiB or more (PluginGCHeapFloor) unless GOGC is set
// in its environment.
//
// A plugin never outlives its host: Serve watches the parent process and exits the process as
// soon as it changes, which is what happens when the host dies, even by SIGKILL.
func Serve(s Stage) {
	logger := newStderrLogger()
	// A plugin holds a few MB and allocates per message: without a floor it is collected every
	// few MB it allocates, a fifth of its CPU at batch 256 (docs/plugins.md, §8 "Memory"). GOGC
	// in the environment turns it off.
	defer gcfloor.Start(PluginGCHeapFloor).Stop()
	ppid := os.Getppid()
	go watchParent(ppid, parentPollInterval, func() {
		logger.Error("stage host process is gone, exiting", "host_pid", ppid)
		os.Exit(1)
	})
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: Handshake,
		VersionedPlugins: map[int]plugin.PluginSet{
			ProtocolVersion: {PluginName: &GRPCPlugin{Stage: s, Logger: logger, NoDataSocket: os.Getenv(rawEnvOff) == "off"}},
		},
		GRPCServer: newGRPCServer,
		Logger:     newHCLogger(),
	})
}

// newGRPCServer is the plugin's gRPC server: go-plugin's TLS options, and no 4 MiB message cap
// (a batch's size is the host's to bound; go-plugin's client side lifts the cap the same way).
func newGRPCServer(opts []grpc.ServerOption) *grpc.Server {
	opts = append(opts, grpc.MaxRecvMsgSize(math.MaxInt32), grpc.MaxSendMsgSize(math.MaxInt32))
	return grpc.NewServer(opts...)
}

// watchParent polls the parent process id every interval and calls gone once it changes: the
// host died and the plugin was re-parented.
func watchParent(ppid int, interval time.Duration, gone func()) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for range t.C {
		if os.Getppid() != ppid {
			gone()
			return
		}
	}
}
