package demo

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/platoim/plato/sdk/business"
)

// do carries out one queued command against Plato. Failures are logged: the device's uplink was
// already ACKed.
func (s *Server) do(ctx context.Context, j job) {
	plato, err := s.client(j.app)
	if err != nil || plato == nil {
		s.log.Error("cannot reach Plato; dropping a command", "app", j.app, "did", j.did, "err", err)
		return
	}
	switch j.cmd.kind {
	case cmdDirect:
		err = s.direct(ctx, plato, j)
	case cmdRoom:
		err = s.push(ctx, plato, business.Push{Session: j.cmd.arg}, Delivered{From: j.did, Room: j.cmd.arg, Text: j.cmd.text})
	case cmdJoin:
		err = s.join(ctx, plato, j)
	case cmdLeave:
		err = s.leave(ctx, plato, j)
	case cmdWho:
		err = s.who(ctx, plato, j)
	}
	if err != nil {
		s.log.Warn("chat command failed", "app", j.app, "did", j.did, "err", err)
	}
}

// push sends d to p's targets.
func (s *Server) push(ctx context.Context, plato *business.Client, p business.Push, d Delivered) error {
	_, err := s.pushResult(ctx, plato, p, d)
	return err
}

func (s *Server) pushResult(ctx context.Context, plato *business.Client, p business.Push, d Delivered) (*business.PushResult, error) {
	payload, err := json.Marshal(d)
	if err != nil {
		return nil, fmt.Errorf("encoding a downlink: %w", err)
	}
	p.Payload = payload
	return plato.Push(ctx, p)
}

// notice tells one device something from System.
func (s *Server) notice(ctx context.Context, plato *business.Client, did string, d Delivered) error {
	d.From = System
	return s.push(ctx, plato, business.Push{DIDs: []string{did}}, d)
}

func (s *Server) direct(ctx context.Context, plato *business.Client, j job) error {
	to := j.cmd.arg
	res, err := s.pushResult(ctx, plato, business.Push{DIDs: []string{to}}, Delivered{From: j.did, Text: j.cmd.text})
	if err != nil {
		return err
	}
	if to != j.did && slices.Contains(res.Offline(), to) {
		return s.notice(ctx, plato, j.did, Delivered{Text: to + " is offline"})
	}
	return nil
}

// join binds the device's connection to the room, and tells the room.
func (s *Server) join(ctx context.Context, plato *business.Client, j job) error {
	room := j.cmd.arg
	if _, err := plato.Bind(ctx, room, j.did); err != nil {
		return err
	}
	// Offline means the device disconnected since: it joins at its next login (Sessions).
	return s.push(ctx, plato, business.Push{Session: room}, Delivered{From: System, Room: room, Text: j.did + " joined"})
}

// leave tells the room while the device is still in it, then unbinds it.
func (s *Server) leave(ctx context.Context, plato *business.Client, j job) error {
	room := j.cmd.arg
	if err := s.push(ctx, plato, business.Push{Session: room}, Delivered{From: System, Room: room, Text: j.did + " left"}); err != nil {
		s.log.Warn("telling a room about a leave failed", "app", j.app, "room", room, "err", err)
	}
	_, err := plato.Unbind(ctx, room, j.did)
	return err
}

// who answers the asker with the dids online in the room.
func (s *Server) who(ctx context.Context, plato *business.Client, j job) error {
	room := j.cmd.arg
	devs, err := plato.Online(ctx, room)
	if err != nil {
		return err
	}
	dids := make([]string, 0, len(devs))
	for _, d := range devs {
		dids = append(dids, d.DID)
	}
	slices.Sort(dids)
	dids = slices.Compact(dids) // a did may be online on several connections
	text := "nobody is in " + room
	if len(dids) > 0 {
		text = "in " + room + ": " + strings.Join(dids, ", ")
	}
	return s.notice(ctx, plato, j.did, Delivered{Room: room, Text: text, Who: dids})
}
