package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/platoim/plato/examples/demo"
	"github.com/platoim/plato/sdk/client"
	"github.com/platoim/plato/sdk/protocol"
)

const chatHelp = `Commands:
  @bob hello       a direct message to the device bob
  #lobby hello     a message to the room lobby (join it first)
  hello            a message to the current room: the last one joined or written to
  /join lobby      join a room; you stay in it across logins until you leave it
  /leave lobby     leave a room
  /who [lobby]     who is in a room now (default: the current room)
  /help            this help
  /quit            leave (Ctrl-D does too)
`

// runChat is a terminal client for the demo chat business server (examples/demo), on the device SDK.
func runChat(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("plato chat", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, "Usage: plato chat --did NAME [--room ROOM]... [flags]\n\n"+
			"Connects as a device to the platform `plato up` runs and chats through its demo business server:\n"+
			"direct messages between devices, and rooms (Plato sessions) that you stay in across logins.\n\n"+
			chatHelp+"\nFlags:\n")
		fs.PrintDefaults()
	}
	ipconfURL := fs.String("ipconf", "http://127.0.0.1:8080", "ipconf URL")
	app := fs.String("app", "demo", "app ID")
	did := fs.String("did", "", "this device's ID (required)")
	uid := fs.String("uid", "", "user ID (default: the did)")
	cred := fs.String("credential", "", "the device's credential from its app's backend (default: ask --login)")
	login := fs.String("login", "http://127.0.0.1:8903/login", "the demo backend's login endpoint, asked for a credential when --credential is not given")
	var rooms []string
	fs.Func("room", "join room `ROOM` at start (repeat for several)", func(v string) error {
		rooms = append(rooms, v)
		return nil
	})
	err := fs.Parse(args)
	if err != nil {
		return err
	}
	if *did == "" {
		return errors.New("--did is required, e.g. plato chat --did alice")
	}
	if *uid == "" {
		*uid = *did
	}
	if *cred == "" {
		if *cred, err = loginAt(ctx, *login, *app, *did, *uid); err != nil {
			return err
		}
	}
	out := &syncWriter{w: stdout}
	var notes connNotes
	c, err := client.Dial(ctx, client.Config{
		IPConfURL: *ipconfURL, AppID: *app, DID: *did, UID: *uid, Credential: *cred, Platform: "plato-chat/1",
		// The chat outlives a restart of the platform: it resumes, or logs in again, by itself.
		Reconnect: true,
		OnState: func(s client.State) {
			if line := notes.line(s); line != "" {
				out.printf("%s\n", line)
			}
		},
	})
	if err != nil {
		return fmt.Errorf("connecting: %w", err)
	}
	defer c.Close()
	out.printf("connected to %s as %s (conn %d). Type /help for commands.\n", c.Endpoint(), *did, c.ConnID())

	go func() {
		for {
			select {
			case m, ok := <-c.Messages():
				if !ok {
					return
				}
				out.printf("%s\n", formatDownlink(m))
			case <-c.Done():
				return
			}
		}
	}()

	current := ""
	// send sends in, and adopts its room as the current one if the demo took it.
	send := func(in chatInput) error {
		payload, _ := json.Marshal(in.msg)
		if err := c.Send(ctx, payload); err != nil {
			if note := sendNote(err); note != "" {
				out.printf("%s\n", note)
				return nil
			}
			if ctx.Err() != nil {
				return nil // interrupted while it waited for the connection
			}
			return fmt.Errorf("sending: %w", err)
		}
		if in.room != nil {
			current = *in.room
		}
		return nil
	}
	for _, r := range rooms {
		if err := send(chatInput{msg: &demo.Message{Join: r}, room: &r}); err != nil {
			return err
		}
	}

	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-c.Done():
			return fmt.Errorf("connection closed: %w", c.Err())
		case line, ok := <-lines:
			if !ok {
				return nil
			}
			in := parseChatLine(line, current)
			switch {
			case in.quit:
				return nil
			case in.note != "":
				out.printf("%s", in.note)
			case in.msg != nil:
				if err := send(in); err != nil {
					return err
				}
			}
		}
	}
}

// chatInput is what a line typed in the chat asks for: a message to send, a note to print, or quit.
type chatInput struct {
	msg  *demo.Message
	room *string // the current room once msg is accepted
	note string
	quit bool
}

// parseChatLine reads one typed line; current is the current room ("" for none).
func parseChatLine(line, current string) chatInput {
	line = strings.TrimSpace(line)
	if line == "" {
		return chatInput{}
	}
	cmd, rest, _ := strings.Cut(line, " ")
	rest = strings.TrimSpace(rest)
	switch {
	case cmd == "/quit" || cmd == "/exit":
		return chatInput{quit: true}
	case cmd == "/help":
		return chatInput{note: chatHelp}
	case cmd == "/join" && rest != "":
		return chatInput{msg: &demo.Message{Join: rest}, room: &rest}
	case cmd == "/leave" && rest != "":
		in := chatInput{msg: &demo.Message{Leave: rest}}
		if rest == current {
			none := ""
			in.room = &none
		}
		return in
	case cmd == "/who":
		if rest == "" {
			rest = current
		}
		if rest == "" {
			return chatInput{note: "say which room: /who lobby\n"}
		}
		return chatInput{msg: &demo.Message{Who: rest}}
	case strings.HasPrefix(cmd, "/"):
		return chatInput{note: "unknown command " + cmd + "; /help lists them\n"}
	case len(cmd) > 1 && cmd[0] == '@' && rest != "":
		return chatInput{msg: &demo.Message{To: cmd[1:], Text: rest}}
	case len(cmd) > 1 && cmd[0] == '#' && rest != "":
		room := cmd[1:]
		return chatInput{msg: &demo.Message{Room: room, Text: rest}, room: &room}
	case cmd[0] == '@' || cmd[0] == '#':
		return chatInput{note: `say "@bob hello" or "#lobby hello"` + "\n"}
	case current != "":
		return chatInput{msg: &demo.Message{Room: current, Text: line}}
	}
	return chatInput{note: `no current room: "@bob hello" to message bob, "/join lobby" to join a room (/help)` + "\n"}
}

// formatDownlink renders a downlink from the demo: "[lobby] alice: hi" for a room, "@alice: hi" for
// a direct message, "* ..." for the demo's own notices.
func formatDownlink(m client.Message) string {
	var d demo.Delivered
	if json.Unmarshal(m.Payload, &d) != nil || d.From == "" {
		return fmt.Sprintf("[msg %d] %s", m.MsgID, m.Payload)
	}
	switch {
	case d.From == demo.System && d.Room != "" && d.Who != nil:
		return fmt.Sprintf("[%s] online: %s", d.Room, strings.Join(d.Who, ", "))
	case d.From == demo.System && d.Room != "":
		return fmt.Sprintf("[%s] * %s", d.Room, d.Text)
	case d.From == demo.System:
		return "* " + d.Text
	case d.Room != "":
		return fmt.Sprintf("[%s] %s: %s", d.Room, d.From, d.Text)
	}
	return fmt.Sprintf("@%s: %s", d.From, d.Text)
}

// sendNote is the line that explains a failed Send the chat can carry on after, or "".
func sendNote(err error) string {
	var pe *protocol.Error
	switch {
	case errors.Is(err, client.ErrOutcomeUnknown):
		return "* the connection was lost before the server answered; that message may not have been sent"
	case errors.Is(err, client.ErrAckTimeout):
		return "* no answer in time; that message may not have been sent"
	case errors.As(err, &pe):
		return fmt.Sprintf("not sent (%d): %s", uint16(pe.Code), refusalText(pe))
	}
	return ""
}

// connNotes turns the client's connection states into the chat's short lines. Failed attempts are
// told at attempts 2, 4, 8...: enough to see it is still trying, without a line per backoff; Dial's
// own states are left to the "connected to" line.
type connNotes struct {
	down bool // a connection was lost and none is up yet
}

func (n *connNotes) line(s client.State) string {
	switch s.Kind {
	case client.Connecting:
		switch {
		case !n.down:
		case s.Attempt == 1:
			return "* reconnecting..."
		case s.Err != nil && s.Attempt&(s.Attempt-1) == 0:
			return fmt.Sprintf("* still reconnecting (attempt %d): %v", s.Attempt, s.Err)
		}
	case client.Disconnected:
		// Not "reconnecting" yet: a final reason (1203 replaced) ends the chat instead.
		n.down = true
		if pe := (*protocol.Error)(nil); errors.As(s.Err, &pe) && pe.Code == protocol.CodeMigrated {
			// A Redirect (plato ops migrate|drain, a gateway stopping): the client resumes there.
			return fmt.Sprintf("* moving to another gateway (%v)", s.Err)
		}
		return fmt.Sprintf("* connection lost (%v)", s.Err)
	case client.Resumed:
		n.down = false
		return fmt.Sprintf("* reconnected to %s: resumed (conn %d)", s.Endpoint, s.ConnID)
	case client.Connected:
		if !n.down {
			return ""
		}
		n.down = false
		return fmt.Sprintf("* reconnected to %s: logged in again (conn %d); messages in flight may be lost", s.Endpoint, s.ConnID)
	}
	return ""
}

// refusalText explains a refused uplink in the chat's own terms where it can.
func refusalText(pe *protocol.Error) string {
	if pe.Msg != "" {
		return pe.Msg
	}
	return pe.Code.String()
}

// syncWriter lets the reader goroutine and the input loop print without interleaving lines.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) printf(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fmt.Fprintf(s.w, format, args...)
}

// loginAt asks the app's backend (the demo's login endpoint) for the device's credential, the way
// an app signs its user in before it connects to Plato.
func loginAt(ctx context.Context, loginURL, app, did, uid string) (string, error) {
	u, err := url.Parse(loginURL)
	if err != nil {
		return "", fmt.Errorf("--login %q: %w", loginURL, err)
	}
	u.RawQuery = url.Values{"app_id": {app}, "did": {did}, "user": {uid}}.Encode()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("asking %s for a credential (is `plato up` running? or pass --credential): %w", loginURL, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("asking %s for a credential: HTTP %d: %s", loginURL, resp.StatusCode, strings.TrimSpace(string(body)))
	}
	var c demo.Credential
	if err := json.Unmarshal(body, &c); err != nil || c.Credential == "" {
		return "", fmt.Errorf("asking %s for a credential: an answer without one: %q", loginURL, body)
	}
	return c.Credential, nil
}
