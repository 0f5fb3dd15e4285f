// Package cloexec keeps a process's descriptors out of the programs it starts.
//
// netpoll, and so Kitex, accept sockets without close-on-exec, and os/exec passes every descriptor
// that lacks it to the child. A plugin started after devices or peers connected would hold a copy
// of each of their sockets: closing one in Plato would then not end the connection for its peer,
// which waits for a FIN that never comes while the plugin lives. Every place that starts a program
// calls All first.
package cloexec

import (
	"os"
	"strconv"
	"syscall"
)

// All marks every open descriptor above stderr close-on-exec. A descriptor opened by another
// goroutine while it runs may still be inherited; callers that accept connections also mark
// each one as they take it (Mark).
func All() error {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return err
	}
	for _, e := range entries {
		fd, err := strconv.Atoi(e.Name())
		if err != nil || fd <= 2 {
			continue
		}
		Mark(fd)
	}
	return nil
}

// Mark sets close-on-exec on fd. Errors are ignored: a descriptor closed meanwhile needs none.
func Mark(fd int) { syscall.CloseOnExec(fd) }
