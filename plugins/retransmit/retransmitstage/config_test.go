package retransmitstage

import (
	"strings"
	"testing"
	"time"
)

func TestParseConfig(t *testing.T) {
	c, err := parseConfig([]byte(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	if c.InitialBackoff != DefaultInitialBackoff || c.MaxBackoff != DefaultMaxBackoff || c.MaxAttempts != DefaultMaxAttempts {
		t.Errorf("defaults: got %+v", c)
	}
	c, err = parseConfig([]byte(`{"initial_backoff": "100ms", "max_backoff": "1s", "max_attempts": 3}`))
	if err != nil {
		t.Fatal(err)
	}
	if c.InitialBackoff != 100*time.Millisecond || c.MaxBackoff != time.Second || c.MaxAttempts != 3 {
		t.Errorf("got %+v", c)
	}
}

func TestParseConfigErrors(t *testing.T) {
	for cfg, want := range map[string]string{
		`{"initial_backoff": "soon"}`:                     "initial_backoff",
		`{"initial_backoff": 5}`:                          "initial_backoff",
		`{"initial_backoff": "-1s"}`:                      "initial_backoff: must be positive",
		`{"initial_backoff": "10s", "max_backoff": "1s"}`: "max_backoff: 1s is below initial_backoff 10s",
		`{"max_attempts": -1}`:                            "max_attempts: must be at least 1",
		`{"max_attempt": 3}`:                              "unknown field",
		`[]`:                                              "decoding config",
	} {
		_, err := parseConfig([]byte(cfg))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got error %v, want one containing %q", cfg, err, want)
		}
	}
}
