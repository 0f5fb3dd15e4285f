package stage

import (
	"strings"
	"testing"
)

func TestDecodeConfig(t *testing.T) {
	type conf struct {
		Timeout string `json:"timeout"`
		Max     int    `json:"max"`
	}
	for _, c := range []struct {
		raw, err string
		want     conf
	}{
		{raw: "", want: conf{Max: 7}},
		{raw: " {} ", want: conf{Max: 7}},
		{raw: `{"timeout":"1s","max":3}`, want: conf{Timeout: "1s", Max: 3}},
		{raw: `{"timeuot":"1s"}`, err: `unknown field "timeuot"`},
		{raw: `{"max":"three"}`, err: "cannot unmarshal string"},
		{raw: `{"max":1} {"max":2}`, err: "more than one JSON value"},
	} {
		got := conf{Max: 7}
		err := DecodeConfig([]byte(c.raw), &got)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%q: error %v, want one containing %q", c.raw, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%q: got %+v, %v; want %+v", c.raw, got, err, c.want)
		}
	}
}
