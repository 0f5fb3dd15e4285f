package httpapi

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
)

// FuzzRequestBody posts arbitrary bodies to every route: whatever the body, the answer is 200 or
// 400 with code 1401, always a JSON object, and a body the server accepts reached the handler
// with the app and key of the request.
func FuzzRequestBody(f *testing.F) {
	routes := []string{"push", "push/batch", "bind", "unbind", "kick", "online"}
	for i, seed := range []string{
		`{"dids":["d1"],"uids":["u1"],"session":"room","payload":"aGk=","qos":"at_least_once","wait_ack":true,"timeout_ms":250}`,
		`{"messages":[{"dids":["d1"],"payload":"aGk="},{"dids":["d2"],"qos":"bogus"},7]}`,
		`{"session":"room","dids":["d1","d2"],"replace":true}`,
		`{"session":"room","all":true}`,
		`{"dids":["d1"],"message":"bye"}`,
		`{"session":"room"}`,
	} {
		f.Add(uint8(i), []byte(seed))
	}
	for _, seed := range []string{``, `{}`, `null`, `[]`, `{"dids":null}`, `{"payload":"%%%"}`, `{"timeout_ms":1e99}`,
		`{"dids":["\u0000"]}`, `{"a":1}`, `{"dids":["d1"]}{}`, "{\"session\":\"\xff\"}", `{"messages":[` + string(bytes.Repeat([]byte(`{},`), 50)) + `{}]}`} {
		f.Add(uint8(0), []byte(seed))
		f.Add(uint8(1), []byte(seed))
	}
	fake := &fakeAPI{}
	s := testServer(f, fake)
	f.Fuzz(func(t *testing.T, op uint8, body []byte) {
		route := routes[int(op)%len(routes)]
		req := httptest.NewRequest("POST", "/v1/apps/"+testApp+"/"+route, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+testKey)
		w := httptest.NewRecorder()
		fake.mu.Lock()
		fake.callers = fake.callers[:0]
		fake.mu.Unlock()
		s.ServeHTTP(w, req)
		var answer struct {
			Error *apiError `json:"error"`
		}
		if err := json.Unmarshal(w.Body.Bytes(), &answer); err != nil {
			t.Fatalf("%s %q: the answer %q is not a JSON object", route, body, w.Body.Bytes())
		}
		fake.mu.Lock()
		defer fake.mu.Unlock()
		switch w.Code {
		case http.StatusOK:
			if answer.Error != nil {
				t.Fatalf("%s %q: 200 with an error %+v", route, body, answer.Error)
			}
			if route != "push/batch" && len(fake.callers) != 1 {
				t.Fatalf("%s %q: accepted, and the handler was called %d times", route, body, len(fake.callers))
			}
			for _, c := range fake.callers {
				if c.AppId != testApp || c.Key != testKey {
					t.Fatalf("%s %q: the handler was called as %+v", route, body, c)
				}
			}
		case http.StatusBadRequest:
			if answer.Error == nil || answer.Error.Code != 1401 {
				t.Fatalf("%s %q: 400 with %q", route, body, w.Body.Bytes())
			}
			if route != "push/batch" && len(fake.callers) != 0 {
				t.Fatalf("%s %q: refused, yet the handler was called", route, body)
			}
		default:
			t.Fatalf("%s %q: answered %d %q", route, body, w.Code, w.Body.Bytes())
		}
	})
}
