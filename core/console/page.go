package console

import (
	"embed"
	"net/http"
	"path"
)

// static is the console's page: plain HTML, CSS and JavaScript, no build step and nothing fetched
// from elsewhere; it reads the JSON API with the ops key the operator types in.
//
//go:embed static
var static embed.FS

// csp keeps the page to its own files and its own API.
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'"

func servePage(w http.ResponseWriter, r *http.Request) {
	serveFile(w, r, "index.html", "text/html; charset=utf-8")
}

// serveAsset serves /console/NAME from static.
func serveAsset(w http.ResponseWriter, r *http.Request) {
	name := path.Base(r.URL.Path)
	types := map[string]string{".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
	ct, ok := types[path.Ext(name)]
	if !ok || name == "index.html" {
		http.NotFound(w, r)
		return
	}
	serveFile(w, r, name, ct)
}

func serveFile(w http.ResponseWriter, r *http.Request, name, contentType string) {
	b, err := static.ReadFile("static/" + name)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	h := w.Header()
	h.Set("Content-Type", contentType)
	h.Set("Content-Security-Policy", csp)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-cache")
	_, _ = w.Write(b)
}
