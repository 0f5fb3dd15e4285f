package bench

import (
	"os/exec"
	"strconv"
	"syscall"
)

// detach puts a worker in its own process group, so a Ctrl-C at the terminal reaches only the
// parent, which then stops the workers in order and still collects their results; and asks the
// kernel to kill the worker if the parent dies without closing its stdin.
func detach(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// openFileLimit is this process's soft limit on open files, as text for a note.
func openFileLimit() string {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return "an unknown number of"
	}
	return strconv.FormatUint(l.Cur, 10)
}
