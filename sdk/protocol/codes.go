package protocol

import (
	"errors"
	"fmt"
)

// Code is a result or close reason carried in LoginAck, UplinkAck, ResumeAck, Close and Redirect
// bodies, and in errors returned by Plato's RPC. The ranges are reserved:
//
//	0          success
//	1000-1099  framing and protocol violations (the server closes the connection)
//	1100-1199  authentication and authorisation
//	1200-1299  connection lifecycle: why a connection was closed
//	1300-1399  delivery: why an uplink was not accepted
//	1400-1499  Plato RPC (business server requests)
//	2000-2999  business-defined: passed through from the business server unchanged
type Code uint16

// The codes. docs/protocol.md has the same table; keep them in step.
const (
	CodeOK Code = 0

	CodeBadMagic      Code = 1001 // the first two bytes are not "PL"
	CodeBadVersion    Code = 1002 // the version byte is not one the server speaks
	CodeFrameTooLarge Code = 1003 // the body length exceeds the receiver's maximum
	CodeUnknownSignal Code = 1004 // the signal byte is not defined
	CodeMalformed     Code = 1005 // a body does not decode as its signal's layout
	CodeNotLoggedIn   Code = 1006 // a signal other than Login/Resume/Close before login succeeded
	CodeAlreadyLogged Code = 1007 // a second Login or Resume on a logged-in connection
	CodeDuplicate     Code = 1008 // an uplink sequence number not above the last one; not delivered again
	CodeBadDirection  Code = 1009 // a server-to-device signal sent by the device

	CodeTokenInvalid  Code = 1101 // the token's signature or format is wrong
	CodeTokenExpired  Code = 1102 // the token has expired
	CodeTokenMismatch Code = 1103 // the token was issued for another app ID or did
	CodeForbidden     Code = 1104 // the device may not send this signal
	CodeUnknownApp    Code = 1105 // the app ID is not one this platform serves
	CodeOriginRefused Code = 1106 // the WebSocket's Origin is not one the app allows

	CodeHeartbeatTimeout Code = 1201 // nothing was heard from the device for the heartbeat timeout
	CodeKicked           Code = 1202 // the business server kicked the device
	CodeReplaced         Code = 1203 // the same did logged in on another connection
	CodeShuttingDown     Code = 1204 // the gateway is shutting down; reconnect elsewhere
	CodeSlowConsumer     Code = 1205 // the device did not read fast enough; its write queue overflowed
	CodeLoginTimeout     Code = 1206 // no Login arrived in time after connecting
	CodeMigrated         Code = 1207 // the connection moves to another gateway (Redirect)
	CodeResumeRejected   Code = 1208 // the previous connection cannot be resumed; send Login instead
	CodeClientClose      Code = 1209 // the device closed the connection normally
	CodeStateLost        Code = 1210 // the state server holding the connection became unreachable
	CodeConnectionLost   Code = 1211 // the socket broke without a Close; the connection is kept for a Resume

	CodeBusinessUnavailable Code = 1301 // no business server answered for this app ID
	CodeBusinessTimeout     Code = 1302 // the business server did not answer in time
	CodeOverloaded          Code = 1303 // Plato is shedding load; retry later
	CodeNoBusiness          Code = 1304 // no business server is configured for this app ID
	CodeNoGateway           Code = 1305 // ipconf knows no live gateway to hand out
	CodePipelineFailed      Code = 1306 // a fail-closed pipeline stage failed or timed out; retry later
	CodeInternal            Code = 1307 // the server failed handling this connection (a bug); reconnect
	CodeRateLimited         Code = 1308 // the device sends faster than its app allows; slow down and retry

	CodeInvalidArgument Code = 1401 // a Plato RPC request is malformed
	CodeAppMismatch     Code = 1402 // the request names an app ID the caller may not reach
)

var codeText = map[Code]string{
	CodeOK:                  "ok",
	CodeBadMagic:            "bad magic",
	CodeBadVersion:          "unsupported protocol version",
	CodeFrameTooLarge:       "frame too large",
	CodeUnknownSignal:       "unknown signal",
	CodeMalformed:           "malformed body",
	CodeNotLoggedIn:         "not logged in",
	CodeAlreadyLogged:       "already logged in",
	CodeDuplicate:           "duplicate sequence number",
	CodeBadDirection:        "signal not allowed from a device",
	CodeTokenInvalid:        "invalid token",
	CodeTokenExpired:        "token expired",
	CodeTokenMismatch:       "token not issued for this app ID and did",
	CodeForbidden:           "forbidden",
	CodeUnknownApp:          "app not configured",
	CodeOriginRefused:       "origin not allowed",
	CodeHeartbeatTimeout:    "heartbeat timeout",
	CodeKicked:              "kicked",
	CodeReplaced:            "replaced by a newer login",
	CodeShuttingDown:        "server shutting down",
	CodeSlowConsumer:        "slow consumer",
	CodeLoginTimeout:        "login timeout",
	CodeMigrated:            "migrated",
	CodeResumeRejected:      "resume rejected",
	CodeClientClose:         "client closed",
	CodeStateLost:           "state server lost",
	CodeConnectionLost:      "connection lost",
	CodeBusinessUnavailable: "business server unavailable",
	CodeBusinessTimeout:     "business server timeout",
	CodeOverloaded:          "overloaded",
	CodeNoBusiness:          "no business server for app",
	CodeNoGateway:           "no gateway available",
	CodePipelineFailed:      "pipeline stage failed",
	CodeInternal:            "internal error",
	CodeRateLimited:         "rate limited",
	CodeInvalidArgument:     "invalid argument",
	CodeAppMismatch:         "app ID mismatch",
}

func (c Code) String() string {
	if t, ok := codeText[c]; ok {
		return t
	}
	if c >= 2000 && c <= 2999 {
		return fmt.Sprintf("business error %d", uint16(c))
	}
	return fmt.Sprintf("code %d", uint16(c))
}

// Error is a protocol error with the code a peer is told.
type Error struct {
	Code Code
	Msg  string
}

func (e *Error) Error() string {
	if e.Msg == "" {
		return fmt.Sprintf("plato %d: %s", uint16(e.Code), e.Code)
	}
	return fmt.Sprintf("plato %d: %s: %s", uint16(e.Code), e.Code, e.Msg)
}

func errorf(c Code, format string, args ...any) *Error {
	return &Error{Code: c, Msg: fmt.Sprintf(format, args...)}
}

// CodeOf returns the protocol code carried by err, or 0 and false if it carries none.
func CodeOf(err error) (Code, bool) {
	var pe *Error
	if errors.As(err, &pe) {
		return pe.Code, true
	}
	return 0, false
}
