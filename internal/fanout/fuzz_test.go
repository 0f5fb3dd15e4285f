package fanout_test

import (
	"bytes"
	"errors"
	"reflect"
	"testing"

	"github.com/platoim/plato/internal/fanout"
	"github.com/platoim/plato/sdk/delivery"
)

// The seed corpus in testdata/fuzz/FuzzDecode/ runs with plain `go test`; the f.Add seed only makes
// sure the fuzzer starts from a valid input even if that directory is lost.

// FuzzDecode feeds arbitrary bytes to Decode, as NATS would from anyone who can publish on the
// subject. Decoding must never panic, must fail with one of the package's errors, and whatever
// decodes must be valid and re-encode to exactly the input.
func FuzzDecode(f *testing.F) {
	f.Add((&fanout.Message{AppID: "demo", Session: "room-1", MsgID: 7, QoS: delivery.AtLeastOnce, Payload: []byte("hi")}).Append(nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		var m fanout.Message
		if err := m.Decode(b); err != nil {
			if !errors.Is(err, fanout.ErrVersion) && !errors.Is(err, fanout.ErrTruncated) &&
				!errors.Is(err, fanout.ErrTooLarge) && !errors.Is(err, fanout.ErrInvalid) {
				t.Fatalf("Decode(% x) = %v, not one of the package's errors", b, err)
			}
			return
		}
		if err := m.Validate(); err != nil {
			t.Fatalf("decoded message does not validate: %v", err)
		}
		if enc := m.Append(nil); !bytes.Equal(enc, b) {
			t.Fatalf("re-encoded % x, input % x", enc, b)
		}
		var again fanout.Message
		if err := again.Decode(m.Append(nil)); err != nil || !reflect.DeepEqual(again, m) {
			t.Fatalf("re-decoded %+v (%v), first decoded %+v", again, err, m)
		}
	})
}
