package state

import "sync/atomic"

type metrics struct {
	logins, closed, framesIn, uplinks, duplicates atomic.Int64
	downlinks, downlinkAcks, inflightEvicted      atomic.Int64
	heartbeatTimeouts, pushErrors, businessErrors atomic.Int64
	pipelineRefused, pipelineRejected             atomic.Int64
	retransmits, undelivered                      atomic.Int64
}

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
}

// Stats returns the current counters.
func (s *Server) Stats() Stats {
	m := &s.metrics
	return Stats{
		Conns: s.conns.len(), Logins: m.logins.Load(), Closed: m.closed.Load(), FramesIn: m.framesIn.Load(),
		Uplinks: m.uplinks.Load(), Duplicates: m.duplicates.Load(), Downlinks: m.downlinks.Load(),
		DownlinkAcks: m.downlinkAcks.Load(), InflightEvicted: m.inflightEvicted.Load(),
		HeartbeatTimeouts: m.heartbeatTimeouts.Load(), PushErrors: m.pushErrors.Load(), BusinessErrors: m.businessErrors.Load(),
		PipelineRefused: m.pipelineRefused.Load(), PipelineRejected: m.pipelineRejected.Load(),
		Retransmits: m.retransmits.Load(), Undelivered: m.undelivered.Load(),
	}
}
