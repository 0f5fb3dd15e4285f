package stage

import (
	"math"

	"google.golang.org/protobuf/encoding/protowire"
)

// encodeBatch encodes a Batch (host side). Strings are cleaned to valid UTF-8 on the way, so the
// bytes are a Batch that protobuf-go accepts.
func encodeBatch(id uint64, timeoutUS int64, events []Event) []byte {
	return appendBatch(make([]byte, 0, batchSize(events)), id, timeoutUS, events)
}

// batchSize is about the encoded size of a batch of events, to size its buffer.
func batchSize(events []Event) int {
	est := 24
	for i := range events {
		ev := &events[i]
		c := &ev.Conn
		est += 64 + len(ev.Signal) + len(c.AppID) + len(c.DID) + len(c.UID) + len(c.GatewayID) + len(c.RemoteAddr) +
			len(ev.Payload) + len(ev.Token) + len(ev.Platform) + len(ev.TimerKey) + len(ev.TimerData) + len(ev.TraceParent) +
			len(ev.Session)
	}
	return est
}

// appendBatch appends the encoded Batch to b.
func appendBatch(b []byte, id uint64, timeoutUS int64, events []Event) []byte {
	b = appendVarint(b, fBatchID, id)
	for i := range events {
		b = appendEvent(b, &events[i])
	}
	return appendVarint(b, fBatchTimeout, uint64(timeoutUS))
}

func appendEvent(b []byte, ev *Event) []byte {
	c := cleanConn(ev.Conn)
	sig, tok, plat := clean(string(ev.Signal)), clean(ev.Token), clean(ev.Platform)
	key, trace, session := clean(ev.TimerKey), clean(ev.TraceParent), clean(ev.Session)
	targets, members := wireCount(ev.Targets), wireCount(ev.Members)

	connSize := sizeStr(fConnApp, c.AppID) + sizeStr(fConnDID, c.DID) + sizeStr(fConnUID, c.UID) +
		sizeVarint(fConnID, c.ConnID) + sizeStr(fConnGateway, c.GatewayID) + sizeStr(fConnAddr, c.RemoteAddr)
	size := sizeStr(fEvSignal, sig) + protowire.SizeTag(fEvConn) + protowire.SizeBytes(connSize) +
		sizeVarint(fEvSeq, ev.Seq) + sizeVarint(fEvMsgID, ev.MsgID) + sizeBytes(fEvPayload, ev.Payload) +
		sizeStr(fEvToken, tok) + sizeStr(fEvPlatform, plat) + sizeVarint(fEvReason, uint64(ev.Reason)) +
		sizeStr(fEvTimerKey, key) + sizeBytes(fEvTimerData, ev.TimerData) + sizeStr(fEvTrace, trace) +
		sizeStr(fEvSession, session) + sizeVarint(fEvTargets, targets) + sizeVarint(fEvMembers, members) +
		sizeVarint(fEvQoS, uint64(ev.QoS)) + sizeVarint(fEvAttempts, wireCount(ev.Attempts))

	b = protowire.AppendTag(b, fBatchEvents, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(size))
	b = appendStr(b, fEvSignal, sig)
	b = protowire.AppendTag(b, fEvConn, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(connSize))
	b = appendStr(b, fConnApp, c.AppID)
	b = appendStr(b, fConnDID, c.DID)
	b = appendStr(b, fConnUID, c.UID)
	b = appendVarint(b, fConnID, c.ConnID)
	b = appendStr(b, fConnGateway, c.GatewayID)
	b = appendStr(b, fConnAddr, c.RemoteAddr)
	b = appendVarint(b, fEvSeq, ev.Seq)
	b = appendVarint(b, fEvMsgID, ev.MsgID)
	b = appendBytes(b, fEvPayload, ev.Payload)
	b = appendStr(b, fEvToken, tok)
	b = appendStr(b, fEvPlatform, plat)
	b = appendVarint(b, fEvReason, uint64(ev.Reason))
	b = appendStr(b, fEvTimerKey, key)
	b = appendBytes(b, fEvTimerData, ev.TimerData)
	b = appendStr(b, fEvTrace, trace)
	b = appendStr(b, fEvSession, session)
	b = appendVarint(b, fEvTargets, targets)
	b = appendVarint(b, fEvMembers, members)
	b = appendVarint(b, fEvQoS, uint64(ev.QoS))
	return appendVarint(b, fEvAttempts, wireCount(ev.Attempts))
}

// wireCount clamps a count to the uint32 it travels as.
func wireCount(n int) uint64 { return uint64(min(max(n, 0), math.MaxUint32)) }

// decodeBatch decodes a Batch (plugin side). b must be the caller's own copy: payloads and timer
// data are sub-slices of it.
func decodeBatch(b []byte) (id uint64, timeoutUS int64, events []Event, err error) {
	return decodeBatchInto(b, nil)
}

// decodeBatchInto is decodeBatch reusing reuse's array for the events when it is large enough.
func decodeBatchInto(b []byte, reuse []Event) (id uint64, timeoutUS int64, events []Event, err error) {
	count := 0
	err = forEachField(b, func(n protowire.Number, t protowire.Type, _ []byte, x uint64) error {
		switch {
		case n == fBatchID && t == protowire.VarintType:
			id = x
		case n == fBatchTimeout && t == protowire.VarintType:
			timeoutUS = int64(x)
		case n == fBatchEvents && t == protowire.BytesType:
			count++
		}
		return nil
	})
	if err != nil || count == 0 {
		return id, timeoutUS, nil, err
	}
	if cap(reuse) >= count {
		events = reuse[:0]
	} else {
		events = make([]Event, 0, count)
	}
	err = forEachField(b, func(n protowire.Number, t protowire.Type, v []byte, _ uint64) error {
		if n != fBatchEvents || t != protowire.BytesType {
			return nil
		}
		events = append(events, Event{})
		return decodeEvent(v, &events[len(events)-1])
	})
	return id, timeoutUS, events, err
}

func decodeEvent(b []byte, ev *Event) error {
	var sb strBlock
	var signal []byte
	err := forEachField(b, func(n protowire.Number, t protowire.Type, v []byte, x uint64) error {
		if t == protowire.VarintType {
			switch n {
			case fEvSeq:
				ev.Seq = x
			case fEvMsgID:
				ev.MsgID = x
			case fEvReason:
				ev.Reason = uint16(x)
			case fEvTargets:
				ev.Targets = int(uint32(x)) // uint32 fields: protobuf keeps the low 32 bits
			case fEvMembers:
				ev.Members = int(uint32(x))
			case fEvQoS:
				ev.QoS = QoS(x)
			case fEvAttempts:
				ev.Attempts = int(uint32(x))
			}
			return nil
		}
		if t != protowire.BytesType {
			return nil
		}
		switch n {
		case fEvSignal:
			signal = v
		case fEvConn:
			return decodeConn(v, &ev.Conn, &sb)
		case fEvPayload:
			ev.Payload = v
		case fEvToken:
			sb.add(&ev.Token, v)
		case fEvPlatform:
			sb.add(&ev.Platform, v)
		case fEvTimerKey:
			sb.add(&ev.TimerKey, v)
		case fEvTimerData:
			ev.TimerData = v
		case fEvTrace:
			sb.add(&ev.TraceParent, v)
		case fEvSession:
			sb.add(&ev.Session, v)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if ev.Signal = knownSignal(signal); ev.Signal == "" && len(signal) > 0 {
		sb.add((*string)(&ev.Signal), signal)
	}
	sb.build()
	return nil
}

func decodeConn(b []byte, c *Conn, sb *strBlock) error {
	return forEachField(b, func(n protowire.Number, t protowire.Type, v []byte, x uint64) error {
		switch {
		case n == fConnID && t == protowire.VarintType:
			c.ConnID = x
		case t != protowire.BytesType:
		case n == fConnApp:
			sb.add(&c.AppID, v)
		case n == fConnDID:
			sb.add(&c.DID, v)
		case n == fConnUID:
			sb.add(&c.UID, v)
		case n == fConnGateway:
			sb.add(&c.GatewayID, v)
		case n == fConnAddr:
			sb.add(&c.RemoteAddr, v)
		}
		return nil
	})
}

// knownSignal returns the Signal constant spelled b, without allocating, or "".
func knownSignal(b []byte) Signal {
	switch string(b) {
	case string(SignalLogin):
		return SignalLogin
	case string(SignalUplink):
		return SignalUplink
	case string(SignalDownlink):
		return SignalDownlink
	case string(SignalDownlinkAck):
		return SignalDownlinkAck
	case string(SignalHeartbeat):
		return SignalHeartbeat
	case string(SignalDisconnect):
		return SignalDisconnect
	case string(SignalRoute):
		return SignalRoute
	case string(SignalTimer):
		return SignalTimer
	case string(SignalRetransmit):
		return SignalRetransmit
	}
	return ""
}
