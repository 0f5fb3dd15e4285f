package testkit

import (
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"testing"
)

// handedPorts are the ports FreeAddr handed out in this test binary.
var handedPorts sync.Map

// FreeAddr is a loopback address nothing listens on, for a server started later. It is picked below
// the kernel's ephemeral range (32768 and up on Linux), where port 0 would pick: there the outgoing
// connections of every test running meanwhile take their local ports, and one of them could hold
// it by the time the server binds it. Ports handed out once are not handed out again.
func FreeAddr(t testing.TB) string {
	t.Helper()
	for range 1000 {
		port := 20000 + rand.IntN(12000)
		if _, taken := handedPorts.LoadOrStore(port, true); taken {
			continue
		}
		ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			continue
		}
		ln.Close()
		return ln.Addr().String()
	}
	t.Fatal("no free loopback port below the ephemeral range")
	return ""
}
