package sessionbindstage

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseConfig(t *testing.T) {
	for raw, want := range map[string]Config{
		``:   {Timeout: DefaultTimeout, OnFailure: Allow},
		`{}`: {Timeout: DefaultTimeout, OnFailure: Allow},
		`{"timeout": "1.5s", "on_failure": "refuse", "always": ["lobby", "news"]}`: {
			Timeout: 1500 * time.Millisecond, OnFailure: Refuse, Always: []string{"lobby", "news"}},
		`{"on_failure": "allow", "always": []}`: {Timeout: DefaultTimeout, OnFailure: Allow, Always: []string{}},
	} {
		got, err := parseConfig([]byte(raw))
		if err != nil {
			t.Errorf("%s: %v", raw, err)
			continue
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: got %+v, want %+v", raw, got, want)
		}
	}
}

func TestParseConfigErrors(t *testing.T) {
	for raw, want := range map[string]string{
		`{"timeout": "soon"}`:          `timeout: "soon" is not a duration`,
		`{"timeout": 500}`:             "decoding config",
		`{"timeout": "0s"}`:            "timeout: must be positive",
		`{"timeout": "-1s"}`:           "timeout: must be positive",
		`{"on_failure": "deny"}`:       `on_failure: "deny" is neither "allow" nor "refuse"`,
		`{"always": [""]}`:             "always[0]: session name \"\" is empty",
		`{"always": ["a", "b\u0000"]}`: "always[1]: session name \"b\\x00\" holds a NUL byte",
		`{"always": ["a", "a"]}`:       `always[1]: "a" is already listed at always[0]`,
		`{"always": "lobby"}`:          "decoding config",
		`{"timout": "1s"}`:             "unknown field",
		`{"always": ["` + strings.Repeat("x", MaxSessionLen+1) + `"]}`: "is longer than 256 bytes",
	} {
		_, err := parseConfig([]byte(raw))
		if err == nil || !strings.Contains(err.Error(), want) || !strings.HasPrefix(err.Error(), "sessionbind: ") {
			t.Errorf("%.60s: got error %v, want one containing %q", raw, err, want)
		}
	}
}
