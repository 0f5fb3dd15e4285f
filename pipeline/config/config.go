package config

import (
	"encoding/json"
	"regexp"
	"time"

	"github.com/platoim/plato/sdk/stage"
)

// Version is the only schema version a pipeline file may declare (the required `version` key).
const Version = 1

// Defaults and limits of the pipeline files; every field of Stage documents the one it uses.
const (
	// DefaultDir is the directory of pipeline files, relative to the working directory.
	DefaultDir = "configs/pipelines"
	// DefaultAppID names the pipeline of app IDs that have no file: default.yaml.
	DefaultAppID = "default"

	DefaultTimeout      = 500 * time.Millisecond
	MaxTimeout          = 30 * time.Second
	DefaultOnFailure    = FailClosed
	DefaultBatchMaxSize = 128
	MaxBatchMaxSize     = 4096

	// BuiltinPrefix starts a plugin value that names a trusted in-process stage: "builtin:<name>".
	BuiltinPrefix = "builtin:"
)

var (
	// appIDPattern is what an app ID, and so a pipeline file's name, may be.
	appIDPattern = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,128}$`)
	// stageNamePattern is what a stage name may be.
	stageNamePattern = regexp.MustCompile(`^[a-z0-9_-]{1,64}$`)
	// sha256Pattern is a hex SHA-256 digest.
	sha256Pattern = regexp.MustCompile(`^[0-9a-fA-F]{64}$`)
)

// ValidAppID reports whether id can name an app's pipeline: 1 to 128 of A-Z a-z 0-9 _ . -
func ValidAppID(id string) bool { return appIDPattern.MatchString(id) }

// FailurePolicy says what happens to a message when a stage fails or times out.
type FailurePolicy string

// The failure policies.
const (
	// FailClosed rejects the message with code 1306 (protocol.CodePipelineFailed, "pipeline stage
	// failed"). The default.
	FailClosed FailurePolicy = "fail_closed"
	// FailOpen skips the stage for that message and counts the failure.
	FailOpen FailurePolicy = "fail_open"
)

// File is one pipeline: the validated, defaulted contents of one YAML file.
type File struct {
	// AppID is the app ID the file serves: its name without .yaml/.yml, DefaultAppID for
	// default.yaml (and for the empty pipeline LoadDir supplies when default.yaml is absent).
	AppID string
	// Source is the file it was loaded from; "" for the empty pipeline LoadDir supplies.
	Source string
	// Version is the schema version; always Version.
	Version int
	// Extends is the app ID of the file this one extends (extends: default), "" if none. Stages
	// then holds the merged chain: the extended file's stages with this file's changes applied
	// (see extends.go).
	Extends string
	// Stages run in this order. Empty: Plato's own handling only.
	Stages []Stage
}

// Stage is one step of a pipeline, as written in the YAML (key names in brackets).
type Stage struct {
	// Name (name) identifies the stage in logs, metrics and the host's per-stage state. Required,
	// unique in the file, 1 to 64 of a-z 0-9 _ -.
	Name string
	// Plugin (plugin) is the stage's binary, as written: a path (a relative one resolves against
	// the plugin directory given to the loader, pipeline.plugin_dir for the platform) or
	// "builtin:<name>" for a trusted in-process stage. Required.
	Plugin string
	// SHA256 (sha256) is the hex SHA-256 the binary must have, lower-cased; the load fails when it
	// differs. Optional; not allowed with builtin:. Default "" (not checked).
	SHA256 string
	// Builtin is the in-process stage's name when Plugin is "builtin:<name>", else "". The loader
	// does not know the host's registry: the caller checks the name exists.
	Builtin string
	// Path is the binary's absolute path, checked to exist and be executable when the file was
	// loaded; "" for a builtin stage.
	Path string
	// Signals (signals) are the signals sent to the stage, from stage.Signals. Required, non-empty,
	// no duplicates; kept in the order written.
	Signals []stage.Signal
	// Timeout (timeout) bounds each batch call to the stage, as a Go duration ("200ms"). Default
	// DefaultTimeout (500ms); more than 0 and at most MaxTimeout (30s).
	Timeout time.Duration
	// OnFailure (on_failure) is what a failed or timed-out call does to its messages: fail_closed or
	// fail_open. Default DefaultOnFailure (fail_closed).
	OnFailure FailurePolicy
	// Batch (batch) tunes how events are grouped into calls to the stage.
	Batch Batch
	// Config (config) is the stage's own settings, a YAML mapping passed to the stage's Init as
	// JSON. Default "{}". In a file that extends another, a stage of the same name merges its
	// config into the inherited one key by key (null removes a key).
	Config json.RawMessage
	// Origin says where the stage comes from in a file that extends another: OriginInherited,
	// OriginOverridden, OriginMoved or OriginAdded. "" in a file that extends nothing.
	Origin string
}

// The values of Stage.Origin.
const (
	OriginInherited  = "inherited"  // as the extended file has it
	OriginOverridden = "overridden" // the extended file's stage with keys of this file
	OriginMoved      = "moved"      // the extended file's stage, placed by after/before only
	OriginAdded      = "added"      // a stage of this file only
)

// Batch tunes micro-batching of events sent to one stage.
type Batch struct {
	// MaxSize (max_size) is the most events per call. Default DefaultBatchMaxSize (128); 1 to
	// MaxBatchMaxSize (4096).
	MaxSize int
	// There is no per-stage wait: a stage is called with what its lane's batch holds, and lanes
	// form larger batches by themselves under load (docs/pipeline.md, Ordering).
}

// Handles reports whether the stage is sent sig.
func (s *Stage) Handles(sig stage.Signal) bool {
	for _, x := range s.Signals {
		if x == sig {
			return true
		}
	}
	return false
}

// Set is every pipeline loaded from one directory.
type Set struct {
	// Dir is the directory the set was loaded from.
	Dir string
	// Default serves app IDs without a file of their own. Never nil: when default.yaml is absent
	// it is an empty pipeline (AppID DefaultAppID, Source "", no stages).
	Default *File
	// Apps holds the pipeline of each app ID that has a file, keyed by app ID.
	Apps map[string]*File
}

// For returns the pipeline that serves appID: its own file's, or Default.
func (s *Set) For(appID string) *File {
	if f, ok := s.Apps[appID]; ok {
		return f
	}
	return s.Default
}

// emptyDefault is the pipeline of unlisted app IDs when default.yaml is absent.
func emptyDefault() *File {
	return &File{AppID: DefaultAppID, Version: Version, Stages: []Stage{}}
}
