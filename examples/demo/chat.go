package demo

import (
	"encoding/json"
	"fmt"
)

// Message is what chat clients send as an uplink payload: exactly one command.
//
//	{"to":"bob","text":"hi"}          a direct message to the device bob
//	{"room":"lobby","text":"hi"}      a message to the room lobby (join it first)
//	{"join":"lobby"}                  join the room, now and at every later login
//	{"leave":"lobby"}                 leave it
//	{"who":"lobby"}                   ask who is in it now
type Message struct {
	To    string `json:"to,omitempty"`
	Room  string `json:"room,omitempty"`
	Text  string `json:"text,omitempty"`
	Join  string `json:"join,omitempty"`
	Leave string `json:"leave,omitempty"`
	Who   string `json:"who,omitempty"`
}

// Delivered is what chat clients receive as a downlink payload: a direct message
// {"from":"alice","text":"hi"}, a room message {"from":"alice","room":"lobby","text":"hi"}, or a
// notice from System (a room's joins and leaves, a who answer with Who set, "bob is offline").
type Delivered struct {
	From string `json:"from"`
	Room string `json:"room,omitempty"`
	Text string `json:"text"`
	// Who lists the dids online in Room, in answer to {"who":...}.
	Who []string `json:"who,omitempty"`
}

// System is the From of the demo's own notices.
const System = "plato-demo"

// Business codes the demo refuses uplinks with (business codes are 2000-2999); the device sees them
// in its UplinkAck.
const (
	CodeBadMessage   = 2001 // not JSON, not exactly one command, or a field too long
	CodeBusy         = 2002 // the demo's push queue is full: retry later
	CodeBadRoom      = 2003 // a room name that is empty, longer than MaxName, or not [A-Za-z0-9_-]
	CodeTooManyRooms = 2004 // the device is already in MaxRooms rooms
	CodeNotInRoom    = 2005 // leaving, or writing to, a room the device has not joined
	CodeUnknownApp   = 2006 // the demo has no key for this app ID, so it cannot reach Plato for it
)

// Limits on what a device may ask of the demo.
const (
	MaxName  = 64   // bytes in a room name or a did
	MaxText  = 4096 // bytes of text
	MaxRooms = 32   // rooms one device may be in
)

// command is one parsed, validated Message.
type command struct {
	kind cmdKind
	arg  string // the did (direct) or the room
	text string
}

type cmdKind uint8

const (
	cmdDirect cmdKind = iota
	cmdRoom
	cmdJoin
	cmdLeave
	cmdWho
)

// refusal is an uplink refused with a demo code.
type refusal struct {
	code int
	msg  string
}

const usage = `send one of {"to":"<did>","text":"..."}, {"room":"<room>","text":"..."}, {"join":"<room>"}, {"leave":"<room>"}, {"who":"<room>"}`

// parse reads and checks an uplink payload.
func parse(payload []byte) (command, *refusal) {
	var m Message
	if err := json.Unmarshal(payload, &m); err != nil {
		return command{}, &refusal{CodeBadMessage, "not JSON: " + usage}
	}
	var cmds []command
	if m.To != "" {
		cmds = append(cmds, command{kind: cmdDirect, arg: m.To, text: m.Text})
	}
	if m.Room != "" {
		cmds = append(cmds, command{kind: cmdRoom, arg: m.Room, text: m.Text})
	}
	for _, c := range []command{{kind: cmdJoin, arg: m.Join}, {kind: cmdLeave, arg: m.Leave}, {kind: cmdWho, arg: m.Who}} {
		if c.arg != "" {
			cmds = append(cmds, c)
		}
	}
	if len(cmds) != 1 {
		return command{}, &refusal{CodeBadMessage, usage}
	}
	c := cmds[0]
	switch {
	case len(c.text) > MaxText:
		return command{}, &refusal{CodeBadMessage, fmt.Sprintf("text longer than %d bytes", MaxText)}
	case c.kind == cmdDirect && len(c.arg) > MaxName:
		return command{}, &refusal{CodeBadMessage, fmt.Sprintf("did longer than %d bytes", MaxName)}
	case c.kind != cmdDirect && !validRoom(c.arg):
		return command{}, &refusal{CodeBadRoom, fmt.Sprintf("room names are 1-%d letters, digits, '-' or '_'", MaxName)}
	}
	return c, nil
}

// validRoom keeps room names simple to type after '#' in `plato chat` and to read in logs; Plato
// itself accepts any UTF-8 session name up to 256 bytes.
func validRoom(name string) bool {
	if name == "" || len(name) > MaxName {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
