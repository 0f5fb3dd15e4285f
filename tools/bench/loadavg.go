package bench

import (
	"os"
	"strings"
)

// LoadAverage is the machine's load average (/proc/loadavg: 1, 5 and 15 minutes) before and after
// a run: how busy the machine was, with the bench and without it. Empty where /proc is not there.
type LoadAverage struct {
	Before string `json:"before"`
	After  string `json:"after"`
}

// loadAverage is the first three fields of /proc/loadavg, or "".
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	return parseLoadAvg(string(b))
}

func parseLoadAvg(s string) string {
	f := strings.Fields(s)
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}
