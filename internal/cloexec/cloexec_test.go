package cloexec_test

import (
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"github.com/platoim/plato/internal/cloexec"
)

// TestAllKeepsSocketsFromChildren: a socket made without close-on-exec, as netpoll accepts them,
// reaches a child process unless All ran first.
func TestAllKeepsSocketsFromChildren(t *testing.T) {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0) // no SOCK_CLOEXEC
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	inherited := func() bool {
		out, err := exec.Command("sh", "-c", "ls -l /proc/self/fd").Output()
		if err != nil {
			t.Fatal(err)
		}
		// The child's own descriptors are 0-2 and the one ls reads; a socket is the leak.
		return strings.Contains(string(out), "socket:")
	}
	if !inherited() {
		t.Fatal("a socket without close-on-exec did not reach the child: the check below would prove nothing")
	}
	if err := cloexec.All(); err != nil {
		t.Fatal(err)
	}
	if inherited() {
		t.Fatal("a socket still reached the child after All")
	}
}
