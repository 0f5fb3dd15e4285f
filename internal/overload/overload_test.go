package overload

import (
	"io"
	"log/slog"
	"testing"

	"github.com/platoim/plato/internal/config"
)

func TestActionsFollowThePressureWithHysteresis(t *testing.T) {
	p := 0.0
	m := Standard("test", slog.New(slog.NewTextHandler(io.Discard, nil)),
		config.Overload{RefuseLogins: 0.8, RefuseUplinks: 0.9, ShedBroadcasts: 0.95},
		Resource{Name: "queue", Pressure: func() float64 { return p }})
	steps := []struct {
		pressure                float64
		logins, uplinks, bcasts bool
	}{
		{0.5, false, false, false},
		{0.8, true, false, false},
		{0.92, true, true, false},
		{1.2, true, true, true},
		{0.93, true, true, true},   // within the margin of 0.95: still shedding
		{0.89, true, true, false},  // below 0.95-0.05, within 0.9's margin
		{0.84, true, false, false}, // below 0.85
		{0.76, true, false, false},
		{0.74, false, false, false},
	}
	for _, s := range steps {
		p = s.pressure
		m.Update()
		if m.Active(RefuseLogins) != s.logins || m.Active(RefuseUplinks) != s.uplinks || m.Active(ShedBroadcasts) != s.bcasts {
			t.Fatalf("at pressure %v: logins %v uplinks %v broadcasts %v, want %v %v %v", p,
				m.Active(RefuseLogins), m.Active(RefuseUplinks), m.Active(ShedBroadcasts), s.logins, s.uplinks, s.bcasts)
		}
	}
	if n := m.started[RefuseLogins].Load(); n != 1 {
		t.Fatalf("refuse_logins started %d times, want 1", n)
	}
}

func TestANilManagerTakesNoAction(t *testing.T) {
	var m *Manager
	if m.Active(RefuseUplinks) {
		t.Fatal("a nil manager refuses uplinks")
	}
}

func TestMemoryPressure(t *testing.T) {
	if p := Memory(0).Pressure(); p != 0 {
		t.Fatalf("unwatched memory pressure %v, want 0", p)
	}
	if p := Memory(1).Pressure(); p < 1 {
		t.Fatalf("a heap over a 1-byte limit reads pressure %v, want >= 1", p)
	}
}
