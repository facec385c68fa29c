// Package console is the web console every master serves at "/": one
// page of plain HTML, CSS and JavaScript, embedded in the binary, that
// reads and steers the mesh through the HTTP API (/api/v1/). Nothing is
// loaded from elsewhere, no script is inline, and the API token is never
// in a page: the person enters it, the tab keeps it in sessionStorage and
// sends it as "Authorization: Bearer" on actions only.
package console

import (
	"embed"
	"io/fs"
	"net/http"

	"github.com/crawlmesh/crawlmesh/pkg/httpapi"
)

//go:embed static
var static embed.FS

// Handler serves the console: "/" is the page, "/static/" its assets.
// Every response carries httpapi's security headers.
func Handler() http.Handler {
	sub, _ := fs.Sub(static, "static")
	files := http.FileServerFS(sub)
	mux := http.NewServeMux()
	mux.Handle("GET /static/", http.StripPrefix("/static/", noCache(files)))
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		http.ServeFileFS(w, r, sub, "index.html")
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "not found: the console is at /, the API at /api/v1/, metrics at /metrics", http.StatusNotFound)
	})
	return httpapi.SecurityHeaders(mux)
}

// noCache makes browsers revalidate assets, so a new binary's console is
// what a reload shows.
func noCache(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		h.ServeHTTP(w, r)
	})
}
