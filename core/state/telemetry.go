package state

import (
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"

	"github.com/platoim/plato/internal/rpc"
	"github.com/platoim/plato/internal/telemetry"
)

// ackLatencyBuckets span a device on the same LAN (a millisecond) to one on a bad mobile link
// retried by the retransmit stage (tens of seconds).
var ackLatencyBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}

// instrument creates the state server's instruments (docs/observability.md). Counters are
// observable: read from the atomics when metrics are collected, so a signal costs an atomic add.
func (s *Server) instrument(meter metric.Meter) (metric.Registration, error) {
	if meter == nil {
		meter = noop.NewMeterProvider().Meter(telemetry.ScopeName)
	}
	var err error
	s.ackLatency, err = meter.Float64Histogram("plato_state_downlink_ack_latency_seconds",
		metric.WithUnit("s"), metric.WithExplicitBucketBoundaries(ackLatencyBuckets...),
		metric.WithDescription("Time from a business Push to the device's DownlinkAck of that downlink."))
	if err != nil {
		return nil, err
	}
	if err := s.instrumentLatency(meter); err != nil {
		return nil, err
	}
	m := &s.metrics
	o := telemetry.NewObservables(meter)
	o.GaugeValue("plato_state_connections", "{connection}", "Logged-in connections (and logins in the pipeline) held.",
		func() int64 { return int64(s.conns.len()) })
	o.CounterValue("plato_state_logins_total", "{login}", "Logins accepted.", m.logins.Load)
	o.CounterByCode("plato_state_connections_closed_total", "{connection}",
		"Logged-in connections forgotten, by reason (close code).", "reason", &m.closed)
	o.CounterValue("plato_state_frames_in_total", "{frame}", "Frames of logged-in connections received from gateways.", m.framesIn.Load)
	o.CounterByCode("plato_state_uplinks_total", "{uplink}",
		"Uplinks answered, by the UplinkAck code: 0 delivered, 2000-2999 the business refused, 1008 duplicate, 1301/1302/1303/1304/1306 failures.",
		"code", &m.uplinkAcks)
	o.Counter("plato_state_uplink_acks_sent_total", "{ack}",
		"UplinkAcks by the road they took: reply (in the reply of the gateway's Deliver call, within state.uplink_ack_wait), push (a Push call to the gateway; the acks kept for a Resume count again here when sent), kept (held for a parked connection).",
		func(emit telemetry.Emit) {
			emit(m.ackPaths[ackByReply].Load(), attribute.String("path", "reply"))
			emit(m.ackPaths[ackByPush].Load(), attribute.String("path", "push"))
			emit(m.ackPaths[ackKept].Load(), attribute.String("path", "kept"))
		})
	o.Counter("plato_state_heartbeat_acks_sent_total", "{ack}",
		"HeartbeatAcks by the road they took: reply (in the reply of the gateway's Deliver call that carried the heartbeat), push (a Push call to the gateway).",
		func(emit telemetry.Emit) {
			emit(m.hbAckPaths[ackByReply].Load(), attribute.String("path", "reply"))
			emit(m.hbAckPaths[ackByPush].Load(), attribute.String("path", "push"))
		})
	o.Counter("plato_state_deliver_waits_total", "{call}",
		"Deliver calls held for the answers of their uplinks, by outcome: answered (every answer waited for came in) or timeout (state.uplink_ack_wait passed first; the rest went by Push).",
		func(emit telemetry.Emit) {
			emit(m.ackWaits[waitAnswered].Load(), attribute.String("result", "answered"))
			emit(m.ackWaits[waitTimedOut].Load(), attribute.String("result", "timeout"))
		})
	o.CounterValue("plato_state_duplicates_total", "{uplink}", "Uplinks with a sequence number not above the last (answered 1008, not delivered).", m.duplicates.Load)
	o.CounterValue("plato_state_downlinks_sent_total", "{downlink}", "Downlinks queued to a gateway for a device (retransmits not included).", m.downlinks.Load)
	o.CounterValue("plato_state_downlink_acks_total", "{ack}", "DownlinkAcks that closed an in-flight downlink.", m.downlinkAcks.Load)
	o.CounterValue("plato_state_downlinks_evicted_total", "{downlink}", "In-flight downlinks forgotten unACKed because a connection reached state.max_inflight.", m.inflightEvicted.Load)
	o.CounterValue("plato_state_heartbeat_timeouts_total", "{connection}", "Connections closed for silence (Close 1201).", m.heartbeatTimeouts.Load)
	o.CounterValue("plato_state_retransmits_total", "{downlink}", "Downlinks sent again, flagged retransmit: on the state server's resend timers, as the retransmit stage's policy says, or by a stage's Host.Resend.", m.retransmits.Load)
	o.CounterValue("plato_state_retransmits_early_total", "{downlink}", "Resends due while the downlink's first copy was still in the pipeline: not sent, the first copy goes out instead.", m.resendsEarly.Load)
	o.CounterValue("plato_state_undelivered_total", "{downlink}", "Downlinks reported UNDELIVERED to the business server: given up on as the retransmit stage's policy says, still tracked when their connection ended, or reported by a stage (Host.Undelivered).", m.undelivered.Load)
	o.GaugeValue("plato_state_parked_connections", "{connection}", "Connections that dropped without a Close and are kept for their device to Resume (state.reconnect_window).", m.parkedNow.Load)
	o.CounterValue("plato_state_parks_total", "{connection}", "Connections parked: their socket dropped without a Close, or for a code the device may resume after.", m.parks.Load)
	o.CounterValue("plato_state_park_expired_total", "{connection}", "Parked connections ended because no Resume came within state.reconnect_window.", m.parkExpired.Load)
	o.CounterByCode("plato_state_resumes_total", "{resume}", "Resumes answered, by the ResumeAck code: 0 resumed, 1208 nothing to resume.", "code", &m.resumes)
	o.Counter("plato_state_connections_moved_total", "{connection}", "Connections moved between state servers by their gateways: in (adopted from a lost state server), out (moved away: this one was thought lost).",
		func(emit telemetry.Emit) {
			emit(m.adopted.Load(), attribute.String("direction", "in"))
			emit(m.movedAway.Load(), attribute.String("direction", "out"))
		})
	o.CounterValue("plato_state_downlinks_replayed_total", "{downlink}", "Downlinks sent again to a resumed or adopted connection (unACKed before the drop or the loss of its state server).", m.replayed.Load)
	o.Counter("plato_state_parked_pushes_total", "{downlink}", "Pushes that reached a parked connection: queued for its Resume, or dropped (the oldest, beyond state.max_parked).",
		func(emit telemetry.Emit) {
			emit(m.pushesQueued.Load(), attribute.String("result", "queued"))
			emit(m.parkedDropped.Load(), attribute.String("result", "dropped"))
		})
	o.CounterValue("plato_state_pipeline_refused_total", "{signal}", "Signals their pipeline lane had no room for: uplinks, logins and pushes refused 1303; heartbeats and ACKs of nothing in flight handled without the pipeline.", m.pipelineRefused.Load)
	o.Counter("plato_state_overload_refused_total", "{signal}",
		"What the overload manager refused with 1303, by action: refuse_logins (Logins and Resumes), refuse_uplinks (uplinks), shed_broadcasts (session pushes that would have been broadcast).",
		func(emit telemetry.Emit) {
			for i, name := range []string{"refuse_logins", "refuse_uplinks", "shed_broadcasts"} {
				emit(m.overloadRefused[i].Load(), attribute.String("action", name))
			}
		})
	s.overload.Instrument(o)
	o.Counter("plato_state_pipeline_rejected_total", "{signal}", "Signals a stage rejected or dropped, by signal.", func(emit telemetry.Emit) {
		emit(m.loginsRejected.Load(), attribute.String("signal", "login"))
		emit(m.uplinksRejected.Load(), attribute.String("signal", "uplink"))
		emit(m.downlinksRejected.Load(), attribute.String("signal", "downlink"))
		emit(m.routesRejected.Load(), attribute.String("signal", "route"))
	})
	o.Counter("plato_state_api_calls_total", "{call}", "Calls of Plato's RPC by business servers, by method and result (ok, or refused: the code).",
		func(emit telemetry.Emit) {
			s.apiCalls.Each(func(method, result string, n int64) {
				emit(n, attribute.String("method", method), attribute.String("result", result))
			})
		})
	o.Counter("plato_state_pushes_total", "{push}", "Business pushes by the path their session part took: direct (RPC to each connection's gateway) or broadcast (one NATS message).",
		func(emit telemetry.Emit) {
			emit(m.pushesDirect.Load(), attribute.String("route", "direct"))
			emit(m.pushesBroadcast.Load(), attribute.String("route", "broadcast"))
		})
	o.Counter("plato_state_app_uplinks_total", "{uplink}",
		"Uplinks answered, by app and result: ok (delivered, or refused by the business or a stage) or failed (13xx: Plato could not deliver it).",
		func(emit telemetry.Emit) {
			s.perApp.Each(func(app string, c *appCounters) {
				failed := c.uplinkFailures.Load()
				emit(c.uplinks.Load()-failed, attribute.String("app", app), attribute.String("result", "ok"))
				emit(failed, attribute.String("app", app), attribute.String("result", "failed"))
			})
		})
	o.Counter("plato_state_app_pushes_total", "{push}", "Push calls of Plato's RPC, by app (refused ones included).",
		func(emit telemetry.Emit) {
			s.perApp.Each(func(app string, c *appCounters) { emit(c.pushes.Load(), attribute.String("app", app)) })
		})
	o.CounterValue("plato_state_pushes_over_quota_total", "{push}", "Pushes (Push calls, pushes of a PushBatch) refused with 1303 because their app was over apps.<app>.limits.pushes_per_sec.", m.pushesOverQuota.Load)
	o.CounterValue("plato_state_deliver_refused_total", "{call}", "Deliver calls refused because the caller did not prove it is a gateway (auth.token_secret differs, or not a gateway).", m.deliverRefused.Load)
	o.CounterValue("plato_state_broadcast_errors_total", "{push}", "Session broadcasts that could not be published to NATS (the push is refused with 1303, retry later).", m.broadcastFailed.Load)
	o.GaugeValue("plato_state_session_memberships", "{membership}", "Connection-session bindings held (a connection in three sessions counts three).",
		func() int64 { return s.sessions.count() })
	o.Counter("plato_state_session_sync_total", "{change}", "Session joins and leaves sent to gateways' local indexes: result ok, or error (the gateway call failed).",
		func(emit telemetry.Emit) {
			emit(m.sessionSyncs.Load(), attribute.String("result", "ok"))
			emit(m.sessionSyncFailed.Load(), attribute.String("result", "error"))
		})
	o.Counter("plato_state_business_errors_total", "{event}", "Events for business servers that were not delivered: reason queue_full, rpc (the Deliver call failed; events are retried), or gave_up (an event's retries ran out).",
		func(emit telemetry.Emit) {
			emit(m.businessQueueFull.Load(), attribute.String("reason", "queue_full"))
			emit(m.businessFailed.Load(), attribute.String("reason", "rpc"))
			emit(m.businessGaveUp.Load(), attribute.String("reason", "gave_up"))
		})
	o.Counter("plato_state_gateway_push_errors_total", "{frame}", "Frames for devices that did not reach their gateway: reason queue_full, or rpc (the Push call failed).",
		func(emit telemetry.Emit) {
			emit(m.pushQueueFull.Load(), attribute.String("reason", "queue_full"))
			emit(m.pushFailed.Load(), attribute.String("reason", "rpc"))
		})
	o.Counter("plato_state_rpc_errors_total", "{call}", "Failed Kitex client calls, by peer (gateway Push, business Deliver) and kind.",
		func(emit telemetry.Emit) {
			for p := range numPeers {
				for k := range rpc.NumErrKinds {
					emit(m.rpcErrors[p][k].Load(), attribute.String("peer", peerNames[p]), attribute.String("kind", k.String()))
				}
			}
		})
	return o.Register()
}
