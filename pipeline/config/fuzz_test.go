package config

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
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
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := parse("fuzz.yaml", data, "")
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
