package config

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/providers/confmap"
	"github.com/knadh/koanf/providers/file"
	"github.com/knadh/koanf/providers/structs"
	"github.com/knadh/koanf/v2"
)

// EnvPrefix starts every environment override: PLATO_GATEWAY__ADDR sets gateway.addr
// (a double underscore separates levels, since keys contain single underscores).
const EnvPrefix = "PLATO_"

// Source says where the configuration came from, for error messages.
type Source struct {
	// File is the YAML file read, or "" when none was.
	File string
}

// Load builds the configuration: defaults, then path (if not empty; a missing explicit file is an
// error), then PLATO_* environment variables, then overrides ("key=value" with dotted keys, from
// --set flags and role flags). It validates the result.
func Load(path string, environ []string, overrides map[string]string) (Config, Source, error) {
	k := koanf.New(".")
	src := Source{File: path}
	if err := k.Load(structs.Provider(Default(), "koanf"), nil); err != nil {
		return Config{}, src, fmt.Errorf("loading defaults: %w", err)
	}
	if path != "" {
		if _, err := os.Stat(path); err != nil {
			return Config{}, src, fmt.Errorf("reading config file: %w", err)
		}
		if err := k.Load(file.Provider(path), yaml.Parser()); err != nil {
			return Config{}, src, fmt.Errorf("parsing config file %s: %w", path, err)
		}
	}
	envMap := map[string]any{}
	for _, kv := range environ {
		name, val, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(name, EnvPrefix) {
			continue
		}
		key := strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(name, EnvPrefix), "__", "."))
		envMap[key] = val
	}
	if err := k.Load(confmap.Provider(envMap, "."), nil); err != nil {
		return Config{}, src, fmt.Errorf("loading environment: %w", err)
	}
	ov := map[string]any{}
	for key, val := range overrides {
		ov[key] = val
	}
	if err := k.Load(confmap.Provider(ov, "."), nil); err != nil {
		return Config{}, src, fmt.Errorf("loading flags: %w", err)
	}
	for old, now := range movedKeys {
		if k.Exists(old) {
			return Config{}, src, fmt.Errorf("invalid configuration%s: %s is gone: %s (docs/configuration.md)", src.where(), old, now)
		}
	}
	var cfg Config
	if err := k.UnmarshalWithConf("", &cfg, koanf.UnmarshalConf{Tag: "koanf", FlatPaths: false}); err != nil {
		return Config{}, src, fmt.Errorf("decoding configuration%s: %w", src.where(), err)
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, src, fmt.Errorf("invalid configuration%s: %w", src.where(), err)
	}
	return cfg, src, nil
}

// ParseOverride splits a --set argument "key=value".
func ParseOverride(s string) (string, string, error) {
	key, val, ok := strings.Cut(s, "=")
	if !ok || strings.TrimSpace(key) == "" {
		return "", "", errors.New("want key=value with a dotted key, e.g. gateway.addr=127.0.0.1:9000")
	}
	return strings.TrimSpace(key), val, nil
}

func (s Source) where() string {
	if s.File == "" {
		return " (defaults, environment and flags)"
	}
	return " (file " + s.File + ", environment and flags)"
}

// movedKeys are settings that moved, so a configuration written for an older Plato fails loudly
// instead of silently losing, say, every app's business key.
var movedKeys = map[string]string{
	"state.business.keys":    "each app's keys are apps.<app>.keys",
	"state.business.apps":    "each app's business server is apps.<app>.business",
	"state.business.default": "every app is declared under apps, with its own business server (apps.<app>.business)",
}
