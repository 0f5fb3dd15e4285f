package pipeline

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/platoim/plato/sdk/stage"
)

// fired is one timer signal a stage received.
type fired struct {
	stage, app, key, data, tag string
}

// hostStage drives its Host from uplink payloads "op:arg:arg" and reports timers on ch.
func hostStage(ch chan<- fired) func(ctx context.Context, st *fnStage, ev stage.Event) stage.Reply {
	return func(ctx context.Context, st *fnStage, ev stage.Event) stage.Reply {
		h, app, name := st.req.Host, ev.Conn.AppID, st.req.Stage
		if ev.Signal == stage.SignalTimer {
			ch <- fired{stage: name, app: app, key: ev.TimerKey, data: string(ev.TimerData), tag: string(st.req.Config)}
			return stage.Reply{}
		}
		cmd, _, _ := strings.Cut(string(ev.Payload), "|") // what earlier stages appended is not the command
		op := strings.Split(cmd, ":")
		var err error
		out := ev.Payload
		switch op[0] {
		case "set":
			ms, _ := strconv.Atoi(op[2])
			err = h.SetTimer(ctx, app, op[1], time.Duration(ms)*time.Millisecond, []byte(name))
		case "cancel":
			err = h.CancelTimer(ctx, app, op[1])
		case "put":
			err = h.Put(ctx, app, op[1], []byte(name), 0)
		case "get":
			v, ok, gerr := h.Get(ctx, app, op[1])
			err = gerr
			out = append(append([]byte(nil), ev.Payload...), "|"+name+"="+string(v)+"/"+strconv.FormatBool(ok)...)
		}
		if err != nil {
			return stage.RejectWith(2999, err.Error())
		}
		return stage.Rewrite(out)
	}
}

func TestTimers(t *testing.T) {
	dir := t.TempDir()
	ch := make(chan fired, 100)
	cfg := Config{Dir: dir, TimerLimit: 3, Builtins: map[string]func() stage.Stage{"host": builtin("host", hostStage(ch))}}
	two := fileYAML(stageYAML("s1", "builtin:host", "uplink"), stageYAML("s2", "builtin:host", "uplink", "config: {v: 1}"))
	writePipeline(t, dir, "chat", two)
	writePipeline(t, dir, "default", fileYAML(stageYAML("d", "builtin:host", "uplink")))
	p := start(t, cfg)
	run := func(app, payload string) Outcome {
		t.Helper()
		o := runWait(t, p, uplink(app, 1, 1, payload))
		if o.Verdict != stage.Continue {
			t.Fatalf("%s %s: %+v", app, payload, o)
		}
		return o
	}
	expect := func(want ...fired) {
		t.Helper()
		got := map[fired]int{}
		for range want {
			select {
			case f := <-ch:
				got[f]++
			case <-time.After(waitLimit):
				t.Fatalf("timers fired: %v, want %v", got, want)
			}
		}
		for _, w := range want {
			if got[w] == 0 {
				t.Fatalf("timers fired: %v, want %v", got, want)
			}
			got[w]--
		}
		select {
		case f := <-ch:
			t.Fatalf("unexpected timer %+v", f)
		case <-time.After(100 * time.Millisecond):
		}
	}

	// Both stages set "t1": each gets its own timer back, with its own data.
	run("chat", "set:t1:20")
	expect(fired{"s1", "chat", "t1", "s1", "{}"}, fired{"s2", "chat", "t1", "s2", `{"v":1}`})

	// Setting a key again replaces its timer; cancelling removes it. t3 is far off so that it
	// cannot fire before the cancel however slow the machine: the TimerLimit check below fails
	// if the cancel left it counted.
	run("chat", "set:t2:5000")
	run("chat", "set:t2:20")
	run("chat", "set:t3:60000")
	run("chat", "cancel:t3")
	expect(fired{"s1", "chat", "t2", "s1", "{}"}, fired{"s2", "chat", "t2", "s2", `{"v":1}`})

	// An app without a file: its timers go to the default pipeline's stage, with its app ID.
	run("game", "set:t1:20")
	expect(fired{"d", "game", "t1", "d", "{}"})

	// TimerLimit per stage.
	run("chat", "set:a:60000")
	run("chat", "set:b:60000")
	run("chat", "set:c:60000")
	if o := runWait(t, p, uplink("chat", 1, 1, "set:d:60000")); o.Verdict != stage.Reject || !strings.Contains(o.Message, "timer limit") {
		t.Errorf("a fourth timer: %+v", o)
	}
	run("chat", "cancel:a")
	run("chat", "cancel:b")
	run("chat", "cancel:c")

	// A timer set before a reload that restarts the stage (new config) reaches the new instance.
	// Its delay leaves the reload time to happen first on a loaded machine.
	run("chat", "set:r:2000")
	writePipeline(t, dir, "chat", fileYAML(stageYAML("s1", "builtin:host", "uplink", "config: {v: 2}"), stageYAML("s2", "builtin:host", "uplink", "config: {v: 1}")))
	if err := p.Reload("chat"); err != nil {
		t.Fatal(err)
	}
	expect(fired{"s1", "chat", "r", "s1", `{"v":2}`}, fired{"s2", "chat", "r", "s2", `{"v":1}`})

	// A stage that is removed takes its timers with it.
	run("chat", "set:gone:2000")
	writePipeline(t, dir, "chat", fileYAML(stageYAML("s2", "builtin:host", "uplink", "config: {v: 1}")))
	if err := p.Reload("chat"); err != nil {
		t.Fatal(err)
	}
	expect(fired{"s2", "chat", "gone", "s2", `{"v":1}`})
}

func TestStateScoping(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{Dir: dir, StateLimit: 1024, Builtins: map[string]func() stage.Stage{"host": builtin("host", hostStage(nil))}}
	writePipeline(t, dir, "chat", fileYAML(stageYAML("s1", "builtin:host", "uplink"), stageYAML("s2", "builtin:host", "uplink")))
	writePipeline(t, dir, "game", fileYAML(stageYAML("s1", "builtin:host", "uplink")))
	writePipeline(t, dir, "default", fileYAML(stageYAML("s1", "builtin:host", "uplink")))
	p := start(t, cfg)

	if o := runWait(t, p, uplink("chat", 1, 1, "put:k")); o.Verdict != stage.Continue {
		t.Fatalf("put: %+v", o)
	}
	// Same key, two stages: each reads its own value.
	if o := runWait(t, p, uplink("chat", 1, 2, "get:k")); string(o.Payload) != "get:k|s1=s1/true|s2=s2/true" {
		t.Errorf("chat: %q", o.Payload)
	}
	// Same stage name in another pipeline: its own state.
	if o := runWait(t, p, uplink("game", 1, 1, "get:k")); string(o.Payload) != "get:k|s1=/false" {
		t.Errorf("game: %q", o.Payload)
	}
	// The default pipeline keeps state per app it serves.
	runWait(t, p, uplink("a1", 1, 1, "put:k"))
	if o := runWait(t, p, uplink("a2", 1, 1, "get:k")); string(o.Payload) != "get:k|s1=/false" {
		t.Errorf("default, other app: %q", o.Payload)
	}
	if o := runWait(t, p, uplink("a1", 1, 2, "get:k")); string(o.Payload) != "get:k|s1=s1/true" {
		t.Errorf("default, same app: %q", o.Payload)
	}

	ctx := context.Background()
	h := p.chainOf("chat").steps[0].inst.host
	// An app's stage may not act for another app.
	if err := h.Put(ctx, "game", "k", nil, 0); err == nil {
		t.Error("chat's stage wrote game's state")
	}
	if err := h.SetTimer(ctx, "game", "k", time.Second, nil); err == nil {
		t.Error("chat's stage set a timer for game")
	}
	if _, err := h.Push(ctx, "chat", []string{"d"}, nil); !errors.Is(err, errNoHost) {
		t.Errorf("Push without a platform host: %v", err)
	}
	// The size cap, and replacing a value within it.
	if err := h.Put(ctx, "chat", "big", make([]byte, 2000), 0); !errors.Is(err, ErrStateFull) {
		t.Errorf("a value over the limit: %v", err)
	}
	for range 10 {
		if err := h.Put(ctx, "chat", "v", make([]byte, 500), 0); err != nil {
			t.Fatalf("replacing a value: %v", err)
		}
	}
	if err := h.Delete(ctx, "chat", "v"); err != nil {
		t.Fatal(err)
	}
	if err := h.Put(ctx, "chat", "v2", make([]byte, 800), 0); err != nil {
		t.Errorf("after a delete the space is free again: %v", err)
	}
	// TTL: gone when read after it, and its bytes count no more.
	if err := h.Put(ctx, "chat", "ttl", []byte("x"), 20*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := h.Get(ctx, "chat", "ttl"); !ok {
		t.Error("a fresh value with a TTL is missing")
	}
	time.Sleep(40 * time.Millisecond)
	if _, ok, _ := h.Get(ctx, "chat", "ttl"); ok {
		t.Error("a value outlived its TTL")
	}
	if err := h.Put(ctx, "chat", "neg", nil, -time.Second); err == nil {
		t.Error("a negative TTL was accepted")
	}
	// Values are copies.
	buf := []byte("abc")
	_ = h.Put(ctx, "chat", "copy", buf, 0)
	buf[0] = 'X'
	if v, _, _ := h.Get(ctx, "chat", "copy"); string(v) != "abc" {
		t.Errorf("the store kept the caller's buffer: %q", v)
	}
}

func TestKVSweep(t *testing.T) {
	s := newKVStore(1 << 20)
	for i := range 100 {
		if err := s.put("a", strconv.Itoa(i), []byte("v"), time.Millisecond); err != nil {
			t.Fatal(err)
		}
	}
	_ = s.put("a", "forever", []byte("v"), 0)
	s.sweep(time.Now().Add(time.Second).UnixNano())
	if got, want := s.used.Load(), entrySize(kvKey{"a", "forever"}, []byte("v")); got != want {
		t.Errorf("after a sweep %d bytes used, want %d", got, want)
	}
}
