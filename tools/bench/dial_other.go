//go:build !linux

package bench

import "syscall"

// dialControl does nothing here; see dial_linux.go.
func dialControl(_, _ string, _ syscall.RawConn) error { return nil }
