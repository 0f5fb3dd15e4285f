package config

import (
	"strings"
	"testing"
	"time"
)

// Natural batching is the default on every batched hop; a positive max_delay brings the linger
// back, a negative one is refused by name.
func TestBatchDelayKeys(t *testing.T) {
	env := []string{"PLATO_AUTH__TOKEN_SECRET=" + secret}
	cfg, _, err := Load("", env, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Gateway.Batch.MaxDelay != 0 || cfg.State.Batch.MaxDelay != 0 {
		t.Errorf("default max_delay: gateway %v, state %v, want 0 (natural batching)", cfg.Gateway.Batch.MaxDelay, cfg.State.Batch.MaxDelay)
	}
	cfg, _, err = Load("", env, map[string]string{"gateway.batch.max_delay": "500us", "state.batch.max_delay": "0s"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Gateway.Batch.MaxDelay != 500*time.Microsecond || cfg.State.Batch.MaxDelay != 0 {
		t.Errorf("set max_delay: gateway %v, state %v", cfg.Gateway.Batch.MaxDelay, cfg.State.Batch.MaxDelay)
	}
	_, _, err = Load("", env, map[string]string{"state.batch.max_delay": "-1ms"})
	if err == nil || !strings.Contains(err.Error(), "state.batch.max_delay") {
		t.Errorf("negative max_delay: %v, want an error naming state.batch.max_delay", err)
	}
}
