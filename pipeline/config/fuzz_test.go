package config

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/platoim/plato/sdk/stage"
)

// FuzzParse feeds arbitrary bytes to the loader: it must never panic, and whatever it accepts
// must be a complete, valid plan. The seed corpus is every testdata file; `go test` runs it.
func FuzzParse(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/*/*.y*ml")
	for _, s := range seeds {
		b, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("version: 1\nstages: [{name: a, plugin: 'builtin:a', signals: [login]}]\n"))
	f.Add([]byte("a: &a [*a]\n"))
	f.Add([]byte("<<: {version: 1}\n"))
	f.Add([]byte("version: 1\nextends: default\nremove: [retransmit]\nstages: [{name: x, after: auth, plugin: 'builtin:x', signals: [uplink]}, {name: auth, config: {acl: null}}]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := parse("fuzz.yaml", data, "", fuzzBase)
		if err != nil {
			if Report(err) == "" {
				t.Fatal("an error with an empty report")
			}
			return
		}
		if file.Version != Version {
			t.Fatalf("accepted version %d", file.Version)
		}
		names := map[string]bool{}
		for _, s := range file.Stages {
			if names[s.Name] || !stageNamePattern.MatchString(s.Name) || len(s.Signals) == 0 ||
				s.Timeout <= 0 || s.Timeout > MaxTimeout || s.Batch.MaxSize < 1 || s.Batch.MaxSize > MaxBatchMaxSize ||
				!json.Valid(s.Config) ||
				(s.OnFailure != FailClosed && s.OnFailure != FailOpen) || (s.Builtin == "") == (s.Path == "") {
				t.Fatalf("accepted an invalid stage %+v from %q", s, data)
			}
			names[s.Name] = true
		}
	})
}

// fuzzBase is the file an `extends:` in fuzzed input gets: two builtin stages, so merges of any
// shape are exercised without binaries.
func fuzzBase(name string) (*File, error) {
	if name != DefaultAppID {
		return nil, &Error{File: name + ".yaml", Msg: "no such file"}
	}
	return &File{AppID: DefaultAppID, Version: Version, Stages: []Stage{
		{Name: "auth", Plugin: "builtin:auth", Builtin: "auth", Signals: []stage.Signal{stage.SignalLogin, stage.SignalUplink},
			Timeout: DefaultTimeout, OnFailure: FailClosed, Batch: Batch{MaxSize: DefaultBatchMaxSize}, Config: json.RawMessage(`{"acl":{"uplink":"allow"}}`)},
		{Name: "retransmit", Plugin: "builtin:retransmit", Builtin: "retransmit", Signals: []stage.Signal{stage.SignalDownlink},
			Timeout: DefaultTimeout, OnFailure: FailOpen, Batch: Batch{MaxSize: DefaultBatchMaxSize}, Config: json.RawMessage(`{}`)},
	}}, nil
}
