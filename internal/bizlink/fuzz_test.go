package bizlink

import (
	"testing"
)

// FuzzParseDeliverResponse feeds a webhook's answers to the parser: it never panics, and what it
// accepts has exactly one result per event with a code Plato may pass to a device.
func FuzzParseDeliverResponse(f *testing.F) {
	for _, seed := range []struct {
		body   string
		events int
	}{
		{`{"results":[{"code":0,"message":""}]}`, 1},
		{`{"results":[{"code":2042,"message":"no"},{"code":0}]}`, 2},
		{`{"results":[]}`, 0},
		{`{"results":null}`, 0},
		{`{"results":[null]}`, 1},
		{`{"results":[{"code":1301}]}`, 1},
		{`{"results":[{"code":"0"}]}`, 1},
		{`{}`, 1},
		{`[]`, 0},
		{`ok`, 1},
		{``, 0},
		{`{"results":[{"code":99999999999}]}`, 1},
		{`{"results":[{"code":0}],"extra":{"deep":[1,2,3]}}`, 1},
	} {
		f.Add([]byte(seed.body), seed.events)
	}
	f.Fuzz(func(t *testing.T, body []byte, events int) {
		r, err := ParseDeliverResponse(body, events)
		if err != nil {
			return
		}
		if len(r.Results) != events {
			t.Fatalf("accepted %d results for %d events", len(r.Results), events)
		}
		for i, res := range r.Results {
			if res == nil || (res.Code != 0 && (res.Code < 2000 || res.Code > 2999)) {
				t.Fatalf("result %d: %+v", i, res)
			}
		}
	})
}

func TestParseDeliverResponse(t *testing.T) {
	r, err := ParseDeliverResponse([]byte(`{"results":[{"code":0},{"code":2042,"message":"no"},{"code":7}]}`), 3)
	if err != nil {
		t.Fatal(err)
	}
	if r.Results[0].Code != 0 || r.Results[1].Code != 2042 || r.Results[1].Message != "no" || r.Results[2].Code != 2000 {
		t.Fatalf("results: %+v", r.Results)
	}
	for _, bad := range []string{`{}`, `{"results":[{"code":0}]}`, `ok`, `{"results":[null,null]}`} {
		if _, err := ParseDeliverResponse([]byte(bad), 2); err == nil {
			t.Errorf("%s for 2 events: accepted", bad)
		}
	}
}
