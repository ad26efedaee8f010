package server

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/ringfront/ringfront/appnode/feed"
	"github.com/ringfront/ringfront/appnode/live"
)

// timelineStream serves GET /v1/users/{name}/timeline/stream: the
// user's live timeline as server-sent events (package live).
func (s *Server) timelineStream(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	var last feed.ID
	if v := r.Header.Get("Last-Event-ID"); v != "" {
		var err error
		if last, err = feed.ParseID(v); err != nil {
			writeError(w, http.StatusBadRequest, fmt.Errorf("Last-Event-ID: %w", err))
			return
		}
	}
	if !s.acct.Authorize(w, r, name) {
		return
	}
	token, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	lt := live.Timelines{Store: s.store, Timeline: s.tl, Hub: s.fan.Hub(), Log: s.log, WriteTimeout: s.bounds.WriteTimeout,
		// A rotation that revoked this token ends the stream.
		Authorized: func() bool { return s.acct.StillLive(name, token) }, Now: s.c.Now}
	s.metrics.streamDropped(r, lt.Serve(w, r, name, last, time.Duration(s.heartbeat.Load())))
}
