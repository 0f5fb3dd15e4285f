package bench

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Memory per connection is read from Linux's /proc: a process's resident set (VmRSS) before and
// after the devices connect, divided by the devices. That is user-space memory only (heap, stacks,
// netpoll buffers); socket buffers are kernel memory and not in it. Elsewhere these return 0 and
// the summary says the figure is unavailable.

// rssOf returns pid's resident set in bytes, or 0 when it cannot be read.
func rssOf(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	return parseVmRSS(b)
}

func selfRSS() int64 { return rssOf(os.Getpid()) }

// parseVmRSS finds "VmRSS:   1234 kB" in a /proc/<pid>/status.
func parseVmRSS(status []byte) int64 {
	for _, line := range bytes.Split(status, []byte("\n")) {
		rest, ok := bytes.CutPrefix(line, []byte("VmRSS:"))
		if !ok {
			continue
		}
		f := strings.Fields(string(rest))
		if len(f) == 0 {
			return 0
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0
		}
		return kb << 10
	}
	return 0
}

// listenerPIDs finds the processes listening on the TCP addresses addrs (host:port): the socket
// inodes of listening sockets on that port from /proc/net/tcp{,6}, then the processes holding them
// from /proc/*/fd. It needs permission to read those processes' fd tables (same user, or root).
func listenerPIDs(addrs []string) ([]int, error) {
	inodes := map[string]bool{}
	for _, a := range addrs {
		host, port, err := net.SplitHostPort(a)
		if err != nil {
			return nil, err
		}
		p, err := strconv.ParseUint(port, 10, 16)
		if err != nil {
			return nil, err
		}
		for _, file := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
			b, err := os.ReadFile(file)
			if err != nil {
				continue
			}
			for _, ino := range listeningInodes(b, net.ParseIP(host), uint16(p)) {
				inodes[ino] = true
			}
		}
	}
	if len(inodes) == 0 {
		return nil, fmt.Errorf("no listening socket found for %s", strings.Join(addrs, ", "))
	}
	procs, err := filepath.Glob("/proc/[0-9]*")
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, dir := range procs {
		pid, err := strconv.Atoi(filepath.Base(dir))
		if err != nil {
			continue
		}
		if holdsSocket(dir, inodes) {
			pids = append(pids, pid)
		}
	}
	if len(pids) == 0 {
		return nil, fmt.Errorf("cannot see which process listens on %s (permissions?)", strings.Join(addrs, ", "))
	}
	return pids, nil
}

func holdsSocket(procDir string, inodes map[string]bool) bool {
	fds, err := os.ReadDir(filepath.Join(procDir, "fd"))
	if err != nil {
		return false
	}
	for _, fd := range fds {
		link, err := os.Readlink(filepath.Join(procDir, "fd", fd.Name()))
		if err != nil {
			continue
		}
		if ino, ok := strings.CutPrefix(link, "socket:["); ok && inodes[strings.TrimSuffix(ino, "]")] {
			return true
		}
	}
	return false
}

// listeningInodes parses a /proc/net/tcp table: the inodes of sockets in LISTEN state (0A) on port,
// bound to ip or to the unspecified address.
func listeningInodes(table []byte, ip net.IP, port uint16) []string {
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(table))
	sc.Scan() // header
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 10 || f[3] != "0A" {
			continue
		}
		hexIP, hexPort, ok := strings.Cut(f[1], ":")
		if !ok {
			continue
		}
		if p, err := strconv.ParseUint(hexPort, 16, 16); err != nil || uint16(p) != port {
			continue
		}
		local := procIP(hexIP)
		if local == nil || !(local.IsUnspecified() || ip == nil || local.Equal(ip)) {
			continue
		}
		out = append(out, f[9])
	}
	return out
}

// procIP decodes /proc/net/tcp's address: 32-bit words in host (little-endian) byte order.
func procIP(h string) net.IP {
	b, err := hex.DecodeString(h)
	if err != nil || (len(b) != 4 && len(b) != 16) {
		return nil
	}
	for i := 0; i < len(b); i += 4 {
		b[i], b[i+1], b[i+2], b[i+3] = b[i+3], b[i+2], b[i+1], b[i]
	}
	return net.IP(b)
}
