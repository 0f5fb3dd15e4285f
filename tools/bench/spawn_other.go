//go:build !linux

package bench

import "os/exec"

// detach does nothing here: workers still stop when their stdin closes.
func detach(*exec.Cmd) {}

func openFileLimit() string { return "a limited number of" }
