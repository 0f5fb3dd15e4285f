package config

import (
	"errors"
	"fmt"

	"github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/v2"
)

// MaxAppText bounds one app's settings as text (a KV value, a file given to `plato apps set`):
// a few keys and secrets, some PEM public keys, a list of origins fit in far less.
const MaxAppText = 256 << 10

// ParseApp reads one app's settings from YAML (or JSON, which is YAML) text, the body that would
// sit under apps.<id> in the configuration file, with the same decoding as Load, and validates it
// as Load validates the file's apps: an app stored elsewhere (NATS KV) accepts and refuses what
// the file would. Errors name the key, apps.<id>.<field>.
func ParseApp(id string, text []byte) (App, error) {
	if len(text) > MaxAppText {
		return App{}, fmt.Errorf("apps.%s: %d bytes of settings, more than the %d allowed", id, len(text), MaxAppText)
	}
	k := koanf.New(".")
	if err := k.Load(rawBytes(text), yaml.Parser()); err != nil {
		return App{}, fmt.Errorf("apps.%s: parsing the settings (YAML or JSON, the body of apps.%s in a config file): %w", id, id, err)
	}
	var a App
	if err := k.UnmarshalWithConf("", &a, koanf.UnmarshalConf{Tag: "koanf", FlatPaths: false}); err != nil {
		return App{}, fmt.Errorf("apps.%s: decoding the settings: %w", id, err)
	}
	if err := ValidateApp(id, a); err != nil {
		return App{}, err
	}
	return a, nil
}

// ValidateApp checks one app as Load checks the apps of a configuration file.
func ValidateApp(id string, a App) error {
	c := Config{Apps: map[string]App{id: a}}
	var errs []error
	c.validateApps(func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	})
	return errors.Join(errs...)
}

// rawBytes is a koanf provider of text already in memory.
type rawBytes []byte

func (b rawBytes) ReadBytes() ([]byte, error) { return b, nil }

func (b rawBytes) Read() (map[string]any, error) {
	return nil, errors.New("rawBytes provider needs a parser")
}
