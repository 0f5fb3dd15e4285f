package client

import (
	"errors"

	"github.com/platoim/plato/sdk/protocol"
)

// verdict is what a reconnecting client does about an error that ended a connection or an attempt.
type verdict uint8

const (
	// retry: try the next endpoint after a backoff. I/O errors, silence, a gateway's own trouble
	// (1204, 1210, 1303, 1307), load shedding and rate limiting (1303, 1308) and every code not
	// named below: another attempt, later or elsewhere, may well succeed.
	retry verdict = iota
	// renew: the token or the app was refused (1101-1105): fetch a fresh token from ipconf, then
	// retry; the same refusal of a token just fetched is final.
	renew
	// final: stop for good.
	final
)

// classify decides about an error from a gateway: a Close, a LoginAck, a ResumeAck, or the SDK's
// own reading of what the gateway sent.
func classify(err error) verdict {
	code, ok := protocol.CodeOf(err)
	if !ok || errors.As(err, new(*handshakeFault)) {
		return retry
	}
	switch {
	case code == protocol.CodeKicked:
		return final // the business wants the device off; coming back would defeat it
	case code == protocol.CodeReplaced:
		return final // the did logged in elsewhere; coming back would replace that login in turn
	case code >= 1000 && code <= 1099:
		return final // a protocol violation: one side has a bug, and a new connection would repeat it
	case code >= protocol.CodeTokenInvalid && code <= protocol.CodeUnknownApp:
		return renew
	}
	return retry
}

// classifyIPConf decides about an error from ipconf. A refusal of the credential (1101-1105), a bad
// request (14xx) or the business's refusal (2000-2999) will not change on its own: the credential in
// Config is fixed. ipconf down or without a live gateway (1301, 1302, 1305, I/O) is worth a retry.
func classifyIPConf(err error) verdict {
	code, ok := protocol.CodeOf(err)
	switch {
	case !ok:
		return retry
	case code >= 1100 && code <= 1199, code >= 1400 && code <= 1499, code >= 2000 && code <= 2999:
		return final
	}
	return retry
}

// resumableCodes are the server's Close codes after which it keeps the connection for a Resume
// (docs/protocol.md §11.1); after any other code it keeps nothing, and a Resume would only earn a
// 1208 and cost a round trip.
var resumableCodes = map[protocol.Code]bool{
	protocol.CodeHeartbeatTimeout: true,
	protocol.CodeShuttingDown:     true,
	protocol.CodeSlowConsumer:     true,
	protocol.CodeMigrated:         true,
	protocol.CodeStateLost:        true,
	protocol.CodeConnectionLost:   true,
	protocol.CodeOverloaded:       true,
	protocol.CodeInternal:         true,
}

// resumable reports whether a connection that ended with err is worth a Resume: it broke without
// a Close (I/O error, silence), or the server closed it with a resumable code.
func resumable(err error) bool {
	code, ok := protocol.CodeOf(err)
	return !ok || resumableCodes[code]
}
