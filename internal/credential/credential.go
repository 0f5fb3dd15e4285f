// Package credential verifies what a device presents to prove who it is: a credential its
// business backend issued. Plato never decides identity itself. An app either signs a standard
// JWT (jwt.go: HS256 with a secret, RS256, ES256 or EdDSA with a public key, keys by `kid`) or
// has Plato ask its business server (callback.go). Either way the answer is an Identity, which
// ipconf binds into the gateway token it issues.
package credential

import (
	"context"
	"errors"
	"fmt"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/platoim/plato/sdk/protocol"
)

// MaxLen is the longest credential looked at; longer input is refused before any parsing, so a
// hostile one costs no more than this.
const MaxLen = 8192

// MaxIDLen bounds a uid or did a credential may name, as ipconf bounds its parameters.
const MaxIDLen = 128

// Request is one credential to verify.
type Request struct {
	AppID string
	// DID is the device the request claims to be (ipconf's did parameter): the credential must
	// name it, or the business must accept it.
	DID        string
	Credential string
	RemoteAddr string
}

// Identity is who a verified credential says the device is.
type Identity struct {
	UID, DID string
	// Expires is when the credential stops vouching for the device; zero when it did not say.
	Expires time.Time
}

// Verifier checks credentials for one app.
type Verifier interface {
	Verify(ctx context.Context, req Request) (Identity, error)
}

// Error is a refused credential: a code the device can act on and a reason safe to show it (it
// never echoes the credential).
type Error struct {
	// Code is 1101 (invalid: malformed, bad signature, unknown key, wrong algorithm), 1102
	// (expired or not yet valid), 1103 (for another app or device), or the business's own code
	// (2000-2999) when a connect callback refused it.
	Code   protocol.Code
	Reason string
}

func (e *Error) Error() string { return fmt.Sprintf("credential refused (%d): %s", e.Code, e.Reason) }

// CodeOf returns the code of the *Error in err's chain, or 1101 for any other error.
func CodeOf(err error) protocol.Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return protocol.CodeTokenInvalid
}

func refuse(code protocol.Code, format string, args ...any) *Error {
	return &Error{Code: code, Reason: fmt.Sprintf(format, args...)}
}

// checkID checks a uid or did a credential names.
func checkID(what, v string) *Error {
	switch {
	case v == "":
		return refuse(protocol.CodeTokenInvalid, "the credential names no %s", what)
	case len(v) > MaxIDLen:
		return refuse(protocol.CodeTokenInvalid, "the credential's %s is longer than %d bytes", what, MaxIDLen)
	}
	for _, r := range v {
		if r == utf8.RuneError || !unicode.IsPrint(r) {
			return refuse(protocol.CodeTokenInvalid, "the credential's %s is not printable UTF-8", what)
		}
	}
	return nil
}
