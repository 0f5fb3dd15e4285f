package stage

import (
	"bytes"
	"errors"
	"strings"

	"google.golang.org/grpc/encoding"
	"google.golang.org/protobuf/encoding/protowire"
)

// The Process stream is the hot path, so its two messages, Batch and Results, are encoded and
// decoded here by hand rather than through the generated types: same bytes on the wire as
// internal/pb/stage.proto (wire_test.go checks both ways against protobuf-go), but without a heap
// object per field. The generated types still serve every other call.
//
// Ownership: a received message's bytes are copied once (gRPC may reuse its buffer); payloads are
// sub-slices of that copy. The strings of one event share one allocation, so keeping a DID keeps
// that event's strings alive, never the batch.

// wireCodecName is the gRPC content-subtype of the Process stream. Registering the codec under
// its own name (rather than replacing "proto") leaves every other gRPC user in the process alone.
const wireCodecName = "platostage"

func init() { encoding.RegisterCodec(wireCodec{}) }

// wireMsg is an encoded Batch or Results travelling through wireCodec.
type wireMsg struct{ b []byte }

// wireCodec passes wireMsg bytes through; anything else goes to gRPC's proto codec.
type wireCodec struct{}

func (wireCodec) Name() string { return wireCodecName }

func (wireCodec) Marshal(v any) ([]byte, error) {
	if m, ok := v.(*wireMsg); ok {
		return m.b, nil
	}
	return encoding.GetCodec("proto").Marshal(v)
}

func (wireCodec) Unmarshal(data []byte, v any) error {
	if m, ok := v.(*wireMsg); ok {
		m.b = bytes.Clone(data)
		if m.b == nil {
			m.b = []byte{}
		}
		return nil
	}
	return encoding.GetCodec("proto").Unmarshal(data, v)
}

// Field numbers of internal/pb/stage.proto.
const (
	fBatchID, fBatchEvents, fBatchTimeout = 1, 2, 3

	fEvSignal, fEvConn, fEvSeq, fEvMsgID, fEvPayload, fEvToken  = 1, 2, 3, 4, 5, 6
	fEvPlatform, fEvReason, fEvTimerKey, fEvTimerData, fEvTrace = 7, 8, 9, 10, 11
	fEvSession, fEvTargets, fEvMembers, fEvQoS                  = 12, 13, 14, 15
	fEvAttempts                                                 = 16

	fConnApp, fConnDID, fConnUID, fConnID, fConnGateway, fConnAddr = 1, 2, 3, 4, 5, 6

	fResultsID, fResultsResults, fResultsError = 1, 2, 3

	fResVerdict, fResCode, fResMessage, fResPayload, fResReplace = 1, 2, 3, 4, 5
	fResRoute, fResQoS, fResAfter                                = 6, 7, 8
)

var errWire = errors.New("malformed stage message")

func sizeStr(n protowire.Number, s string) int {
	if s == "" {
		return 0
	}
	return protowire.SizeTag(n) + protowire.SizeBytes(len(s))
}

func sizeBytes(n protowire.Number, b []byte) int {
	if len(b) == 0 {
		return 0
	}
	return protowire.SizeTag(n) + protowire.SizeBytes(len(b))
}

func sizeVarint(n protowire.Number, v uint64) int {
	if v == 0 {
		return 0
	}
	return protowire.SizeTag(n) + protowire.SizeVarint(v)
}

func appendStr(b []byte, n protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	return protowire.AppendString(protowire.AppendTag(b, n, protowire.BytesType), s)
}

func appendBytes(b []byte, n protowire.Number, v []byte) []byte {
	if len(v) == 0 {
		return b
	}
	return protowire.AppendBytes(protowire.AppendTag(b, n, protowire.BytesType), v)
}

func appendVarint(b []byte, n protowire.Number, v uint64) []byte {
	if v == 0 {
		return b
	}
	return protowire.AppendVarint(protowire.AppendTag(b, n, protowire.VarintType), v)
}

// forEachField calls fn for each field of the message b, stopping at the first error.
func forEachField(b []byte, fn func(n protowire.Number, t protowire.Type, v []byte, x uint64) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return errWire
		}
		b = b[n:]
		var v []byte
		var x uint64
		switch typ {
		case protowire.VarintType:
			x, n = protowire.ConsumeVarint(b)
		case protowire.BytesType:
			v, n = protowire.ConsumeBytes(b)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return errWire
		}
		b = b[n:]
		if err := fn(num, typ, v, x); err != nil {
			return err
		}
	}
	return nil
}

// strBlock gathers an event's string fields and makes them substrings of one allocation. Its
// capacity is the number of distinct string fields decodeEvent can add (Conn's five, Token,
// Platform, TimerKey, TraceParent, Session and an unknown Signal): a repeated field replaces its
// earlier value rather than taking a slot.
type strBlock struct {
	dst [11]*string
	src [11][]byte
	n   int
}

func (s *strBlock) add(dst *string, src []byte) {
	for i := 0; i < s.n; i++ { // a repeated field: the last one wins, as in protobuf
		if s.dst[i] == dst {
			s.src[i] = src
			return
		}
	}
	s.dst[s.n], s.src[s.n] = dst, src
	s.n++
}

func (s *strBlock) build() {
	total := 0
	for i := 0; i < s.n; i++ {
		total += len(s.src[i])
	}
	if total == 0 {
		return
	}
	var sb strings.Builder
	sb.Grow(total)
	for i := 0; i < s.n; i++ {
		sb.Write(s.src[i])
	}
	all, off := sb.String(), 0
	for i := 0; i < s.n; i++ {
		*s.dst[i] = all[off : off+len(s.src[i])]
		off += len(s.src[i])
	}
}
