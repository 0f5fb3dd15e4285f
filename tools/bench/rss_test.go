package bench

import (
	"net"
	"os"
	"runtime"
	"slices"
	"testing"
)

func TestParseVmRSS(t *testing.T) {
	status := "Name:\tplato\nVmPeak:\t  9999 kB\nVmRSS:\t   2048 kB\nThreads:\t4\n"
	if got := parseVmRSS([]byte(status)); got != 2048<<10 {
		t.Fatalf("VmRSS parsed as %d", got)
	}
	if parseVmRSS([]byte("Name: x\n")) != 0 {
		t.Fatal("a status without VmRSS parsed as non-zero")
	}
}

func TestListeningInodes(t *testing.T) {
	table := `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:22C4 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1111 1 0000000000000000 100 0 0 10 0
   1: 00000000:22C4 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2222 1 0000000000000000 100 0 0 10 0
   2: 0100007F:22C4 0200007F:D431 01 00000000:00000000 00:00000000 00000000     0        0 3333 1 0000000000000000 100 0 0 10 0
   3: 0200007F:22C4 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4444 1 0000000000000000 100 0 0 10 0
   4: 0100007F:22C5 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 5555 1 0000000000000000 100 0 0 10 0
`
	// Port 8900 (0x22C4) on 127.0.0.1: the 127.0.0.1 and the wildcard listeners, not the
	// established connection, not 127.0.0.2's listener, not port 8901.
	got := listeningInodes([]byte(table), net.ParseIP("127.0.0.1"), 8900)
	if !slices.Equal(got, []string{"1111", "2222"}) {
		t.Fatalf("inodes %v, want [1111 2222]", got)
	}
	if ip := procIP("0100007F"); !ip.Equal(net.ParseIP("127.0.0.1")) {
		t.Fatalf("procIP: %v", ip)
	}
}

func TestListenerPIDsFindsThisProcess(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads Linux's /proc")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	pids, err := listenerPIDs([]string{ln.Addr().String()})
	if err != nil || !slices.Equal(pids, []int{os.Getpid()}) {
		t.Fatalf("listenerPIDs: %v %v, want [%d]", pids, err, os.Getpid())
	}
	if selfRSS() <= 0 {
		t.Fatal("own RSS not read")
	}
}

func TestParseStatCPU(t *testing.T) {
	// utime 250 and stime 50 ticks (fields 14 and 15), with a command name holding ") (".
	stat := "4242 (plato) (x) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 12 0 300 1000 200"
	if got := parseStatCPU(stat); got != 3 {
		t.Fatalf("cpu seconds %v, want 3", got)
	}
	if pid, ppid, ok := parseStatPIDs(stat); !ok || pid != 4242 || ppid != 1 {
		t.Fatalf("pids %d %d %v", pid, ppid, ok)
	}
	if parseStatCPU("garbage") != 0 {
		t.Fatal("garbage parsed")
	}
	if cpuSeconds(os.Getpid()) <= 0 && runtime.GOOS == "linux" {
		t.Fatal("own CPU time not read")
	}
}

func TestCPUSinceSurvivesRestarts(t *testing.T) {
	before := map[int]float64{1: 10, 2: 5, 3: 7}
	after := map[int]float64{1: 12, 2: 6, 4: 0.5} // 3 ended, 4 started (a plugin restarted)
	if got := cpuSince(before, after); got != 3.5 {
		t.Fatalf("cpu since %v, want 3.5", got)
	}
	if s, e := churn(before, after); s != 1 || e != 1 {
		t.Fatalf("churn started %d ended %d, want 1 and 1", s, e)
	}
	if cpuSince(nil, after) != 0 {
		t.Fatal("no first sample, yet CPU counted")
	}
}
