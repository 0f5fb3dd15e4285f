package main

import (
	"encoding/json"
	"testing"

	"github.com/platoim/plato/examples/demo"
	"github.com/platoim/plato/sdk/client"
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

func ptr(s string) *string { return &s }

func deref(p *string) any {
	if p == nil {
		return nil
	}
	return *p
}
