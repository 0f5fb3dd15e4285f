package bench

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// CPU used during the measured phase, read from /proc/<pid>/stat (utime + stime) of the server
// processes and their children, tells how the machine's cores were shared: on a small box the bench's own devices compete with the servers, and
// a figure means little without that. 0 where /proc is not there.

// clockTicks is USER_HZ, the unit of utime and stime: 100 on every Linux architecture Go supports.
const clockTicks = 100

// cpuSeconds is the user plus system CPU time pid has used, in seconds.
func cpuSeconds(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	return parseStatCPU(string(b))
}

// parseStatCPU reads utime and stime (fields 14 and 15) from a /proc/<pid>/stat line. The command
// name (field 2) may contain spaces and parentheses, so fields are counted after its last ')'.
func parseStatCPU(stat string) float64 {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(stat[i+1:])
	if len(f) < 13 {
		return 0
	}
	ut, err1 := strconv.ParseFloat(f[11], 64)
	st, err2 := strconv.ParseFloat(f[12], 64)
	if err1 != nil || err2 != nil {
		return 0
	}
	return (ut + st) / clockTicks
}

// cpuSample is the CPU time of pids and their child processes (plato up's plugin processes are part
// of the server's cost), per process.
func cpuSample(pids []int) map[int]float64 {
	m := map[int]float64{}
	for _, p := range withChildren(pids) {
		m[p] = cpuSeconds(p)
	}
	return m
}

// cpuSince is the CPU used between two samples: a process in both counts its growth, one that
// appeared since (a restarted plugin) counts all of its time, one that went away counts nothing
// more (its last seconds are lost, a small undercount).
func cpuSince(before, after map[int]float64) float64 {
	if len(before) == 0 {
		return 0
	}
	var s float64
	for p, t := range after {
		s += max(0, t-before[p])
	}
	return s
}

// withChildren adds the direct children of pids, read from each process's stat.
func withChildren(pids []int) []int {
	if len(pids) == 0 {
		return nil
	}
	parent := map[int]bool{}
	for _, p := range pids {
		parent[p] = true
	}
	out := append([]int(nil), pids...)
	procs, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, f := range procs {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		pid, ppid, ok := parseStatPIDs(string(b))
		if ok && parent[ppid] && !parent[pid] {
			out = append(out, pid)
		}
	}
	return out
}

// churn counts processes in one sample and not the other: started since, or ended.
func churn(before, after map[int]float64) (started, ended int) {
	for p := range after {
		if _, ok := before[p]; !ok {
			started++
		}
	}
	for p := range before {
		if _, ok := after[p]; !ok {
			ended++
		}
	}
	return started, ended
}

// parseStatPIDs reads the pid (field 1) and parent pid (field 4) of a /proc/<pid>/stat line.
func parseStatPIDs(stat string) (pid, ppid int, ok bool) {
	i := strings.LastIndexByte(stat, ')')
	sp := strings.IndexByte(stat, ' ')
	if i < 0 || sp < 0 {
		return 0, 0, false
	}
	f := strings.Fields(stat[i+1:])
	if len(f) < 2 {
		return 0, 0, false
	}
	pid, err1 := strconv.Atoi(stat[:sp])
	ppid, err2 := strconv.Atoi(f[1])
	return pid, ppid, err1 == nil && err2 == nil
}
