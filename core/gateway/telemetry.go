package gateway

import (
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/platoim/plato/internal/rpc"
	"github.com/platoim/plato/internal/telemetry"
	"github.com/platoim/plato/sdk/protocol"
)

// signalsIn and signalsOut label the frames counters, by each signal's name in docs/protocol.md:
// what a device may send, and what a server sends (Close goes both ways). A frame of the wrong
// direction closes the connection (1009) and shows there.
var signalsIn, signalsOut = func() (in, out map[uint8]string) {
	in, out = map[uint8]string{}, map[uint8]string{}
	for s := protocol.SigLogin; s.Known(); s++ {
		if s.FromDevice() {
			in[uint8(s)] = s.String()
		}
		if !s.FromDevice() || s == protocol.SigClose {
			out[uint8(s)] = s.String()
		}
	}
	return in, out
}()

// instrument publishes the gateway's counters as observable instruments (docs/observability.md):
// they are read when metrics are collected, so a frame costs an atomic add and nothing more.
func (gw *Gateway) instrument(meter metric.Meter) (metric.Registration, error) {
	m := &gw.metrics
	var err error
	if gw.uplinkLatency, err = telemetry.NewLatency(meter, "plato_gateway_uplink_latency_seconds",
		"Uplinks forwarded to a state server, from the frame read to its UplinkAck written, by app."); err != nil {
		return nil, err
	}
	calls, err := telemetry.NewLatency(meter, "plato_gateway_state_call_seconds",
		"Calls of the gateway to state servers (State.Deliver, State.Ping), by method and result.")
	if err != nil {
		return nil, err
	}
	gw.stateCalls = rpc.NewCallLatency(calls, "Deliver", "Ping")
	o := telemetry.NewObservables(meter)
	o.GaugeValue("plato_gateway_connections", "{connection}", "Open device connections.",
		func() int64 { return int64(gw.conns.len()) })
	// Per app, for the declared apps only (the label set is the configuration's, never the
	// devices'): which tenant uses what, and which one is being held back.
	o.Gauge("plato_gateway_app_connections", "{connection}", "Logged-in and logging-in connections, by app.",
		func(emit telemetry.Emit) {
			gw.usage.Each(func(app string, u *appUsage) { emit(u.conns.Load(), attribute.String("app", app)) })
		})
	o.Counter("plato_gateway_app_refused_total", "{frame}",
		"Uplinks and logins refused to hold an app to its limits, by app and reason: rate_limited (a device over its limit, UplinkAck 1308) or quota (the app over its share of a quota, 1303).",
		func(emit telemetry.Emit) {
			gw.usage.Each(func(app string, u *appUsage) {
				emit(u.rateLimited.Load(), attribute.String("app", app), attribute.String("reason", "rate_limited"))
				emit(u.quotaRefused.Load(), attribute.String("app", app), attribute.String("reason", "quota"))
			})
		})
	o.CounterValue("plato_gateway_connections_accepted_total", "{connection}", "Device connections accepted.", m.accepted.Load)
	o.Counter("plato_gateway_ws_handshakes_total", "{handshake}",
		"WebSocket upgrade handshakes, by result: ok (answered 101) or refused (answered 4xx and closed).",
		func(emit telemetry.Emit) {
			for i, result := range wsHandshakeResults {
				emit(m.wsHandshakes[i].Load(), attribute.String("result", result))
			}
		})
	o.CounterByCode("plato_gateway_connections_closed_total", "{connection}",
		"Device connections closed, by reason (the close code: 1209 the device closed, 1201 heartbeat timeout, ...).", "reason", &m.closed)
	o.Counter("plato_gateway_logins_total", "{login}",
		"Login answers: result ok (code 0) or refused, by code (a bad token here, or the state server's refusal).",
		func(emit telemetry.Emit) {
			m.logins.Each(func(code int, label string, n int64) {
				result := "refused"
				if code == int(protocol.CodeOK) {
					result = "ok"
				}
				emit(n, attribute.String("result", result), attribute.String("code", label))
			})
		})
	o.CounterByCode("plato_gateway_resumes_total", "{resume}",
		"Resume answers, by code: 0 resumed, 1208 nothing to resume (the device logs in), 11xx a bad token.", "code", &m.resumes)
	o.CounterValue("plato_gateway_state_servers_lost_total", "{state}", "State servers found lost (no answer to gateway.state_pings_lost pings in a row) or restarted.", m.statesLost.Load)
	o.CounterValue("plato_gateway_connections_moved_total", "{connection}", "Connections moved to another state server because theirs was lost or restarted; the devices noticed nothing.", m.connsMoved.Load)
	o.CounterBySignal("plato_gateway_frames_in_total", "{frame}", "Frames read from devices, by signal.", &m.framesIn, signalsIn)
	o.CounterBySignal("plato_gateway_frames_out_total", "{frame}", "Frames written to devices, by signal.", &m.framesOut, signalsOut)
	o.CounterValue("plato_gateway_bytes_in_total", "By", "Bytes read from devices (headers included).", m.bytesIn.Load)
	o.CounterValue("plato_gateway_bytes_out_total", "By", "Bytes written to devices (headers included).", m.bytesOut.Load)
	o.CounterByCode("plato_gateway_protocol_errors_total", "{error}",
		"Connections closed for breaking the protocol, by code (1001 bad magic, 1003 frame too large, ...).", "code", &m.protocolErrors)
	o.CounterValue("plato_gateway_panics_total", "{panic}",
		"Panics recovered in a connection's or a broadcast's callback; the connection was closed with 1307 (a bug: see the log).", m.panics.Load)
	o.Counter("plato_gateway_slow_consumers_total", "{connection}",
		"Connections closed with 1205 because the device did not read, by reason: queue_full (gateway.write_queue or write_queue_bytes), stalled (unsent bytes above gateway.slow_consumer.max_unsent_bytes for max_stall) or write_timeout.",
		func(emit telemetry.Emit) {
			for i, reason := range slowReasons {
				emit(m.slowConsumers[i].Load(), attribute.String("reason", reason))
			}
		})
	o.GaugeValue("plato_gateway_slow_watched_connections", "{connection}",
		"Connections whose unsent bytes may be above gateway.slow_consumer.max_unsent_bytes, measured by the slow-consumer check.", gw.slow.watched.Load)
	o.GaugeValue("plato_gateway_unsent_bytes", "By",
		"Bytes the watched connections had not sent (kernel send queue plus the gateway's queue) at the last check.", gw.slow.unsent.Load)
	o.GaugeValue("plato_gateway_socket_send_buffer_bytes", "By",
		"Send buffer the kernel gave the last device socket (SO_SNDBUF read back after setting gateway.socket_send_buffer; Linux doubles the value set); 0 when not set.", m.sendBuffer.Load)
	o.CounterValue("plato_gateway_forward_refused_total", "{frame}",
		"Frames the queue toward the state server refused for room: uplinks answered 1303, Logins and Resumes closed 1303, extra heartbeats and unknown ACKs dropped.", m.forwardRefused.Load)
	o.Counter("plato_gateway_overload_refused_total", "{frame}",
		"Uplinks (UplinkAck 1303) and logins (Logins and Resumes, 1303) refused for overload, by reason: in_flight (gateway.max_uplinks_in_flight reached), overload (the overload manager's action) or queue_full (the state server's lane).",
		func(emit telemetry.Emit) {
			for i, reason := range refusedReasons {
				emit(m.uplinksRefused[i].Load(), attribute.String("signal", "uplink"), attribute.String("reason", reason))
				emit(m.loginsRefused[i].Load(), attribute.String("signal", "login"), attribute.String("reason", reason))
			}
		})
	o.GaugeValue("plato_gateway_uplinks_in_flight", "{uplink}",
		"Uplinks forwarded to state servers and not answered yet (bounded by gateway.max_uplinks_in_flight).", gw.upInFlight.Load)
	o.CounterValue("plato_gateway_broadcasts_shed_total", "{message}",
		"Session broadcasts dropped while the overload manager sheds broadcasts.", m.broadcastsShed.Load)
	gw.overload.Instrument(o)
	o.CounterValue("plato_gateway_rpc_refused_total", "{call}",
		"Push and Sessions calls refused because the caller did not prove it is a state server (auth.token_secret differs).", m.rpcRefused.Load)
	o.Counter("plato_gateway_state_rpc_errors_total", "{call}", "Failed State.Deliver calls to a state server, by kind; each retry counts.",
		func(emit telemetry.Emit) {
			for k := range rpc.NumErrKinds {
				emit(m.stateErrors[k].Load(), attribute.String("kind", k.String()))
			}
		})
	o.CounterValue("plato_gateway_state_batches_dropped_total", "{batch}",
		"Batches of device events dropped after the last retry to an unreachable state server.", m.deliverErrors.Load)
	o.CounterValue("plato_gateway_reply_uplink_acks_total", "{ack}",
		"UplinkAcks that came back in the reply of a State.Deliver call rather than by a Push (state.uplink_ack_wait).", m.replyAcks.Load)
	o.CounterValue("plato_gateway_reply_heartbeat_acks_total", "{ack}",
		"HeartbeatAcks that came back in the reply of the State.Deliver call that carried the heartbeat rather than by a Push.", m.replyHeartbeatAcks.Load)
	o.CounterValue("plato_gateway_broadcasts_total", "{message}",
		"Session broadcast messages received from NATS (every gateway receives every broadcast).", m.broadcastsIn.Load)
	o.Counter("plato_gateway_broadcasts_malformed_total", "{message}",
		"Session broadcasts dropped, by reason: decode (not a valid message) or too_large (payload over the device maximum).",
		func(emit telemetry.Emit) {
			for i, reason := range malformedReasons {
				emit(m.broadcastsMalformed[i].Load(), attribute.String("reason", reason))
			}
		})
	o.CounterValue("plato_gateway_broadcasts_lost_total", "{message}",
		"Session broadcasts NATS dropped before this gateway read them: its fan-out fell behind the subscription's pending limit.", gw.broadcastsLost)
	o.CounterValue("plato_gateway_broadcast_frames_out_total", "{frame}",
		"Broadcast Downlink frames written to member devices (also counted in frames_out_total).", m.broadcastFramesOut.Load)
	o.CounterValue("plato_gateway_broadcast_acks_dropped_total", "{ack}",
		"Device ACKs of broadcasts not forwarded: not an at-least-once broadcast of this gateway in the last 5 minutes.", m.broadcastAcksDropped.Load)
	o.GaugeValue("plato_gateway_session_memberships", "{membership}",
		"Connection-session memberships in the gateway's local session index.", gw.sessions.memberships.Load)
	o.GaugeValue("plato_gateway_sessions", "{session}",
		"Sessions with at least one connection on this gateway.", gw.sessions.sessions.Load)
	gw.instrumentMoves(o)
	return o.Register()
}
