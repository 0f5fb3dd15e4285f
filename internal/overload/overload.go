// Package overload maps how hard a process is pressed to the actions that shed load, in the spirit
// of Envoy's overload manager: resources (heap memory, the depth of the queues) report a pressure,
// 0 idle and 1 at their limit; each action switches on when the highest pressure reaches its
// threshold and off again when it falls a margin below it. The hot path only reads an atomic flag
// per action; the pressures are sampled on a timer, never per message.
package overload

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"

	"github.com/platoim/plato/internal/config"
	"github.com/platoim/plato/internal/telemetry"
	"github.com/platoim/plato/internal/tick"
)

// Resource is one thing that can run out.
type Resource struct {
	Name string
	// Pressure is how close the resource is to its limit: 0 unused, 1 at the limit (it may read
	// above 1). It is called from the manager's goroutine only.
	Pressure func() float64
}

// Action is one way of shedding load, taken while the pressure is at or above Threshold.
type Action struct {
	Name      string
	Threshold float64
}

// Hysteresis is how far below its threshold the pressure must fall before an action stops, so an
// action does not flap on a pressure that hovers at the threshold.
const Hysteresis = 0.05

// The actions of Standard, by index, in the order they start as the pressure rises: logins go
// first (a new device has other gateways to try), broadcasts last.
const (
	RefuseLogins = iota
	RefuseUplinks
	ShedBroadcasts
)

// Standard makes role's manager with the three standard actions at cfg's thresholds, watching the
// heap (MemoryLimit) and the given resources.
func Standard(role string, log *slog.Logger, cfg config.Overload, resources ...Resource) *Manager {
	// A zero threshold would act at no pressure at all: a config made in code gets the defaults.
	def := func(v, d float64) float64 {
		if v <= 0 {
			return d
		}
		return v
	}
	cfg.RefuseLogins = def(cfg.RefuseLogins, config.DefaultRefuseLogins)
	cfg.RefuseUplinks = def(cfg.RefuseUplinks, config.DefaultRefuseUplinks)
	cfg.ShedBroadcasts = def(cfg.ShedBroadcasts, config.DefaultShedBroadcasts)
	rs := append([]Resource{Memory(MemoryLimitOf(cfg.MemoryLimit))}, resources...)
	return New(role, log, rs, []Action{
		RefuseLogins:   {Name: "refuse_logins", Threshold: cfg.RefuseLogins},
		RefuseUplinks:  {Name: "refuse_uplinks", Threshold: cfg.RefuseUplinks},
		ShedBroadcasts: {Name: "shed_broadcasts", Threshold: cfg.ShedBroadcasts},
	})
}

// MemoryLimitOf is the heap limit to watch: configured when set, else Go's memory limit
// (GOMEMLIMIT) when one is set, else 0 (not watched).
func MemoryLimitOf(configured int64) int64 {
	if configured > 0 {
		return configured
	}
	if l := debug.SetMemoryLimit(-1); l != math.MaxInt64 {
		return l
	}
	return 0
}

// Manager samples the resources and switches the actions. Make one with New.
type Manager struct {
	role      string
	log       *slog.Logger
	resources []Resource
	actions   []Action
	pressure  []atomic.Uint64 // math.Float64bits, per resource
	active    []atomic.Bool   // per action
	started   []atomic.Int64  // times each action switched on
}

// New makes a manager for role ("gateway", "state": it names the metrics). Actions are referred
// to by their index in actions.
func New(role string, log *slog.Logger, resources []Resource, actions []Action) *Manager {
	return &Manager{
		role: role, log: log.With("component", "overload"), resources: resources, actions: actions,
		pressure: make([]atomic.Uint64, len(resources)),
		active:   make([]atomic.Bool, len(actions)),
		started:  make([]atomic.Int64, len(actions)),
	}
}

// Active reports whether action i is being taken. It is one atomic load: the hot path may call it
// per message.
func (m *Manager) Active(i int) bool { return m != nil && m.active[i].Load() }

// Run samples the resources every interval until ctx ends.
func (m *Manager) Run(ctx context.Context, interval time.Duration) {
	tick.Every(ctx, interval, func(time.Time) { m.Update() })
}

// Start runs Run on a goroutine of its own that wg waits for; an interval <= 0 means
// config.DefaultOverloadInterval.
func (m *Manager) Start(ctx context.Context, interval time.Duration, wg *sync.WaitGroup) {
	if interval <= 0 {
		interval = config.DefaultOverloadInterval
	}
	wg.Go(func() { m.Run(ctx, interval) })
}

// Fullest is the highest fill among items, as fill reads each: the resource of a set of queues,
// one full queue being enough to refuse.
func Fullest[T any](items []T, fill func(T) float64) float64 {
	most := 0.0
	for _, it := range items {
		most = max(most, fill(it))
	}
	return most
}

// Update samples every resource once and switches the actions; Run calls it.
func (m *Manager) Update() {
	top, worst := 0.0, ""
	for i, r := range m.resources {
		p := r.Pressure()
		if math.IsNaN(p) || p < 0 {
			p = 0
		}
		m.pressure[i].Store(math.Float64bits(p))
		if p > top {
			top, worst = p, r.Name
		}
	}
	for i, a := range m.actions {
		on := m.active[i].Load()
		switch {
		case !on && top >= a.Threshold:
			m.active[i].Store(true)
			m.started[i].Add(1)
			m.log.Warn("overloaded: shedding load", "action", a.Name, "resource", worst,
				"pressure", round(top), "threshold", a.Threshold)
		case on && top < a.Threshold-Hysteresis:
			m.active[i].Store(false)
			m.log.Info("load back under the threshold: action stopped", "action", a.Name,
				"pressure", round(top), "threshold", a.Threshold)
		}
	}
}

func round(p float64) float64 { return math.Round(p*1000) / 1000 }

// Instrument publishes, as plato_<role>_overload_*, each resource's pressure (in percent), whether
// each action is active, and how many times each switched on.
func (m *Manager) Instrument(o *telemetry.Observables) {
	o.Gauge(fmt.Sprintf("plato_%s_overload_pressure_percent", m.role), "%",
		"How close each resource is to its limit, in percent (100: at the limit), as the overload manager last sampled it.",
		func(emit telemetry.Emit) {
			for i, r := range m.resources {
				emit(int64(math.Round(100*math.Float64frombits(m.pressure[i].Load()))), attribute.String("resource", r.Name))
			}
		})
	o.Gauge(fmt.Sprintf("plato_%s_overload_action_active", m.role), "{action}",
		"1 while the overload manager takes the action (refuse_logins, refuse_uplinks, shed_broadcasts), else 0.",
		func(emit telemetry.Emit) {
			for i, a := range m.actions {
				v := int64(0)
				if m.active[i].Load() {
					v = 1
				}
				emit(v, attribute.String("action", a.Name))
			}
		})
	o.Counter(fmt.Sprintf("plato_%s_overload_actions_started_total", m.role), "{time}",
		"Times the overload manager started each action.",
		func(emit telemetry.Emit) {
			for i, a := range m.actions {
				emit(m.started[i].Load(), attribute.String("action", a.Name))
			}
		})
}

// Memory is a resource for the Go heap against limit bytes: the live heap as the last GC left
// it, plus what was allocated since, which is what the next GC starts from. A limit <= 0 makes a
// resource that is never pressed.
func Memory(limit int64) Resource {
	samples := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	return Resource{Name: "memory", Pressure: func() float64 {
		if limit <= 0 {
			return 0
		}
		metrics.Read(samples)
		if samples[0].Value.Kind() != metrics.KindUint64 {
			return 0
		}
		return float64(samples[0].Value.Uint64()) / float64(limit)
	}}
}
