package telemetry

import (
	"embed"
	"io/fs"
	"net/http"
)

// The status page: static files embedded in the binary (status/), served
// at / on metrics.addr. Nothing is fetched from elsewhere: the page's
// script polls /metrics and /status.json of the server that served it.

//go:embed status/index.html status/app.js status/style.css
var pageFiles embed.FS

// pageHandler serves the status page's files at the root: / is
// index.html; a path that names none of them is 404.
func pageHandler() http.Handler {
	sub, err := fs.Sub(pageFiles, "status")
	if err != nil {
		panic(err) // the embedded directory is fixed at build time
	}
	files := http.FileServerFS(sub)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Cache-Control", "no-cache")
		files.ServeHTTP(w, r)
	})
}
