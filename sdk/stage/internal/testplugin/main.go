// Command testplugin is the stage plugin that sdk/stage's tests build and launch as a real process.
// Its uplink handler acts on the payload:
//
//	"reject"  rejects with code 2001
//	"panic"   panics (the batch fails)
//	"sleep"   sleeps until its context ends (or 30s), then 200ms more: a slow plugin, answering late
//	"hang"    sleeps 30s whatever its context: a stuck plugin
//	"crash"   panics in a goroutine of its own, which the SDK cannot recover: the process dies,
//	          its panic on stderr
//	"fail"    fails the signal (stage.FailWith)
//	"host"    calls Host.Push, Put and Get, and rewrites the payload to the value it read back
//	"print"   prints 1 MiB to stdout (after Serve: must not break anything), then echoes
//	"gogc"    collects, then rewrites the payload to the GOGC percent the plugin runs with
//	"hostbench:OP:N:P"  makes N Host ops from P goroutines (BenchmarkHostCall): OP "put-get" is a
//	          Put then a Get of the same key, "set-timer" a SetTimer; rewrites the payload to "ok"
//	"garbage-frame"    on the data socket, answers with a frame header claiming 4 GiB
//	"garbage-results"  on the data socket, answers with a frame that is not a Results
//	          (on the gRPC stream, both are echoed)
//	anything else is echoed (rewritten to itself)
//
// With PLATO_STAGE_RAW=off in its environment it has no data socket, as a plugin built before it.
//
// With config {"delay_ms": N}, every uplink is held N milliseconds first: a slow plugin of one app.
// With config {"acts_on": [...]}, ActsOn (stage.SignalSelector) answers that list; without it,
// defaultActsOn's signals (comma-separated; a build may set it with -ldflags -X, to make a binary
// that declares otherwise under the same config), or else every signal it handles (login, uplink).
//
// Login rejects the token "bad"; every other signal continues.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/platoim/plato/sdk/stage"
	"github.com/platoim/plato/sdk/stage/internal/wiretest"
)

// defaultActsOn is set at build time only (see above).
var defaultActsOn string

type testStage struct {
	host   stage.Host
	delay  time.Duration
	actsOn []stage.Signal
}

func (s *testStage) Info() stage.Info { return stage.Info{Name: "testplugin", Version: "1.0.0"} }

func (s *testStage) Init(_ context.Context, req stage.InitRequest) error {
	s.host = req.Host
	var c struct {
		DelayMS int             `json:"delay_ms"`
		ActsOn  *[]stage.Signal `json:"acts_on"`
	}
	// Lenient: tests pass keys of their own to check that config reaches a plugin.
	if err := json.Unmarshal(req.Config, &c); err != nil {
		return err
	}
	s.delay = time.Duration(c.DelayMS) * time.Millisecond
	s.actsOn = []stage.Signal{stage.SignalLogin, stage.SignalUplink}
	if defaultActsOn != "" {
		s.actsOn = nil
		for _, sig := range strings.Split(defaultActsOn, ",") {
			s.actsOn = append(s.actsOn, stage.Signal(sig))
		}
	}
	if c.ActsOn != nil {
		s.actsOn = *c.ActsOn
	}
	req.Logger.Info("testplugin initialised", "pipeline", req.Pipeline, "stage", req.Stage, "config", string(req.Config))
	return nil
}

// ActsOn implements stage.SignalSelector.
func (s *testStage) ActsOn() []stage.Signal { return s.actsOn }

func (s *testStage) OnLogin(_ context.Context, ev *stage.LoginEvent) stage.Reply {
	if ev.Token == "bad" {
		return stage.RejectWith(2002, "bad token")
	}
	return stage.Reply{}
}

func (s *testStage) OnUplink(ctx context.Context, ev *stage.UplinkEvent) stage.Reply {
	if s.delay > 0 {
		time.Sleep(s.delay)
	}
	switch string(ev.Payload) {
	case "reject":
		return stage.RejectWith(2001, "rejected by testplugin")
	case "panic":
		panic("testplugin: panic payload")
	case "sleep":
		select {
		case <-ctx.Done():
		case <-time.After(30 * time.Second):
		}
		time.Sleep(200 * time.Millisecond) // overrun the deadline, so the host gives up first
		return stage.Reply{Verdict: stage.Drop}
	case "fail":
		return stage.FailWith("testplugin: asked to fail")
	case "hang":
		time.Sleep(30 * time.Second)
		return stage.Reply{Verdict: stage.Drop}
	case "crash":
		go func() { panic("testplugin: crash payload") }()
		time.Sleep(30 * time.Second)
		return stage.Reply{Verdict: stage.Drop}
	case "host":
		app := ev.Conn.AppID
		if _, err := s.host.Push(ctx, app, []string{ev.Conn.DID}, []byte("pushed")); err != nil {
			return stage.RejectWith(2999, "push: "+err.Error())
		}
		if err := s.host.Put(ctx, app, "last:"+ev.Conn.DID, []byte("stored"), time.Minute); err != nil {
			return stage.RejectWith(2999, "put: "+err.Error())
		}
		v, ok, err := s.host.Get(ctx, app, "last:"+ev.Conn.DID)
		if err != nil || !ok {
			return stage.RejectWith(2999, fmt.Sprintf("get: %v %v", ok, err))
		}
		return stage.Rewrite(v)
	case "gogc":
		// The GOGC the plugin runs with once a collection has run: stage.Serve's heap floor.
		runtime.GC()
		m := []metrics.Sample{{Name: "/gc/gogc:percent"}}
		metrics.Read(m)
		return stage.Rewrite(strconv.AppendUint(nil, m[0].Value.Uint64(), 10))
	case "print":
		line := append(bytes.Repeat([]byte("x"), 1023), '\n')
		for range 1024 {
			_, _ = os.Stdout.Write(line)
		}
		fmt.Println("testplugin printed to stdout")
	}
	if op, ok := strings.CutPrefix(string(ev.Payload), "hostbench:"); ok {
		if err := s.hostBench(ctx, ev.Conn.AppID, op); err != nil {
			return stage.RejectWith(2999, err.Error())
		}
		return stage.Rewrite([]byte("ok"))
	}
	return stage.Rewrite(ev.Payload)
}

// hostBench runs "OP:N:P": N ops from P goroutines, each on keys of its own.
func (s *testStage) hostBench(ctx context.Context, app, spec string) error {
	parts := strings.Split(spec, ":")
	if len(parts) != 3 {
		return fmt.Errorf("hostbench %q: want OP:N:P", spec)
	}
	n, err1 := strconv.Atoi(parts[1])
	p, err2 := strconv.Atoi(parts[2])
	if err1 != nil || err2 != nil || p < 1 {
		return fmt.Errorf("hostbench %q: bad N or P", spec)
	}
	var op func(key string, value []byte) error
	switch parts[0] {
	case "put-get":
		op = func(key string, value []byte) error {
			if err := s.host.Put(ctx, app, key, value, time.Minute); err != nil {
				return err
			}
			_, _, err := s.host.Get(ctx, app, key)
			return err
		}
	case "set-timer":
		op = func(key string, value []byte) error { return s.host.SetTimer(ctx, app, key, time.Hour, value) }
	default:
		return fmt.Errorf("hostbench %q: unknown op", spec)
	}
	value := bytes.Repeat([]byte("v"), 64)
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		fail error
	)
	for g := range p {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := "bench/" + strconv.Itoa(g)
			for i := g; i < n; i += p {
				if err := op(key, value); err != nil {
					mu.Lock()
					fail = err
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	return fail
}

// RawResultFrame implements wiretest.RawResults: the frames of a plugin gone bad.
func (s *testStage) RawResultFrame(payload []byte) ([]byte, bool) {
	switch string(payload) {
	case "garbage-frame":
		return []byte{0xff, 0xff, 0xff, 0xff, 1, 2, 3}, true
	case "garbage-results":
		return []byte{3, 0, 0, 0, 0xff, 0xff, 0xff}, true
	}
	return nil, false
}

var _ wiretest.RawResults = (*testStage)(nil)

func main() {
	// PLATO_TESTPLUGIN_CPUPROFILE=path:seconds profiles the plugin's CPU for that long, to read
	// the plugin's half of BenchmarkProcess.
	if spec := os.Getenv("PLATO_TESTPLUGIN_CPUPROFILE"); spec != "" {
		path, secs, _ := strings.Cut(spec, ":")
		n, _ := strconv.Atoi(secs)
		if f, err := os.Create(fmt.Sprintf("%s.%d", path, os.Getpid())); err == nil && pprof.StartCPUProfile(f) == nil {
			time.AfterFunc(time.Duration(n)*time.Second, func() { pprof.StopCPUProfile(); _ = f.Close() })
		}
	}
	stage.Serve(&testStage{})
}
