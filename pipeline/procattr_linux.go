package pipeline

import "syscall"

// pluginProcAttr makes the kernel SIGKILL a plugin when the host dies, even by SIGKILL, so that no
// plugin outlives its host (the SDK's Serve also watches its parent, as a second line).
//
// Pdeathsig fires when the thread that forked the child exits, not the process. Go only ends an OS
// thread when a goroutine exits while locked to it, which the goroutines starting plugins never
// do, so in practice it is the process. Setpgid stays false: a plugin stays in the host's process
// group, and a terminal's Ctrl-C reaches both.
func pluginProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: false}
}
