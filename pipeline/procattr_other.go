//go:build !linux

package pipeline

import "syscall"

// pluginProcAttr: outside Linux there is no parent-death signal; the SDK's Serve watching its
// parent is what ends an orphaned plugin.
func pluginProcAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{} }
