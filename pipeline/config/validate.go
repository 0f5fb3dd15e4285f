package config

import (
	"encoding/json"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/platoim/plato/sdk/stage"
)

// fileDoc and stageDoc are what koanf decodes a file into. Leaves are left untyped so that a
// value of the wrong type is reported by the checker, with its line and a useful message, instead
// of failing the whole decode.
type fileDoc struct {
	Version any        `koanf:"version"`
	Extends any        `koanf:"extends"`
	Remove  any        `koanf:"remove"`
	Stages  []stageDoc `koanf:"stages"`
}

type stageDoc struct {
	Name      any `koanf:"name"`
	Plugin    any `koanf:"plugin"`
	SHA256    any `koanf:"sha256"`
	Signals   any `koanf:"signals"`
	Timeout   any `koanf:"timeout"`
	OnFailure any `koanf:"on_failure"`
	Batch     any `koanf:"batch"`
	Config    any `koanf:"config"`
	After     any `koanf:"after"`
	Before    any `koanf:"before"`
}

// checker turns a decoded document into a File, collecting every problem with its line.
type checker struct {
	t         *tree
	pluginDir string // as given to the loader: shown in messages
	errs      []*Error
	// base is the file this one extends (nil: none); its stages are the starting chain.
	base *File
}

func (c *checker) bad(path, format string, args ...any) {
	c.errs = append(c.errs, &Error{File: c.t.file, Line: c.t.line(path), Path: path, Stage: c.t.stageOf(path), Msg: fmt.Sprintf(format, args...)})
}

func (c *checker) file(d *fileDoc) *File {
	f := &File{Version: Version, Stages: make([]Stage, 0, len(d.Stages))}
	switch v, ok := asInt(d.Version); {
	case d.Version == nil:
		c.bad("version", "is required: start the file with `version: %d`", Version)
	case !ok || v != Version:
		c.bad("version", "must be %d, got %s", Version, show(d.Version))
	}
	if c.base != nil {
		f.Extends = c.base.AppID
		f.Stages = c.extend(d)
		return f
	}
	if d.Remove != nil {
		c.bad("remove", "is only allowed with extends: it removes stages of the extended file")
	}
	names := map[string]int{}
	for i := range d.Stages {
		p := fmt.Sprintf("stages[%d]", i)
		for _, k := range []struct {
			key string
			v   any
		}{{"after", d.Stages[i].After}, {"before", d.Stages[i].Before}} {
			if k.v != nil {
				c.bad(p+"."+k.key, "is only allowed with extends: in a file of its own, stages run in the order written")
			}
		}
		s := c.stage(p, &d.Stages[i], nil)
		if s.Name != "" {
			if j, dup := names[s.Name]; dup {
				c.bad(p+".name", "%q is already the name of stages[%d]; names must be unique", s.Name, j)
			} else {
				names[s.Name] = i
			}
		}
		f.Stages = append(f.Stages, s)
	}
	return f
}

// stage checks one stage. With base (a stage of the same name in the extended file) only the
// keys written are checked and they override base's; without it the stage stands alone and gets
// the defaults.
func (c *checker) stage(p string, d *stageDoc, base *Stage) Stage {
	s := Stage{Timeout: DefaultTimeout, OnFailure: DefaultOnFailure,
		Batch: Batch{MaxSize: DefaultBatchMaxSize}, Config: json.RawMessage("{}")}
	required := base == nil
	if base != nil {
		s = *base
		s.Signals = slices.Clone(base.Signals)
	}

	if name, ok := c.str(p+".name", d.Name, true); ok {
		if stageNamePattern.MatchString(name) {
			s.Name = name
		} else {
			c.bad(p+".name", "%q is not a valid stage name (1 to 64 of a-z 0-9 _ -)", name)
		}
	}
	switch d.SHA256.(type) {
	case int, int64, uint64, float64:
		c.bad(p+".sha256", "must be quoted (sha256: \"...\"): YAML reads this value as a number")
		d.SHA256 = nil
	}
	sha, shaSet := c.str(p+".sha256", d.SHA256, false)
	if shaSet {
		if sha256Pattern.MatchString(sha) {
			s.SHA256 = strings.ToLower(sha)
		} else {
			c.bad(p+".sha256", "%q is not a SHA-256 (64 hex digits, as `sha256sum` prints)", sha)
			shaSet = false
		}
	}
	if plugin, ok := c.str(p+".plugin", d.Plugin, required); ok {
		s.Plugin, s.Builtin, s.Path = plugin, "", ""
		if !shaSet {
			s.SHA256 = "" // an inherited pin is the old binary's
		}
		c.plugin(p, &s, shaSet)
	} else if base != nil && shaSet {
		c.plugin(p, &s, true) // pins the inherited binary
	}
	if d.Signals != nil || required {
		s.Signals = c.signals(p+".signals", d.Signals)
	}
	if v, set := c.duration(p+".timeout", d.Timeout); set {
		if v <= 0 || v > MaxTimeout {
			c.bad(p+".timeout", "must be more than 0 and at most %v, got %v", MaxTimeout, v)
		} else {
			s.Timeout = v
		}
	}
	if v, ok := c.str(p+".on_failure", d.OnFailure, false); ok {
		switch FailurePolicy(v) {
		case FailClosed, FailOpen:
			s.OnFailure = FailurePolicy(v)
		default:
			c.bad(p+".on_failure", "%q is not %s (reject the message with code 1306) or %s (skip the stage)", v, FailClosed, FailOpen)
		}
	}
	c.batch(p+".batch", d.Batch, &s.Batch)
	if raw, ok := c.config(p+".config", d.Config); ok {
		if base != nil {
			merged, err := mergeConfig(base.Config, raw)
			if err != nil {
				c.bad(p+".config", "cannot be merged into the inherited config: %v", err)
			} else {
				s.Config = merged
			}
		} else {
			s.Config = raw
		}
	}
	return s
}

// plugin checks s.Plugin (and s.SHA256 when shaSet) and fills in Builtin or Path.
func (c *checker) plugin(p string, s *Stage, shaSet bool) {
	if name, builtin := strings.CutPrefix(s.Plugin, BuiltinPrefix); builtin {
		if strings.TrimSpace(name) == "" || name != strings.TrimSpace(name) {
			c.bad(p+".plugin", "%q needs the in-process stage's name after %q, e.g. builtin:session", s.Plugin, BuiltinPrefix)
		} else {
			s.Builtin = name
		}
		if shaSet {
			c.bad(p+".sha256", "is not allowed with a builtin: stage (it has no binary to check); remove it")
			s.SHA256 = ""
		}
		return
	}
	s.Path = c.binary(p, s.Plugin, s.SHA256)
}

// str reads a string value; ok is false when it is absent (reported if required) or not a string.
func (c *checker) str(path string, v any, required bool) (string, bool) {
	switch x := v.(type) {
	case nil:
		if required {
			c.bad(path, "is required")
		}
		return "", false
	case string:
		if x == "" {
			if required {
				c.bad(path, "is required")
			}
			return "", false
		}
		return x, true
	default:
		c.bad(path, "must be a string, got %s", show(v))
		return "", false
	}
}

func (c *checker) signals(path string, v any) []stage.Signal {
	list, ok := v.([]any)
	switch {
	case v == nil:
		c.bad(path, "is required: the signals the stage handles, e.g. [login, uplink] (one of %s)", signalList())
		return nil
	case !ok:
		example := "login, uplink"
		if name, isStr := v.(string); isStr {
			example = name
		}
		c.bad(path, "must be a list, e.g. [%s], got %s", example, show(v))
		return nil
	case len(list) == 0:
		c.bad(path, "must list at least one signal (one of %s); a stage with none never runs", signalList())
		return nil
	}
	out := make([]stage.Signal, 0, len(list))
	first := map[stage.Signal]int{}
	for j, x := range list {
		ip := fmt.Sprintf("%s[%d]", path, j)
		name, isStr := x.(string)
		sig := stage.Signal(name)
		switch {
		case !isStr:
			c.bad(ip, "must be a signal name (one of %s), got %s", signalList(), show(x))
		case sig == stage.SignalTimer:
			c.bad(ip, "%q cannot be listed: a stage gets the timers it set itself", name)
		case !knownSignal(sig):
			c.bad(ip, "%q is not a signal (one of %s)", name, signalList())
		default:
			if k, dup := first[sig]; dup {
				c.bad(ip, "%q is already listed at %s[%d]", name, path, k)
				continue
			}
			first[sig] = j
			out = append(out, sig)
		}
	}
	return out
}

// duration reads a Go duration string; set is false when the value is absent or invalid.
func (c *checker) duration(path string, v any) (time.Duration, bool) {
	switch x := v.(type) {
	case nil:
		return 0, false
	case string:
		d, err := time.ParseDuration(x)
		if err != nil {
			c.bad(path, "%q is not a duration (e.g. 200ms)", x)
			return 0, false
		}
		return d, true
	case int, int64, uint64, float64:
		c.bad(path, "%v is not a duration: give it a unit (e.g. 200ms)", x)
	default:
		c.bad(path, "must be a duration (e.g. 200ms), got %s", show(v))
	}
	return 0, false
}

func (c *checker) batch(path string, v any, b *Batch) {
	if v == nil {
		return
	}
	m, ok := v.(map[string]any)
	if !ok {
		c.bad(path, "must be a mapping, e.g. {max_size: %d}, got %s", DefaultBatchMaxSize, show(v))
		return
	}
	if x, present := m["max_size"]; present && x != nil {
		n, isInt := asInt(x)
		switch {
		case !isInt:
			c.bad(path+".max_size", "must be a whole number from 1 to %d, got %s", MaxBatchMaxSize, show(x))
		case n < 1 || n > MaxBatchMaxSize:
			c.bad(path+".max_size", "must be from 1 to %d, got %d", MaxBatchMaxSize, n)
		default:
			b.MaxSize = int(n)
		}
	}
}

// config encodes the stage's settings as JSON.
func (c *checker) config(path string, v any) (json.RawMessage, bool) {
	if v == nil {
		return nil, false
	}
	if _, ok := v.(map[string]any); !ok {
		c.bad(path, "must be a mapping of the stage's settings, got %s", show(v))
		return nil, false
	}
	raw, err := json.Marshal(jsonable(v))
	if err != nil {
		c.bad(path, "cannot be passed to the stage as JSON: %v", err)
		return nil, false
	}
	return raw, true
}

// binary resolves plugin against the plugin directory and checks the file; it returns the
// absolute path, or "" when the path cannot be made absolute.
func (c *checker) binary(p, plugin, sha string) string {
	shown := plugin
	if !filepath.IsAbs(plugin) {
		shown = filepath.Join(c.pluginDir, plugin)
	}
	abs, err := filepath.Abs(shown)
	if err != nil {
		c.bad(p+".plugin", "%s: %v", shown, err)
		return ""
	}
	if msg := checkBinary(shown); msg != "" {
		c.bad(p+".plugin", "%s: %s", shown, msg)
		return abs
	}
	if sha != "" {
		got, err := FileSHA256(shown)
		switch {
		case err != nil:
			c.bad(p+".sha256", "cannot hash %s: %v", shown, err)
		case got != sha:
			c.bad(p+".sha256", "%s has SHA-256 %s, but sha256 is %s (rebuilt it? update sha256)", shown, got, sha)
		}
	}
	return abs
}

// jsonable turns what a YAML decoder produces into something encoding/json accepts: mappings
// with non-string keys (1: x) get string keys.
func jsonable(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = jsonable(e)
		}
		return out
	case map[any]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[fmt.Sprint(k)] = jsonable(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = jsonable(e)
		}
		return out
	}
	return v
}

// asInt reads a YAML integer.
func asInt(v any) (int64, bool) {
	switch x := v.(type) {
	case int:
		return int64(x), true
	case int64:
		return x, true
	case uint64:
		if x <= math.MaxInt64 {
			return int64(x), true
		}
	}
	return 0, false
}

// show renders a value in a message: strings quoted, lists and mappings named.
func show(v any) string {
	switch x := v.(type) {
	case nil:
		return "nothing"
	case string:
		return strconv.Quote(x)
	case []any:
		return "a list"
	case map[string]any, map[any]any:
		return "a mapping"
	}
	return fmt.Sprint(v)
}

func knownSignal(s stage.Signal) bool {
	for _, x := range stage.Signals {
		if x == s {
			return true
		}
	}
	return false
}

func signalList() string {
	names := make([]string, len(stage.Signals))
	for i, s := range stage.Signals {
		names[i] = string(s)
	}
	return strings.Join(names, ", ")
}
