package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/platoim/plato/examples/demo"
	"github.com/platoim/plato/sdk/client"
	"github.com/platoim/plato/sdk/protocol"
)

func TestParseChatLine(t *testing.T) {
	for _, c := range []struct {
		line, current string
		want          string // the JSON sent, or "note", "quit", "" for nothing
		room          *string
	}{
		{"", "", "", nil},
		{"/quit", "", "quit", nil},
		{"/help", "", "note", nil},
		{"@bob hi there", "", `{"to":"bob","text":"hi there"}`, nil},
		{"#lobby hi", "", `{"room":"lobby","text":"hi"}`, ptr("lobby")},
		{"/join lobby", "", `{"join":"lobby"}`, ptr("lobby")},
		{"/leave lobby", "lobby", `{"leave":"lobby"}`, ptr("")},
		{"/leave other", "lobby", `{"leave":"other"}`, nil},
		{"/who", "lobby", `{"who":"lobby"}`, nil},
		{"/who", "", "note", nil},
		{"/who team", "lobby", `{"who":"team"}`, nil},
		{"hello", "lobby", `{"room":"lobby","text":"hello"}`, nil},
		{"hello", "", "note", nil},
		{"@bob", "", "note", nil},
		{"/dance", "", "note", nil},
	} {
		in := parseChatLine(c.line, c.current)
		got := ""
		switch {
		case in.quit:
			got = "quit"
		case in.note != "":
			got = "note"
		case in.msg != nil:
			b, _ := json.Marshal(in.msg)
			got = string(b)
		}
		if got != c.want {
			t.Errorf("%q (room %q): %s, want %s", c.line, c.current, got, c.want)
		}
		if (in.room == nil) != (c.room == nil) || in.room != nil && *in.room != *c.room {
			t.Errorf("%q: current room becomes %v, want %v", c.line, deref(in.room), deref(c.room))
		}
	}
}

func TestFormatDownlink(t *testing.T) {
	for _, c := range []struct {
		d    any
		want string
	}{
		{demo.Delivered{From: "alice", Text: "hi"}, "@alice: hi"},
		{demo.Delivered{From: "alice", Room: "lobby", Text: "hi"}, "[lobby] alice: hi"},
		{demo.Delivered{From: demo.System, Room: "lobby", Text: "bob joined"}, "[lobby] * bob joined"},
		{demo.Delivered{From: demo.System, Room: "lobby", Text: "in lobby: a, b", Who: []string{"a", "b"}}, "[lobby] online: a, b"},
		{demo.Delivered{From: demo.System, Text: "bob is offline"}, "* bob is offline"},
		{"not chat", `[msg 7] "not chat"`},
	} {
		b, _ := json.Marshal(c.d)
		if got := formatDownlink(client.Message{MsgID: 7, Payload: b}); got != c.want {
			t.Errorf("%s: %q, want %q", b, got, c.want)
		}
	}
}

func TestChatConnNotes(t *testing.T) {
	lost := errors.New("reading: EOF")
	var n connNotes
	for _, c := range []struct {
		s    client.State
		want string // a prefix of the line, "" for none
	}{
		{client.State{Kind: client.Connecting, Endpoint: "gw:1", Attempt: 1}, ""},
		{client.State{Kind: client.Connected, Endpoint: "gw:1", ConnID: 1}, ""}, // Dial's: the chat says it itself
		{client.State{Kind: client.Disconnected, Endpoint: "gw:1", ConnID: 1, Err: lost}, "* connection lost (reading: EOF)"},
		{client.State{Kind: client.Connecting, Attempt: 1}, "* reconnecting..."},
		{client.State{Kind: client.Connecting, Attempt: 2, Err: lost}, "* still reconnecting (attempt 2)"},
		{client.State{Kind: client.Connecting, Attempt: 3, Err: lost}, ""},
		{client.State{Kind: client.Connecting, Attempt: 4, Err: lost}, "* still reconnecting (attempt 4)"},
		{client.State{Kind: client.Resumed, Endpoint: "gw:2", ConnID: 2}, "* reconnected to gw:2: resumed (conn 2)"},
		{client.State{Kind: client.Disconnected, ConnID: 2, Err: &protocol.Error{Code: protocol.CodeMigrated, Msg: "redirected to gw:3"}}, "* moving to another gateway"},
		{client.State{Kind: client.Resumed, Endpoint: "gw:3", ConnID: 3}, "* reconnected to gw:3: resumed (conn 3)"},
		{client.State{Kind: client.Disconnected, ConnID: 3, Err: lost}, "* connection lost"},
		{client.State{Kind: client.Connected, Endpoint: "gw:1", ConnID: 4}, "* reconnected to gw:1: logged in again (conn 4)"},
		{client.State{Kind: client.Closed}, ""},
	} {
		got := n.line(c.s)
		if (c.want == "") != (got == "") || !strings.HasPrefix(got, c.want) {
			t.Errorf("%v: %q, want %q...", c.s, got, c.want)
		}
	}
}

func TestChatSendNote(t *testing.T) {
	lost := &protocol.Error{Code: protocol.CodeShuttingDown}
	for _, c := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("waiting for uplink ack 3: %w: the connection was lost (%w)", client.ErrOutcomeUnknown, lost), "may not have been sent"},
		{fmt.Errorf("waiting for uplink ack 3: %w", client.ErrAckTimeout), "no answer in time"},
		{&protocol.Error{Code: 2042, Msg: "no such user"}, "not sent (2042): no such user"},
		{errors.New("client closed"), ""},
	} {
		if got := sendNote(c.err); (c.want == "") != (got == "") || !strings.Contains(got, c.want) {
			t.Errorf("%v: %q, want %q", c.err, got, c.want)
		}
	}
}

func ptr(s string) *string { return &s }

func deref(p *string) any {
	if p == nil {
		return nil
	}
	return *p
}
