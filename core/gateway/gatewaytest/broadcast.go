package gatewaytest

import (
	"github.com/platoim/plato/internal/fanout"
	"github.com/platoim/plato/sdk/poll"
)

// Publish sends a session broadcast as a state server does, from a NATS connection other than the
// gateway's, and returns once NATS has it. m must be valid (fanout.Message.Validate).
func (h *Harness) Publish(m fanout.Message) {
	h.t.Helper()
	if err := m.Validate(); err != nil {
		h.t.Fatalf("publishing an invalid broadcast: %v", err)
	}
	h.PublishRaw(m.Append(nil))
}

// PublishRaw publishes b on the broadcast subject as it is, valid or not, and returns once NATS
// has it.
func (h *Harness) PublishRaw(b []byte) {
	h.t.Helper()
	if err := h.pub.Publish(fanout.Subject, b); err != nil {
		h.t.Fatalf("publishing a broadcast: %v", err)
	}
	if err := h.pub.FlushTimeout(poll.Timeout); err != nil {
		h.t.Fatalf("flushing a broadcast: %v", err)
	}
}
