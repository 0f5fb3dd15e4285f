package telemetry

import (
	"strconv"
	"sync/atomic"
)

// MaxCode bounds the codes Codes tells apart: Plato's protocol codes (1000-1999), business codes
// (2000-2999) and HTTP statuses all fit; anything else is counted as "other".
const MaxCode = 3000

// Codes counts events by code (a close reason, an ACK code, an HTTP status) with one atomic add:
// no map, no lock, no allocation on the hot path. The zero value is ready. It costs 24 KiB, once
// per counter family and process.
type Codes struct {
	n [MaxCode + 1]atomic.Int64 // the last slot is "other"
}

// Add counts one event with code.
func (c *Codes) Add(code int) {
	if code < 0 || code >= MaxCode {
		code = MaxCode
	}
	c.n[code].Add(1)
}

// Load is the count of code.
func (c *Codes) Load(code int) int64 {
	if code < 0 || code >= MaxCode {
		code = MaxCode
	}
	return c.n[code].Load()
}

// Total is the count over every code.
func (c *Codes) Total() int64 {
	var t int64
	for i := range c.n {
		t += c.n[i].Load()
	}
	return t
}

// Each calls f with every code counted at least once, as its label ("1209", or "other").
func (c *Codes) Each(f func(code int, label string, n int64)) {
	for i := range c.n {
		n := c.n[i].Load()
		if n == 0 {
			continue
		}
		if i == MaxCode {
			f(-1, "other", n)
			continue
		}
		f(i, strconv.Itoa(i), n)
	}
}

// Signals counts events by a one-byte signal number (protocol.Signal), one atomic add each.
type Signals struct {
	n [256]atomic.Int64
}

// Add counts one event of signal s.
func (s *Signals) Add(sig uint8) { s.n[sig].Add(1) }

// AddN counts n events of signal s.
func (s *Signals) AddN(sig uint8, n int64) { s.n[sig].Add(n) }

// Load is the count of signal s.
func (s *Signals) Load(sig uint8) int64 { return s.n[sig].Load() }

// Total is the count over every signal.
func (s *Signals) Total() int64 {
	var t int64
	for i := range s.n {
		t += s.n[i].Load()
	}
	return t
}
