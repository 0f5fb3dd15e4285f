package config

import "testing"

// state.in_process_link is on by default, and a file, the environment or --set turn it off.
func TestInProcessLinkKey(t *testing.T) {
	env := []string{"PLATO_AUTH__TOKEN_SECRET=" + secret}
	if !Default().State.InProcessLink || !DefaultInProcessLink {
		t.Fatal("the in-process link is off by default")
	}
	cfg, _, err := Load(writeFile(t, "state: {in_process_link: false}"), env, map[string]string{})
	if err != nil || cfg.State.InProcessLink {
		t.Fatalf("file: %v, %v; want off", cfg.State.InProcessLink, err)
	}
	cfg, _, err = Load(writeFile(t, ""), append(env, "PLATO_STATE__IN_PROCESS_LINK=false"), map[string]string{})
	if err != nil || cfg.State.InProcessLink {
		t.Fatalf("environment: %v, %v; want off", cfg.State.InProcessLink, err)
	}
	cfg, _, err = Load(writeFile(t, ""), env, map[string]string{"state.in_process_link": "false"})
	if err != nil || cfg.State.InProcessLink {
		t.Fatalf("--set: %v, %v; want off", cfg.State.InProcessLink, err)
	}
	cfg, _, err = Load(writeFile(t, ""), env, map[string]string{})
	if err != nil || !cfg.State.InProcessLink {
		t.Fatalf("unset: %v, %v; want on", cfg.State.InProcessLink, err)
	}
}
