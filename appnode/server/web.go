package server

import (
	"net/http"

	"github.com/ringfront/ringfront/appnode/web"
)

// webRoutes serves the web page (package web) at / and its files under
// /web/.
func (s *Server) webRoutes(mux *http.ServeMux) {
	files := web.Handler()
	mux.Handle("GET /{$}", files)
	mux.Handle("GET /web/", http.StripPrefix("/web", files))
}
