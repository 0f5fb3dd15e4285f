package client

import (
	"fmt"
	"sync"
)

// StateKind says what happened to a client's connection.
type StateKind uint8

const (
	// Connecting: an attempt to reach a gateway starts.
	Connecting StateKind = iota + 1
	// Connected: a Login succeeded, so this is a new connection: sessions the server does not keep
	// across logins are gone, and uplinks that were waiting for an ack failed with ErrOutcomeUnknown.
	Connected
	// Resumed: a Resume succeeded: the server carries on with the connection that was lost, and the
	// uplinks that were waiting for an ack were sent again.
	Resumed
	// Disconnected: the connection ended other than by Close; Err says why. Closed follows when the
	// client will not reconnect, Connecting when it will.
	Disconnected
	// Closed: the client is over for good; Err is Client.Err. Nothing follows.
	Closed
)

var stateNames = map[StateKind]string{
	Connecting: "connecting", Connected: "connected", Resumed: "resumed", Disconnected: "disconnected", Closed: "closed",
}

func (k StateKind) String() string {
	if n, ok := stateNames[k]; ok {
		return n
	}
	return fmt.Sprintf("StateKind(%d)", uint8(k))
}

// State is one change of a client's connection, as Config.OnState is told.
type State struct {
	Kind StateKind
	// Endpoint is the gateway concerned: the one being tried (Connecting; empty when the attempt
	// first asks ipconf for a fresh list), reached (Connected, Resumed) or lost (Disconnected).
	Endpoint string
	// ConnID is the connection's ID (Connected, Resumed) or the lost one's (Disconnected).
	ConnID uint64
	// Attempt counts the Connecting events since the last connection was up, from 1.
	Attempt int
	// Err is why: the connection ended (Disconnected), the previous attempt failed (Connecting; nil on
	// the first), or the client ended (Closed; nil after Close).
	Err error
}

func (s State) String() string {
	out := s.Kind.String()
	if s.Endpoint != "" {
		out += " " + s.Endpoint
	}
	if s.ConnID != 0 {
		out += fmt.Sprintf(" conn %d", s.ConnID)
	}
	if s.Attempt != 0 {
		out += fmt.Sprintf(" attempt %d", s.Attempt)
	}
	if s.Err != nil {
		out += ": " + s.Err.Error()
	}
	return out
}

// notifier calls OnState on a goroutine of its own, in order: the goroutines that change the state
// hold locks or must get on with reconnecting, and a callback that sends must not deadlock them.
type notifier struct {
	fn   func(State)
	mu   sync.Mutex
	q    []State
	wake chan struct{}
}

func newNotifier(fn func(State)) *notifier {
	return &notifier{fn: fn, wake: make(chan struct{}, 1)}
}

// push queues s; it never blocks.
func (n *notifier) push(s State) {
	n.mu.Lock()
	n.q = append(n.q, s)
	n.mu.Unlock()
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

// run delivers the queued states until it has delivered Closed, which is always the last one.
func (n *notifier) run() {
	for range n.wake {
		n.mu.Lock()
		q := n.q
		n.q = nil
		n.mu.Unlock()
		for _, s := range q {
			n.fn(s)
			if s.Kind == Closed {
				return
			}
		}
	}
}
