package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/platoim/plato/core/demo"
	"github.com/platoim/plato/sdk/client"
	"github.com/platoim/plato/sdk/protocol"
)

// runChat is a terminal client for the demo chat: "@bob hello" sends "hello" to bob.
func runChat(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("plato chat", flag.ContinueOnError)
	fs.SetOutput(stderr)
	ipconfURL := fs.String("ipconf", "http://127.0.0.1:8080", "ipconf URL")
	app := fs.String("app", "demo", "app ID")
	did := fs.String("did", "", "this device's ID (required)")
	uid := fs.String("uid", "", "user ID (default: the did)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *did == "" {
		return errors.New("--did is required, e.g. plato chat --did alice")
	}
	if *uid == "" {
		*uid = *did
	}
	c, err := client.Dial(ctx, client.Config{IPConfURL: *ipconfURL, AppID: *app, DID: *did, UID: *uid, Platform: "plato-chat/1"})
	if err != nil {
		return fmt.Errorf("connecting: %w", err)
	}
	defer c.Close()
	fmt.Fprintf(stdout, "connected to %s as %s (conn %d). Type \"@did message\" to send, /quit to leave.\n", c.Endpoint(), *did, c.ConnID())

	go func() {
		for {
			select {
			case m, ok := <-c.Messages():
				if !ok {
					return
				}
				var d demo.Delivered
				if json.Unmarshal(m.Payload, &d) == nil && d.From != "" {
					fmt.Fprintf(stdout, "[%s] %s\n", d.From, d.Text)
				} else {
					fmt.Fprintf(stdout, "[msg %d] %s\n", m.MsgID, m.Payload)
				}
			case <-c.Done():
				return
			}
		}
	}()

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
			line = strings.TrimSpace(line)
			if line == "" {
				continue
			}
			if line == "/quit" {
				return nil
			}
			to, text, found := strings.Cut(strings.TrimPrefix(line, "@"), " ")
			if !strings.HasPrefix(line, "@") || !found {
				fmt.Fprintln(stdout, `say "@did message", e.g. "@bob hello"`)
				continue
			}
			payload, _ := json.Marshal(demo.Message{To: to, Text: text})
			if err := c.Send(ctx, payload); err != nil {
				var pe *protocol.Error
				if errors.As(err, &pe) {
					fmt.Fprintf(stdout, "not sent: %v\n", pe)
					continue
				}
				return fmt.Errorf("sending: %w", err)
			}
		}
	}
}
