package sessionbindstage

import (
	"fmt"
	"strings"
	"time"

	"github.com/platoim/plato/sdk/stage"
)

// DefaultTimeout is Config.Timeout's default.
const DefaultTimeout = 500 * time.Millisecond

// MaxSessionLen is the longest session name the state server accepts, in bytes; a Join naming a
// longer one fails as a whole.
const MaxSessionLen = 256

// The values of on_failure.
const (
	Allow  = "allow"
	Refuse = "refuse"
)

// Config is the stage's config block in the pipeline YAML (keys in brackets). Unknown keys are an
// error.
type Config struct {
	// Timeout (timeout) bounds the business server's Sessions answer, as a Go duration string.
	// Keep it below the stage's YAML timeout, so that the stage decides before its batch fails.
	// Default DefaultTimeout (500ms).
	Timeout time.Duration
	// OnFailure (on_failure) is what a login gets when the sessions cannot be had (the business
	// server is down, slow, or the join fails): "allow" (the default) lets it proceed without
	// them, and logs it; "refuse" rejects it, with 1302 when the business server timed out, 1301
	// when it failed otherwise, 1306 when joining failed.
	OnFailure string
	// Always (always) are sessions every connection of the app joins besides the business
	// server's, such as an app-wide lobby; they are joined even when on_failure allows a login
	// whose Sessions call failed. Default none.
	Always []string
}

// rawConfig is Config as written.
type rawConfig struct {
	Timeout   string   `json:"timeout"`
	OnFailure string   `json:"on_failure"`
	Always    []string `json:"always"`
}

// parseConfig decodes raw, fills in the defaults and validates the result.
func parseConfig(raw []byte) (Config, error) {
	var r rawConfig
	if err := stage.DecodeConfig(raw, &r); err != nil {
		return Config{}, fmt.Errorf("sessionbind: %w", err)
	}
	c := Config{Timeout: DefaultTimeout, OnFailure: Allow}
	if r.Timeout != "" {
		d, err := time.ParseDuration(r.Timeout)
		if err != nil {
			return c, fmt.Errorf("sessionbind: timeout: %q is not a duration such as \"500ms\"", r.Timeout)
		}
		if d <= 0 {
			return c, fmt.Errorf("sessionbind: timeout: must be positive, got %s", r.Timeout)
		}
		c.Timeout = d
	}
	switch r.OnFailure {
	case "":
	case Allow, Refuse:
		c.OnFailure = r.OnFailure
	default:
		return c, fmt.Errorf("sessionbind: on_failure: %q is neither %q nor %q", r.OnFailure, Allow, Refuse)
	}
	seen := make(map[string]int, len(r.Always))
	for i, s := range r.Always {
		if why := badName(s); why != "" {
			return c, fmt.Errorf("sessionbind: always[%d]: session name %q %s", i, s, why)
		}
		if j, dup := seen[s]; dup {
			return c, fmt.Errorf("sessionbind: always[%d]: %q is already listed at always[%d]", i, s, j)
		}
		seen[s] = i
	}
	c.Always = r.Always
	return c, nil
}

// badName says why the state server would refuse s as a session name, or "".
func badName(s string) string {
	switch {
	case s == "":
		return "is empty"
	case len(s) > MaxSessionLen:
		return fmt.Sprintf("is longer than %d bytes", MaxSessionLen)
	case strings.IndexByte(s, 0) >= 0:
		return "holds a NUL byte"
	}
	return ""
}
