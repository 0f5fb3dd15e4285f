package protocol

import "fmt"

// Signal is the frame type in header byte 3.
type Signal uint8

// The signals. C->S is device to server, S->C server to device.
const (
	SigLogin        Signal = 0x01 // C->S: create the connection (token, app ID, did, uid)
	SigLoginAck     Signal = 0x02 // S->C: login result
	SigHeartbeat    Signal = 0x03 // C->S: keep-alive
	SigHeartbeatAck Signal = 0x04 // S->C: keep-alive answer
	SigUplink       Signal = 0x05 // C->S: a message for the business server
	SigUplinkAck    Signal = 0x06 // S->C: the business server accepted (or refused) an uplink
	SigDownlink     Signal = 0x07 // S->C: a message from the business server
	SigDownlinkAck  Signal = 0x08 // C->S: the device received a downlink
	SigClose        Signal = 0x09 // both: the sender is closing the connection, with a reason
	SigRedirect     Signal = 0x0A // S->C: reconnect to another endpoint (migration)
	SigResume       Signal = 0x0B // C->S: re-attach to a previous connection's state instead of Login
	SigResumeAck    Signal = 0x0C // S->C: resume result
)

var signalNames = [...]string{
	SigLogin:        "Login",
	SigLoginAck:     "LoginAck",
	SigHeartbeat:    "Heartbeat",
	SigHeartbeatAck: "HeartbeatAck",
	SigUplink:       "Uplink",
	SigUplinkAck:    "UplinkAck",
	SigDownlink:     "Downlink",
	SigDownlinkAck:  "DownlinkAck",
	SigClose:        "Close",
	SigRedirect:     "Redirect",
	SigResume:       "Resume",
	SigResumeAck:    "ResumeAck",
}

// Known reports whether s is a signal of this protocol version.
func (s Signal) Known() bool { return s >= SigLogin && s <= SigResumeAck }

// FromDevice reports whether a device may send s.
func (s Signal) FromDevice() bool {
	switch s {
	case SigLogin, SigHeartbeat, SigUplink, SigDownlinkAck, SigClose, SigResume:
		return true
	}
	return false
}

func (s Signal) String() string {
	if s.Known() {
		return signalNames[s]
	}
	return fmt.Sprintf("Signal(0x%02x)", uint8(s))
}
