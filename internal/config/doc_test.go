package config

import (
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestEveryKeyIsDocumented walks Config as koanf reads it and wants each key that is not under an
// app (apps.<id>.*, documented by example) named in docs/configuration.md, so that a key added
// without its line there fails here.
func TestEveryKeyIsDocumented(t *testing.T) {
	doc, err := os.ReadFile("../../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	keys := keysOf(reflect.TypeOf(Config{}), "")
	for _, want := range []string{"gateway.max_uplinks_in_flight", "state.overload.refuse_logins", "pipeline.breaker.crashes", "log.level"} {
		if !slices.Contains(keys, want) {
			t.Fatalf("the walk of Config missed %s: it found %v", want, keys)
		}
	}
	var missing []string
	for _, key := range keys {
		if key == "apps" || documents(string(doc), key) {
			continue
		}
		missing = append(missing, key)
	}
	if len(missing) > 0 {
		t.Errorf("keys not in docs/configuration.md:\n  %s", strings.Join(missing, "\n  "))
	}
}

// documents reports whether doc names key, or a parent of it written as `parent.*` (as
// `state.batch.*` stands for the state server's batch keys).
func documents(doc, key string) bool {
	if strings.Contains(doc, "`"+key+"`") {
		return true
	}
	for i := strings.LastIndex(key, "."); i > 0; i = strings.LastIndex(key[:i], ".") {
		if strings.Contains(doc, "`"+key[:i]+".*`") {
			return true
		}
	}
	return false
}

// keysOf lists the dotted koanf keys of the leaves of t: fields that are not structs, and durations.
func keysOf(t reflect.Type, prefix string) []string {
	var keys []string
	for i := range t.NumField() {
		f := t.Field(i)
		tag := strings.Split(f.Tag.Get("koanf"), ",")[0]
		name := prefix + tag
		if f.Anonymous && tag == "" {
			keys = append(keys, keysOf(f.Type, prefix)...)
			continue
		}
		if tag == "" || tag == "-" {
			continue
		}
		if f.Type.Kind() == reflect.Struct && f.Type != reflect.TypeOf(time.Duration(0)) {
			keys = append(keys, keysOf(f.Type, name+".")...)
			continue
		}
		keys = append(keys, name)
	}
	return keys
}
