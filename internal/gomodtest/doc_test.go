package gomodtest

import "testing"

func TestBlockFile(t *testing.T) {
	for _, c := range []struct {
		src, want string
		bad       bool
	}{
		{src: "// File: cmd/x/main.go\npackage main\n", want: "cmd/x/main.go"},
		{src: "package main\n\nfunc main() {}\n", want: "main/block03.go"},
		{src: "package mystage\n\nimport \"testing\"\n\nfunc TestX(t *testing.T) {}\n", want: "mystage/block03_test.go"},
		{src: "// File: ../escape.go\npackage main\n", bad: true},
		{src: "// File: /etc/x.go\npackage main\n", bad: true},
		{src: "func main() {}\n", bad: true},
	} {
		got, err := blockFile(2, c.src)
		if c.bad {
			if err == nil {
				t.Errorf("%q: accepted as %s", c.src, got)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%q: got %q, %v; want %q", c.src, got, err, c.want)
		}
	}
}
