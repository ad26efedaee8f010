package server

import (
	"fmt"
	"net/http"

	"github.com/ringfront/ringfront/appnode/web"
)

// webRoutes serves the web page (package web) at / and its files under
// /web/.
func (s *Server) webRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) { s.webFile(w, r, "index.html") })
	mux.HandleFunc("GET /web/{file}", func(w http.ResponseWriter, r *http.Request) { s.webFile(w, r, r.PathValue("file")) })
}

func (s *Server) webFile(w http.ResponseWriter, r *http.Request, name string) {
	if err := web.Serve(w, r, name); err != nil {
		writeError(w, http.StatusNotFound, fmt.Errorf("web page file %q: %w", name, err))
	}
}
