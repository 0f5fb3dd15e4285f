package stage

import (
	"fmt"
	"math"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
)

// encodeResults encodes a Results answering batch id with replies (plugin side). A payload
// travels only when it replaces.
func encodeResults(id uint64, replies []Reply) []byte {
	return appendResults(make([]byte, 0, resultsSize(replies)), id, replies)
}

// resultsSize is about the encoded size of replies, to size a buffer.
func resultsSize(replies []Reply) int {
	est := 16
	for i := range replies {
		est += 24 + len(replies[i].Message) + len(replies[i].Payload)
	}
	return est
}

// appendResults appends the encoded Results to b.
func appendResults(b []byte, id uint64, replies []Reply) []byte {
	b = appendVarint(b, fResultsID, id)
	for i := range replies {
		r := &replies[i]
		msg := clean(r.Message)
		var payload []byte
		if r.Replace {
			payload = r.Payload
		}
		size := sizeVarint(fResVerdict, uint64(r.Verdict)) + sizeVarint(fResCode, uint64(r.Code)) +
			sizeStr(fResMessage, msg) + sizeBytes(fResPayload, payload) +
			sizeVarint(fResRoute, uint64(r.Route)) + sizeVarint(fResQoS, uint64(r.QoS)) +
			sizeVarint(fResAfter, afterUS(r.After))
		if r.Replace {
			size += protowire.SizeTag(fResReplace) + 1
		}
		b = protowire.AppendTag(b, fResultsResults, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(size))
		b = appendVarint(b, fResVerdict, uint64(r.Verdict))
		b = appendVarint(b, fResCode, uint64(r.Code))
		b = appendStr(b, fResMessage, msg)
		b = appendBytes(b, fResPayload, payload)
		if r.Replace {
			b = appendVarint(b, fResReplace, 1)
		}
		b = appendVarint(b, fResRoute, uint64(r.Route))
		b = appendVarint(b, fResQoS, uint64(r.QoS))
		b = appendVarint(b, fResAfter, afterUS(r.After))
	}
	return b
}

// afterUS is a retransmit wait as it travels: whole microseconds, negative ones as 0.
func afterUS(d time.Duration) uint64 { return uint64(max(d, 0) / time.Microsecond) }

// encodeFailure encodes a Results that fails batch id as a whole.
func encodeFailure(id uint64, msg string) []byte { return appendFailure(nil, id, msg) }

// appendFailure appends the encoded whole-batch failure to b.
func appendFailure(b []byte, id uint64, msg string) []byte {
	b = appendVarint(b, fResultsID, id)
	return appendStr(b, fResultsError, clean(msg))
}

// peekResults reads a Results' id and whole-batch error (host side, in the receiving goroutine);
// the caller who waits for it decodes the replies with decodeResults.
func peekResults(b []byte) (id uint64, failure string, err error) {
	err = forEachField(b, func(n protowire.Number, t protowire.Type, v []byte, x uint64) error {
		switch {
		case n == fResultsID && t == protowire.VarintType:
			id = x
		case n == fResultsError && t == protowire.BytesType:
			failure = string(v)
		}
		return nil
	})
	return id, failure, err
}

// decodeResults decodes a Results' replies into replies, which must be exactly as many. b must be
// the caller's own copy: payloads are sub-slices of it.
func decodeResults(b []byte, replies []Reply) error {
	i := 0
	err := forEachField(b, func(n protowire.Number, t protowire.Type, v []byte, _ uint64) error {
		if n != fResultsResults || t != protowire.BytesType {
			return nil
		}
		if i >= len(replies) {
			i++
			return nil
		}
		r := &replies[i]
		*r = Reply{}
		i++
		return forEachField(v, func(n protowire.Number, t protowire.Type, v []byte, x uint64) error {
			switch {
			case n == fResVerdict && t == protowire.VarintType:
				r.Verdict = Verdict(x)
			case n == fResCode && t == protowire.VarintType:
				r.Code = uint16(x)
			case n == fResMessage && t == protowire.BytesType:
				r.Message = string(v)
			case n == fResPayload && t == protowire.BytesType:
				r.Payload = v
			case n == fResReplace && t == protowire.VarintType:
				r.Replace = x != 0
			case n == fResRoute && t == protowire.VarintType:
				r.Route = Route(x)
			case n == fResQoS && t == protowire.VarintType:
				r.QoS = QoS(x)
			case n == fResAfter && t == protowire.VarintType:
				r.After = time.Duration(min(x, uint64(math.MaxInt64/int64(time.Microsecond)))) * time.Microsecond
			}
			return nil
		})
	})
	if err != nil {
		return err
	}
	if i != len(replies) {
		return fmt.Errorf("stage returned %d results for %d events", i, len(replies))
	}
	for k := range replies {
		r := &replies[k]
		if !r.Replace {
			r.Payload = nil
		} else if r.Payload == nil {
			r.Payload = []byte{} // an empty replacement, as the plugin returned it
		}
	}
	return nil
}
