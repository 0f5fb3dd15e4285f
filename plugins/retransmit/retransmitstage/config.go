package retransmitstage

import (
	"fmt"
	"time"

	"github.com/platoim/plato/sdk/stage"
)

// The defaults of Config.
const (
	DefaultInitialBackoff = 2 * time.Second
	DefaultMaxBackoff     = 30 * time.Second
	DefaultMaxAttempts    = 5
)

// Config is the stage's config block in the pipeline YAML (keys in brackets). Durations are Go
// duration strings ("500ms", "2s"). Unknown keys are an error.
type Config struct {
	// InitialBackoff (initial_backoff) is how long after a downlink is sent it is resent when not
	// ACKed. Each resend doubles the wait. Zero or absent: DefaultInitialBackoff (2s).
	InitialBackoff time.Duration
	// MaxBackoff (max_backoff) caps the doubled wait; at least InitialBackoff. Zero or absent:
	// DefaultMaxBackoff (30s).
	MaxBackoff time.Duration
	// MaxAttempts (max_attempts) is how many times a downlink is written in all, the first send
	// included; when the last one goes unACKed for its backoff, the business server is told the
	// downlink was undelivered. 1 means never resend. Zero or absent: DefaultMaxAttempts (5).
	MaxAttempts int
}

// rawConfig is Config as written.
type rawConfig struct {
	InitialBackoff string `json:"initial_backoff"`
	MaxBackoff     string `json:"max_backoff"`
	MaxAttempts    int    `json:"max_attempts"`
}

// parseConfig decodes raw, fills in the defaults and validates the result.
func parseConfig(raw []byte) (Config, error) {
	var r rawConfig
	if err := stage.DecodeConfig(raw, &r); err != nil {
		return Config{}, fmt.Errorf("retransmit: %w", err)
	}
	c := Config{MaxAttempts: r.MaxAttempts}
	var err error
	if c.InitialBackoff, err = duration("initial_backoff", r.InitialBackoff, DefaultInitialBackoff); err != nil {
		return c, err
	}
	if c.MaxBackoff, err = duration("max_backoff", r.MaxBackoff, DefaultMaxBackoff); err != nil {
		return c, err
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = DefaultMaxAttempts
	}
	switch {
	case c.MaxBackoff < c.InitialBackoff:
		return c, fmt.Errorf("retransmit: max_backoff: %s is below initial_backoff %s", c.MaxBackoff, c.InitialBackoff)
	case c.MaxAttempts < 1:
		return c, fmt.Errorf("retransmit: max_attempts: must be at least 1, got %d", c.MaxAttempts)
	}
	return c, nil
}

// duration parses the value of key, def when it is empty or zero.
func duration(key, s string, def time.Duration) (time.Duration, error) {
	if s == "" {
		return def, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("retransmit: %s: %q is not a duration such as \"2s\"", key, s)
	}
	if d < 0 {
		return 0, fmt.Errorf("retransmit: %s: must be positive, got %s", key, s)
	}
	if d == 0 {
		return def, nil
	}
	return d, nil
}
