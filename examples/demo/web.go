package demo

import (
	"embed"
	"io/fs"
	"net/http"
)

// web is the chat page served at /chat/ next to the login endpoint: the demo chat in a browser, on
// the JS device SDK (web/plato is sdk/js's build, copied by `npm run vendor` there; cmd/plato's
// TestWebChat checks the copy is current).
//
//go:embed web
var web embed.FS

// chatHandler serves web/ under /chat/. Same origin as /login, so the page asks for its credential
// without CORS; ipconf answers pages of any origin.
func chatHandler() http.Handler {
	sub, err := fs.Sub(web, "web")
	if err != nil {
		panic(err) // the embed above guarantees the directory
	}
	files := http.StripPrefix("/chat/", http.FileServerFS(sub))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		files.ServeHTTP(w, r)
	})
}
