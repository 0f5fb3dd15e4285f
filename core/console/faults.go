package console

import (
	"fmt"
	"sync"
	"time"
)

// faultRingSize bounds the faults a process remembers: the newest are kept.
const faultRingSize = 256

// Fault is one thing that went wrong, as the console lists it.
type Fault struct {
	At time.Time `json:"at"`
	// Node is the process that saw it (filled in by the fleet view).
	Node string `json:"node,omitempty"`
	// Kind is crash_loop (a stage's breaker opened, went half-open or closed again),
	// plugin_crash, slow_consumers (devices closed 1205) or overload (an action started or ended).
	Kind string `json:"kind"`
	// App and Stage name the pipeline stage, for crash_loop and plugin_crash.
	App   string `json:"app,omitempty"`
	Stage string `json:"stage,omitempty"`
	// Count is how many happened since the previous reading (crashes, devices closed).
	Count   int64  `json:"count,omitempty"`
	Message string `json:"message"`
}

// faultRing keeps the newest faultRingSize faults.
type faultRing struct {
	mu   sync.Mutex
	buf  []Fault
	next int // where the next fault goes once buf is full
}

func (f *faultRing) add(x Fault) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.buf) < faultRingSize {
		f.buf = append(f.buf, x)
		return
	}
	f.buf[f.next] = x
	f.next = (f.next + 1) % faultRingSize
}

// list returns the faults, newest first.
func (f *faultRing) list() []Fault {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := len(f.buf)
	oldest := 0
	if n == faultRingSize {
		oldest = f.next
	}
	out := make([]Fault, 0, n)
	for i := n - 1; i >= 0; i-- {
		out = append(out, f.buf[(oldest+i)%n])
	}
	return out
}

// derive records the faults that happened between two readings: counters that went up, and
// gauges that changed. prev nil is the first reading: what was counted before it (since the
// process started) counts as having happened just now.
func (f *faultRing) derive(prev, cur *reading) {
	if prev == nil {
		prev = &reading{}
	}
	at := cur.at
	for k, v := range cur.values {
		old := prev.value(k)
		switch k.metric {
		case mStageCrashes:
			if n := int64(v - old); n > 0 {
				f.add(Fault{At: at, Kind: "plugin_crash", App: k.l[0], Stage: k.l[1], Count: n,
					Message: fmt.Sprintf("plugin of stage %s (pipeline %s) lost %d time(s): %s", k.l[1], k.l[0], n, k.l[2])})
			}
		case mStageBreaker:
			if v != old {
				msg := map[float64]string{
					0: "crash-loop breaker closed: the stage serves again",
					1: "crash-loop breaker half-open: a relaunched plugin serves on probation",
					2: "crash-loop breaker open: crash loop, no plugin process; its signals get its on_failure answer",
				}[v]
				if msg == "" {
					msg = fmt.Sprintf("crash-loop breaker state %g", v)
				}
				f.add(Fault{At: at, Kind: "crash_loop", App: k.l[0], Stage: k.l[1], Message: fmt.Sprintf("stage %s (pipeline %s): %s", k.l[1], k.l[0], msg)})
			}
		case mSlowConsumers:
			if n := int64(v - old); n > 0 {
				f.add(Fault{At: at, Kind: "slow_consumers", Count: n,
					Message: fmt.Sprintf("%d slow consumer(s) closed with 1205 (%s)", n, k.l[0])})
			}
		case mGatewayOverloadRuns, mStateOverloadRuns:
			if n := int64(v - old); n > 0 {
				f.add(Fault{At: at, Kind: "overload", Count: n,
					Message: fmt.Sprintf("%s overload action %s started", roleOf(k.metric), k.l[0])})
			}
		case mGatewayOverloadOn, mStateOverloadOn:
			if old == 1 && v == 0 {
				f.add(Fault{At: at, Kind: "overload", Message: fmt.Sprintf("%s overload action %s ended", roleOf(k.metric), k.l[0])})
			}
		}
	}
}

func roleOf(metric string) string {
	if metric == mStateOverloadRuns || metric == mStateOverloadOn {
		return "state server"
	}
	return "gateway"
}
