package opsapi

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestAuthenticated(t *testing.T) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { WriteJSON(w, 200, map[string]bool{"ok": true}) })
	for _, tc := range []struct {
		name, key, auth string
		want            int
	}{
		{"no key configured", "", "Bearer anything", http.StatusForbidden},
		{"no key configured, none sent", "", "", http.StatusForbidden},
		{"missing", "s3cret", "", http.StatusUnauthorized},
		{"not bearer", "s3cret", "Basic czNjcmV0", http.StatusUnauthorized},
		{"empty bearer", "s3cret", "Bearer ", http.StatusUnauthorized},
		{"wrong", "s3cret", "Bearer s3cre", http.StatusForbidden},
		{"wrong, longer", "s3cret", "Bearer s3crett", http.StatusForbidden},
		{"right", "s3cret", "Bearer s3cret", http.StatusOK},
		{"right, scheme in lower case", "s3cret", "bearer s3cret", http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", PathStatus, nil)
			if tc.auth != "" {
				r.Header.Set("Authorization", tc.auth)
			}
			w := httptest.NewRecorder()
			Authenticated(tc.key, ok).ServeHTTP(w, r)
			if w.Code != tc.want {
				t.Fatalf("status %d, want %d (%s)", w.Code, tc.want, w.Body)
			}
			if w.Header().Get("Content-Type") != "application/json" {
				t.Errorf("content type %q", w.Header().Get("Content-Type"))
			}
			if tc.want != http.StatusOK {
				var e Error
				if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || e.Error == "" {
					t.Errorf("body %q: want a JSON error (%v)", w.Body, err)
				}
			}
		})
	}
}
