package gateway

import (
	"bufio"
	"bytes"
	"net/http"
	"strings"
	"testing"

	"github.com/gobwas/ws"
)

// FuzzWSHeader holds the in-place frame header parser to gobwas/ws's ReadHeader: same header, same
// length, an error for the same inputs. The seeds run in every `go test`.
func FuzzWSHeader(f *testing.F) {
	for _, seed := range [][]byte{
		{0x82, 0x80, 1, 2, 3, 4},                          // masked empty binary
		{0x82, 0x85, 1, 2, 3, 4, 'h', 'e', 'l', 'l', 'o'}, // masked binary
		{0x81, 0x05, 'h', 'e', 'l', 'l', 'o'},             // unmasked text
		{0x02, 0xfe, 0x01, 0x00, 9, 9, 9, 9},              // fragment, 16-bit length
		{0x82, 0xff, 0, 0, 0, 0, 0, 1, 0, 0, 1, 2, 3, 4},  // 64-bit length
		{0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 1},           // 64-bit length, top bit set
		{0xf2, 0x7d},                                      // reserved bits
		{0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe8},              // close 1000
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) < 2 || len(b) < wsHeaderLen(b) {
			return
		}
		got, n, err := parseWSHeader(b)
		want, werr := ws.ReadHeader(bytes.NewReader(b))
		if (err != nil) != (werr != nil) {
			t.Fatalf("% x: parse error %v, gobwas %v", b, err, werr)
		}
		if err != nil {
			return
		}
		// A length in more bytes than it needs (RFC 6455 says minimal) is read as gobwas reads it.
		if got != want || n != wsHeaderLen(b) {
			t.Fatalf("% x: parsed %+v (%d bytes), gobwas %+v", b, got, n, want)
		}
	})
}

// FuzzWSServerHeader holds the server frame header writer to gobwas/ws's WriteHeader.
func FuzzWSServerHeader(f *testing.F) {
	for _, n := range []uint32{0, 125, 126, 65535, 65536, 1 << 24} {
		f.Add(n, byte(ws.OpBinary))
	}
	f.Add(uint32(2), byte(ws.OpClose))
	f.Fuzz(func(t *testing.T, n uint32, op byte) {
		opc := ws.OpCode(op & 0x0f)
		b := make([]byte, wsServerHeaderLen(int(n)))
		putWSServerHeader(b, opc, int(n))
		var want bytes.Buffer
		if err := ws.WriteHeader(&want, ws.Header{Fin: true, OpCode: opc, Length: int64(n)}); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b, want.Bytes()) {
			t.Fatalf("length %d op %d: % x, gobwas % x", n, opc, b, want.Bytes())
		}
	})
}

// FuzzWSHandshake feeds any bytes to the handshake parser as a complete request: it never panics,
// and answers 101 exactly when it accepts, an HTTP error otherwise, both as valid HTTP responses.
func FuzzWSHandshake(f *testing.F) {
	good := "GET /plato HTTP/1.1\r\nHost: gw\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
	for _, seed := range []string{
		good + "\r\n",
		good + "Origin: https://app.example.com\r\nSec-WebSocket-Protocol: plato\r\n\r\n",
		strings.Replace(good, "/plato", "/other", 1) + "\r\n",
		strings.Replace(good, "13", "8", 1) + "\r\n",
		strings.Replace(good, "HTTP/1.1", "HTTP/1.0", 1) + "\r\n",
		"GET /plato HTTP/1.1\r\n\r\n",
		"GET /plato\r\n\r\n",
		"GET /plato HTTP/1.1\r\nno colon\r\n\r\n",
		"\r\n\r\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, req []byte) {
		res, out, err := wsUpgrade(req)
		resp, rerr := http.ReadResponse(bufio.NewReader(bytes.NewReader(out)), nil)
		if rerr != nil {
			t.Fatalf("answer %q to %q is not HTTP: %v", out, req, rerr)
		}
		if (err == nil) != (resp.StatusCode == http.StatusSwitchingProtocols) {
			t.Fatalf("error %v with status %d for %q", err, resp.StatusCode, req)
		}
		if err != nil && resp.StatusCode < 400 {
			t.Fatalf("refused with status %d for %q", resp.StatusCode, req)
		}
		if len(res.origin) > wsMaxOrigin || res.protocol != "" && res.protocol != WSSubprotocol {
			t.Fatalf("accepted origin %q protocol %q", res.origin, res.protocol)
		}
	})
}
