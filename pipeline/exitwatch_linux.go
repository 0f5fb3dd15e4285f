package pipeline

import (
	"os"

	"golang.org/x/sys/unix"
)

// watchExit returns a channel closed once process pid has terminated, reaped or not, and a func
// that stops watching. It lets the supervisor relaunch a killed plugin at once instead of at its
// next tick. A nil channel means the kernel cannot tell (no pidfd): the tick alone notices.
//
// pid must be a child not yet reaped, so that it cannot name another process: go-plugin reaps
// plugins only after they exit, and a plugin that exits before the pidfd is opened is still seen
// by the tick.
func watchExit(pid int) (<-chan struct{}, func()) {
	fd, err := unix.PidfdOpen(pid, unix.PIDFD_NONBLOCK)
	if err != nil {
		return nil, func() {}
	}
	// A non-blocking fd in an os.File waits in the runtime's poller: no thread per plugin.
	f := os.NewFile(uintptr(fd), "pidfd")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, func() {}
	}
	ch := make(chan struct{})
	go func() {
		gone := false
		// Read calls the func, waits for the fd to turn readable while it returns false, and
		// returns early with an error when f is closed (or cannot be polled).
		_ = rc.Read(func(fd uintptr) bool {
			pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
			n, err := unix.Poll(pfd, 0)
			gone = err == nil && n > 0
			return gone
		})
		if gone {
			close(ch)
		}
	}()
	return ch, func() { f.Close() }
}
