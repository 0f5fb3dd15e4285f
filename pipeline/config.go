package pipeline

import (
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/platoim/plato/internal/config"
	"github.com/platoim/plato/sdk/stage"
)

// Defaults for the zero fields of Config (Lanes is pipeline.lanes, whose default is Plato's
// configuration's: config.DefaultPipelineLanes).
const (
	DefaultQueueLimit   = 8192
	DefaultBatchSize    = 128
	DefaultStateLimit   = 64 << 20
	DefaultTimerLimit   = 1 << 20
	DefaultTimerTick    = 10 * time.Millisecond
	DefaultDrainTimeout = 10 * time.Second
	DefaultStartTimeout = 10 * time.Second
)

// Config configures the pipeline host. The zero value of every field but Dir means its default.
type Config struct {
	// Dir holds the pipeline files: <app ID>.yaml per app and default.yaml for the others. Empty
	// means no pipelines: every signal continues unchanged.
	Dir string
	// PluginDir is where a stage's plugin name is resolved to a binary (pipeline/config does it).
	PluginDir string
	// Builtins are the trusted in-process stages, by the name a YAML's builtin field uses. A
	// builtin missing here is a load error.
	Builtins map[string]func() stage.Stage
	// Lanes is the number of ordered lanes running in parallel. Default config.DefaultPipelineLanes (16).
	Lanes int
	// QueueLimit is how many signals may wait in one lane before Run returns ErrBackpressure.
	// Default DefaultQueueLimit (8192).
	QueueLimit int
	// BatchSize is the most signals a lane takes at once; a stage's batch.max_size, when smaller,
	// splits the call to that stage. Default DefaultBatchSize (128).
	BatchSize int
	// Linger is how long an idle lane waits for company after a first signal. Default 0: none,
	// batches form by themselves while the previous batch is in the chain.
	Linger time.Duration
	// StateLimit caps the bytes (keys + values) one stage may keep with Host.Put per pipeline.
	// Default DefaultStateLimit (64 MiB).
	StateLimit int64
	// TimerLimit caps the pending timers of one stage per pipeline. Default DefaultTimerLimit.
	TimerLimit int
	// TimerTick is the precision of Host.SetTimer. Default DefaultTimerTick (10ms).
	TimerTick time.Duration
	// DrainTimeout bounds how long a reload or a binary swap waits for batches still using the
	// old stage before stopping it anyway. Default DefaultDrainTimeout (10s).
	DrainTimeout time.Duration
	// StartTimeout bounds a plugin's start, Describe and Init. Default DefaultStartTimeout (10s).
	StartTimeout time.Duration
	// Env is added to the host's environment for plugin processes ("KEY=value"), so settings such
	// as secrets reach plugins without being written into pipeline YAML.
	Env []string
	// Breaker is the crash-loop breaker of every plugin stage (breaker.go). Its zero fields take
	// internal/config's defaults (pipeline.breaker.*).
	Breaker BreakerConfig
	// Tracer starts a "plato.stage" span per stage call for each signal whose TraceParent is
	// sampled (trace.go). Nil: no spans.
	Tracer trace.Tracer
}

// BreakerConfig is pipeline.breaker: Crashes crashes of one stage's plugin within Window open its
// breaker; while open, relaunches are spaced by ProbeInterval (jittered down to half); a process
// that stays up RecoverAfter closes it.
type BreakerConfig struct {
	Crashes       int
	Window        time.Duration
	ProbeInterval time.Duration
	RecoverAfter  time.Duration
}

func (b BreakerConfig) withDefaults() BreakerConfig {
	if b.Crashes <= 0 {
		b.Crashes = config.DefaultBreakerCrashes
	}
	if b.Window <= 0 {
		b.Window = config.DefaultBreakerWindow
	}
	if b.ProbeInterval <= 0 {
		b.ProbeInterval = config.DefaultBreakerProbeInterval
	}
	if b.RecoverAfter <= 0 {
		b.RecoverAfter = config.DefaultBreakerRecoverAfter
	}
	return b
}

func (c Config) withDefaults() Config {
	c.Breaker = c.Breaker.withDefaults()
	if c.Lanes <= 0 {
		c.Lanes = config.DefaultPipelineLanes
	}
	if c.QueueLimit <= 0 {
		c.QueueLimit = DefaultQueueLimit
	}
	if c.BatchSize <= 0 {
		c.BatchSize = DefaultBatchSize
	}
	if c.StateLimit <= 0 {
		c.StateLimit = DefaultStateLimit
	}
	if c.TimerLimit <= 0 {
		c.TimerLimit = DefaultTimerLimit
	}
	if c.TimerTick <= 0 {
		c.TimerTick = DefaultTimerTick
	}
	if c.DrainTimeout <= 0 {
		c.DrainTimeout = DefaultDrainTimeout
	}
	if c.StartTimeout <= 0 {
		c.StartTimeout = DefaultStartTimeout
	}
	return c
}
