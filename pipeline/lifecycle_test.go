package pipeline

import (
	"context"
	"errors"
	"testing"

	"github.com/platoim/plato/sdk/stage"
)

// TestBackpressureAndClose: a full lane refuses at once; Close lets every queued signal finish
// (each gets its done), then refuses new ones.
func TestBackpressureAndClose(t *testing.T) {
	dir := t.TempDir()
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	gate := func(ctx context.Context, _ *fnStage, ev stage.Event) stage.Reply {
		select {
		case entered <- struct{}{}:
		default:
		}
		<-release
		return stage.Reply{}
	}
	writePipeline(t, dir, "default", fileYAML(stageYAML("gate", "builtin:gate", "uplink", "timeout: 30s")))
	p, err := New(context.Background(), Config{Dir: dir, Lanes: 1, QueueLimit: 4, BatchSize: 1,
		Builtins: map[string]func() stage.Stage{"gate": builtin("gate", gate)}}, nil, testLogger(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	rec := newRecorder()
	if err := p.Run(uplink("a", 1, 1, "x"), rec.done(1, 1)); err != nil {
		t.Fatal(err)
	}
	<-entered // the first batch is in the stage; the queue behind it fills
	for seq := uint64(2); seq <= 5; seq++ {
		if err := p.Run(uplink("a", 1, seq, "x"), rec.done(1, seq)); err != nil {
			t.Fatalf("seq %d: %v", seq, err)
		}
	}
	if err := p.Run(uplink("a", 1, 6, "x"), rec.done(1, 6)); !errors.Is(err, ErrBackpressure) {
		t.Fatalf("Run on a full lane: %v, want ErrBackpressure", err)
	}
	closed := make(chan struct{})
	go func() {
		closeOK(t, p)
		close(closed)
	}()
	close(release)
	<-closed
	if n := rec.count(); n != 5 {
		t.Errorf("%d signals finished by Close, want 5", n)
	}
	rec.check(t)
	if err := p.Run(uplink("a", 1, 7, "x"), nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Run after Close: %v, want ErrClosed", err)
	}
	if err := p.Reload("default"); !errors.Is(err, ErrClosed) {
		t.Errorf("Reload after Close: %v, want ErrClosed", err)
	}
	if err := p.Close(context.Background()); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestDonePanics: a done callback that panics does not stop its lane.
func TestDonePanics(t *testing.T) {
	p := start(t, Config{Lanes: 1})
	if err := p.Run(uplink("a", 1, 1, "x"), func(Outcome) { panic("boom") }); err != nil {
		t.Fatal(err)
	}
	if o := runWait(t, p, uplink("a", 1, 2, "y")); string(o.Payload) != "y" {
		t.Errorf("after a panicking done: %+v", o)
	}
}
