package state

import (
	"sync/atomic"

	"github.com/platoim/plato/internal/rpc"
	"github.com/platoim/plato/internal/telemetry"
)

// Peers of the state server's Kitex clients, the index of rpcErrors.
const (
	peerGateway = iota
	peerBusiness
	peerState
	numPeers
)

var peerNames = [numPeers]string{"gateway", "business", "state"}

// metrics are the state server's counters: plain atomics on the hot path, read by Stats and by the
// observable instruments of telemetry.go. Only the ACK latency histogram is an OTel instrument
// itself (it records without attributes, which allocates nothing).
type metrics struct {
	logins, framesIn, uplinks, duplicates atomic.Int64
	closed                                telemetry.Codes           // by reason
	uplinkAcks                            telemetry.Codes           // every UplinkAck, by code
	ackPaths                              [numAckPaths]atomic.Int64 // UplinkAcks by road: reply, push, kept
	ackWaits                              [2]atomic.Int64           // Deliver calls held, by outcome
	hbAckPaths                            [2]atomic.Int64           // HeartbeatAcks by road: reply, push
	downlinks, downlinkAcks               atomic.Int64
	inflightEvicted, heartbeatTimeouts    atomic.Int64
	retransmits, undelivered              atomic.Int64
	resendsEarly                          atomic.Int64 // Resends of a downlink still in the pipeline: not sent
	pipelineRefused                       atomic.Int64
	// overloadRefused counts what the overload manager refused, by action (overload.RefuseLogins...).
	overloadRefused [3]atomic.Int64
	// rejected counts signals a stage rejected or dropped, by signal.
	loginsRejected, uplinksRejected, downlinksRejected atomic.Int64
	// Frames or events that never left: the queue was full, or the RPC carrying them failed.
	pushQueueFull, pushFailed         atomic.Int64
	businessQueueFull, businessFailed atomic.Int64
	businessGaveUp                    atomic.Int64 // events given up after their retries
	rpcErrors                         [numPeers][rpc.NumErrKinds]atomic.Int64
	// Plato's RPC for business servers.
	routesRejected                  atomic.Int64
	pushesDirect, pushesBroadcast   atomic.Int64
	broadcastFailed                 atomic.Int64
	sessionSyncs, sessionSyncFailed atomic.Int64
	deliverRefused                  atomic.Int64
	pushesOverQuota                 atomic.Int64
	// Connections kept for a Resume (docs/protocol.md §11.1).
	parkedNow                             atomic.Int64 // gauge
	parks, parkExpired                    atomic.Int64
	resumes                               telemetry.Codes // by ResumeAck code: 0 resumed, 1208 refused
	pushesQueued, parkedDropped, replayed atomic.Int64
	// Connections moved here from a lost state server, and moved away (this one was thought lost).
	adopted, movedAway atomic.Int64
}

func (m *metrics) rpcError(peer int, err error) { m.rpcErrors[peer][rpc.KindOf(err)].Add(1) }

// Stats is a snapshot of the state server's counters since it started.
type Stats struct {
	Conns             int
	Logins            int64
	Closed            int64
	FramesIn          int64
	Uplinks           int64
	Duplicates        int64
	Downlinks         int64
	DownlinkAcks      int64
	InflightEvicted   int64
	HeartbeatTimeouts int64
	PushErrors        int64
	BusinessErrors    int64
	PipelineRefused   int64
	PipelineRejected  int64
	Retransmits       int64
	Undelivered       int64
	Parked            int64 // connections waiting for a Resume now
	Resumed           int64
	ResumesRefused    int64
	Adopted           int64 // connections moved here from a lost state server
	// UplinkAcks by road (replyacks.go): in a Deliver reply, by Push, kept for a Resume.
	AcksInReply, AcksByPush, AcksKept int64
}

// Stats returns the current counters.
func (s *Server) Stats() Stats {
	m := &s.metrics
	return Stats{
		Conns: s.conns.len(), Logins: m.logins.Load(), Closed: m.closed.Total(), FramesIn: m.framesIn.Load(),
		Uplinks: m.uplinks.Load(), Duplicates: m.duplicates.Load(), Downlinks: m.downlinks.Load(),
		DownlinkAcks: m.downlinkAcks.Load(), InflightEvicted: m.inflightEvicted.Load(),
		HeartbeatTimeouts: m.heartbeatTimeouts.Load(),
		PushErrors:        m.pushQueueFull.Load() + m.pushFailed.Load(),
		BusinessErrors:    m.businessQueueFull.Load() + m.businessFailed.Load() + m.businessGaveUp.Load(),
		PipelineRefused:   m.pipelineRefused.Load(),
		PipelineRejected:  m.loginsRejected.Load() + m.uplinksRejected.Load() + m.downlinksRejected.Load(),
		Retransmits:       m.retransmits.Load(), Undelivered: m.undelivered.Load(),
		Parked: m.parkedNow.Load(), Resumed: m.resumes.Load(0),
		ResumesRefused: m.resumes.Total() - m.resumes.Load(0),
		Adopted:        m.adopted.Load(),
		AcksInReply:    m.ackPaths[ackByReply].Load(), AcksByPush: m.ackPaths[ackByPush].Load(),
		AcksKept: m.ackPaths[ackKept].Load(),
	}
}
