package protocol_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/platoim/plato/sdk/protocol"
)

// body is what every body type implements.
type body interface {
	Append([]byte) []byte
	Decode([]byte) error
}

// bodyKinds lists a fresh value of every body type, so tests and fuzzers cover each one.
var bodyKinds = []struct {
	name string
	new  func() body
}{
	{"Login", func() body { return new(protocol.Login) }},
	{"LoginAck", func() body { return new(protocol.LoginAck) }},
	{"Ack", func() body { return new(protocol.Ack) }},
	{"Downlink", func() body { return new(protocol.Downlink) }},
	{"Close", func() body { return new(protocol.Close) }},
	{"Redirect", func() body { return new(protocol.Redirect) }},
	{"Resume", func() body { return new(protocol.Resume) }},
	{"ResumeAck", func() body { return new(protocol.ResumeAck) }},
}

var bodySamples = []struct {
	name string
	in   body
}{
	{"Login", &protocol.Login{AppID: "demo", DID: "d1", UID: "u1", Token: "t", Platform: "plato-go/1"}},
	{"Login empty", &protocol.Login{}},
	{"Login unicode", &protocol.Login{AppID: "应用", DID: "设备", UID: "ü", Token: strings.Repeat("k", protocol.MaxString)}},
	{"LoginAck", &protocol.LoginAck{Code: protocol.CodeOK, ConnID: 1<<64 - 1, HeartbeatMs: 30000, Message: "welcome"}},
	{"LoginAck refused", &protocol.LoginAck{Code: protocol.CodeTokenExpired, Message: "expired at 1790000000"}},
	{"Ack", &protocol.Ack{Code: protocol.CodeOK}},
	{"Ack business", &protocol.Ack{Code: 2999, Message: "no such room"}},
	{"Downlink", &protocol.Downlink{MsgID: 77, Payload: []byte("hello")}},
	{"Downlink empty", &protocol.Downlink{MsgID: 1, Payload: []byte{}}},
	{"Downlink binary", &protocol.Downlink{MsgID: 1 << 40, Payload: []byte{0, 0xFF, 'P', 'L'}}},
	{"Close", &protocol.Close{Code: protocol.CodeClientClose}},
	{"Close message", &protocol.Close{Code: protocol.CodeReplaced, Message: "replaced by conn 9"}},
	{"Redirect", &protocol.Redirect{Code: protocol.CodeMigrated, Endpoints: []string{"10.0.0.1:8900", "10.0.0.2:8900"}, Token: "new"}},
	{"Redirect none", &protocol.Redirect{Code: protocol.CodeMigrated}},
	{"Resume", &protocol.Resume{AppID: "a", DID: "d", UID: "u", Token: "t", PrevConnID: 5, LastDownlink: 99}},
	{"ResumeAck", &protocol.ResumeAck{Code: protocol.CodeResumeRejected, Message: "resume rejected: send Login"}},
	{"ResumeAck ok", &protocol.ResumeAck{ConnID: 8, HeartbeatMs: 1000}},
}

// zero returns a fresh value of the same type as b.
func zero(b body) body { return reflect.New(reflect.TypeOf(b).Elem()).Interface().(body) }

func TestBodyRoundTrip(t *testing.T) {
	for _, tt := range bodySamples {
		t.Run(tt.name, func(t *testing.T) {
			enc := tt.in.Append(nil)
			out := zero(tt.in)
			if err := out.Decode(enc); err != nil {
				t.Fatalf("decode: %v", err)
			}
			if !reflect.DeepEqual(out, tt.in) {
				t.Fatalf("round trip\n got %+v\nwant %+v", out, tt.in)
			}
			// Later versions may append fields: extra bytes must not change what decodes,
			// except for Downlink, whose payload is the rest of the body by definition.
			if _, ok := tt.in.(*protocol.Downlink); ok {
				return
			}
			out = zero(tt.in)
			if err := out.Decode(append(enc, 0xDE, 0xAD)); err != nil {
				t.Fatalf("decode with trailing bytes: %v", err)
			}
			if !reflect.DeepEqual(out, tt.in) {
				t.Fatalf("trailing bytes changed the value: %+v", out)
			}
		})
	}
}

func TestBodyAppendKeepsPrefix(t *testing.T) {
	enc := (&protocol.Ack{Code: 1}).Append([]byte("pre"))
	if string(enc[:3]) != "pre" || len(enc) != 3+2+2 {
		t.Fatalf("Append must extend dst: % x", enc)
	}
}

func TestBodyTruncated(t *testing.T) {
	for _, tt := range bodySamples {
		enc := tt.in.Append(nil)
		minLen := 0
		if _, ok := tt.in.(*protocol.Downlink); ok {
			minLen = 8 // a payload may be empty, so only the msg ID is required
		} else {
			minLen = len(enc)
		}
		for n := range minLen {
			err := zero(tt.in).Decode(enc[:n])
			if code, ok := protocol.CodeOf(err); !ok || code != protocol.CodeMalformed {
				t.Fatalf("%s truncated to %d of %d bytes: got %v, want code %d", tt.name, n, len(enc), err, protocol.CodeMalformed)
			}
		}
	}
}

func TestStringOverMax(t *testing.T) {
	long := []byte{0x10, 0x01} // 4097
	long = append(long, strings.Repeat("x", protocol.MaxString+1)...)
	for _, k := range []struct {
		name string
		body body
		pre  []byte
	}{
		{"Login", new(protocol.Login), nil},
		{"Close", new(protocol.Close), []byte{0x04, 0xB9}},
		{"Redirect token", new(protocol.Redirect), []byte{0x04, 0xBF, 0}},
	} {
		err := k.body.Decode(append(k.pre, long...))
		if code, ok := protocol.CodeOf(err); !ok || code != protocol.CodeMalformed {
			t.Errorf("%s: got %v, want code %d", k.name, err, protocol.CodeMalformed)
		}
	}
}

func TestAppendStringTruncates(t *testing.T) {
	// Encoding never produces a body the peer refuses; a too-long string is cut on a rune boundary.
	in := &protocol.Close{Code: 1, Message: strings.Repeat("x", protocol.MaxString-1) + "é" + "tail"}
	var out protocol.Close
	if err := out.Decode(in.Append(nil)); err != nil {
		t.Fatal(err)
	}
	if want := strings.Repeat("x", protocol.MaxString-1); out.Message != want {
		t.Fatalf("got %d bytes ending %q, want %d", len(out.Message), out.Message[len(out.Message)-3:], len(want))
	}
}

func TestDecodeErrorType(t *testing.T) {
	for _, k := range bodyKinds {
		err := k.new().Decode([]byte{0})
		var pe *protocol.Error
		if !errors.As(err, &pe) || pe.Code != protocol.CodeMalformed || !strings.Contains(pe.Msg, k.name) {
			t.Errorf("%s.Decode(1 byte) = %v, want a CodeMalformed naming the body", k.name, err)
		}
	}
}

func TestRedirectEndpointCount(t *testing.T) {
	// The count is one byte: the encoder keeps the first 255 endpoints.
	eps := make([]string, 300)
	for i := range eps {
		eps[i] = "h:1"
	}
	var out protocol.Redirect
	if err := out.Decode((&protocol.Redirect{Endpoints: eps}).Append(nil)); err != nil {
		t.Fatal(err)
	}
	if len(out.Endpoints) != 255 {
		t.Fatalf("got %d endpoints, want 255", len(out.Endpoints))
	}
}
