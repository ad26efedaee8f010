package server

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/ringfront/ringfront/appnode/antientropy"
	"github.com/ringfront/ringfront/appnode/api"
	"github.com/ringfront/ringfront/appnode/feed"
	"github.com/ringfront/ringfront/appnode/peer"
	"github.com/ringfront/ringfront/appnode/ring"
	"github.com/ringfront/ringfront/appnode/store"
	"github.com/ringfront/ringfront/appnode/transport"
)

func (s *Server) routes() {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/users", s.signUp)
	mux.HandleFunc("GET /v1/users/{name}", s.keyed(s.acct.Get, nil))
	mux.HandleFunc("POST /v1/users/{name}/posts", s.keyed(s.posts.Create, s.posts.Pin))
	mux.HandleFunc("POST /v1/users/{name}/tokens", s.keyed(s.acct.RotateToken, s.acct.PinToken))
	mux.HandleFunc("GET /v1/users/{name}/posts", s.keyed(s.posts.List, nil))
	mux.HandleFunc("PUT /v1/users/{name}/following/{other}", s.follow.CheckPin(s.keyed(s.follow.Follow, s.follow.Pin)))
	mux.HandleFunc("DELETE /v1/users/{name}/following/{other}", s.follow.CheckPin(s.keyed(s.follow.Follow, s.follow.Pin)))
	mux.HandleFunc("GET /v1/users/{name}/following", s.keyed(s.follow.Following, nil))
	mux.HandleFunc("GET /v1/users/{name}/followers", s.keyed(s.follow.Followers, nil))
	mux.HandleFunc("GET /v1/users/{name}/timeline", s.keyed(s.posts.Timeline, nil))
	mux.HandleFunc("GET /v1/users/{name}/timeline/stream", s.keyed(s.timelineStream, nil))
	mux.HandleFunc("GET /healthz", s.healthz)
	mux.HandleFunc("GET /v1/ring", s.getRing)
	mux.HandleFunc("GET /v1/ring/lookup", s.lookup)
	// The members' own calls, each subsystem's on its own routes.
	internal := s.tr.Internal
	mux.HandleFunc("GET /internal/v1/hello", internal(s.hello, transport.MaxBody))
	s.follow.Routes(mux, internal)
	s.rep.Routes(mux, internal)
	s.sync.Routes(mux, internal)
	s.tl.Routes(mux, internal)
	s.fan.Routes(mux, internal)
	mux.HandleFunc(transport.LinkRoute, s.tr.ServeLink)
	s.webRoutes(mux)
	mux.HandleFunc("/", s.notFound)
	s.mux = mux
}

// healthz is the serving port's health check, for load balancers and
// dnslb: 200 while this member can store, 503 once its store has failed.
func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	if s.store.Failed() {
		writeError(w, http.StatusServiceUnavailable, errors.New("store failed after a disk error; restart the member"))
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Write([]byte("ok\n"))
}

// notFound answers every request no route matched: 405 with Allow when
// the path exists for other methods, else 404, both as JSON.
func (s *Server) notFound(w http.ResponseWriter, r *http.Request) {
	var allow []string
	for _, m := range []string{"GET", "POST", "PUT", "DELETE"} {
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, pat := s.mux.Handler(probe); pat != "/" && pat != "" {
			allow = append(allow, m)
		}
	}
	if len(allow) > 0 {
		w.Header().Set("Allow", strings.Join(allow, ", "))
		writeError(w, http.StatusMethodNotAllowed, fmt.Errorf("method %s not allowed on %s (allowed: %s)", r.Method, r.URL.Path, strings.Join(allow, ", ")))
		return
	}
	writeError(w, http.StatusNotFound, fmt.Errorf("no such endpoint: %s %s", r.Method, r.URL.Path))
}

// keyed wraps a handler for /v1/users/{name}/...: it checks the name,
// then routes the request to the name's owner or serves it here. pin
// (nil for reads) makes a forwarded write idempotent (see pinner).
func (s *Server) keyed(h http.HandlerFunc, pin pinner) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		if err := feed.ValidName(name); err != nil {
			writeError(w, http.StatusBadRequest, err)
			return
		}
		s.serveRouted(w, r, name, h, pin)
	}
}

// signUp serves POST /v1/users: package account reads the sign-up, and
// the user's name routes it.
func (s *Server) signUp(w http.ResponseWriter, r *http.Request) {
	if name, create, ok := s.acct.SignUp(w, r); ok {
		s.serveRouted(w, r, name, create, nil)
	}
}

func (s *Server) getRing(w http.ResponseWriter, r *http.Request) {
	ans := api.RingAnswer{Info: s.c.Ring().Info(), Self: s.c.Self(), Routing: string(s.Routing())}
	if prev := s.c.Previous(); prev != nil {
		info := prev.Info()
		ans.Previous = &info
	}
	writeJSON(w, http.StatusOK, ans)
}

func (s *Server) lookup(w http.ResponseWriter, r *http.Request) {
	key := r.URL.Query().Get("key")
	if key == "" {
		writeError(w, http.StatusBadRequest, errors.New("key: missing (GET /v1/ring/lookup?key=NAME)"))
		return
	}
	rg := s.c.Ring()
	pref := rg.Preference(nil, key)
	writeJSON(w, http.StatusOK, api.LookupAnswer{Key: key, Hash: ring.HashKey(key).String(), Owner: pref[0], Preference: pref, Version: rg.Version()})
}

// Status is what the admin API's /v1/status reports.
type Status struct {
	Self    string      `json:"self"`
	Routing string      `json:"routing"`
	Ring    ring.Info   `json:"ring"`
	Store   store.Stats `json:"store"`
	// Hints counts the hints waiting here, by member.
	HintsByMember map[string]int `json:"hints_by_member,omitempty"`
	// Hints is their total.
	Hints int `json:"hints"`
	// Rebalance is the progress of streaming users to new replicas
	// after the last ring change.
	Rebalance antientropy.RebalanceStatus `json:"rebalance"`
	// Outbox counts the fan-out deliveries (outbox entries) waiting, up
	// to replica.CountLimit.
	Outbox int `json:"outbox"`
	// Streams counts the live timeline streams served here.
	Streams int `json:"streams"`
	// Links is how this member forwards to each member it has forwarded
	// to; LinksServed counts the links other members have open to it.
	Links       []transport.LinkStatus `json:"links,omitempty"`
	LinksServed int                    `json:"links_served"`
	// CatchingUp says this member is still catching up after its start.
	CatchingUp bool `json:"catching_up"`
	// EdgeNotes counts the follow edges waiting to be confirmed with
	// their other side (up to replica.CountLimit).
	EdgeNotes int `json:"edge_notes"`
	// WriteAcks is how many copies on distinct members a write needs.
	WriteAcks int `json:"write_acks"`
}

// Status reports the server's state.
func (s *Server) Status() Status {
	rg := s.c.Ring()
	st := Status{Self: s.c.Self(), Routing: string(s.Routing()), Ring: rg.Info(), Store: s.store.Stats(),
		Rebalance: s.sync.RebalanceStatus(), Streams: s.fan.Hub().Streams(), Outbox: s.fan.Outbox()}
	st.Links, st.LinksServed = s.tr.Status(), s.tr.LinksServed()
	st.CatchingUp, st.EdgeNotes, st.WriteAcks = s.c.CatchingUp(), s.rep.EdgeNotes(), s.rep.RequiredAcks(rg)
	if hc, err := s.rep.HintCounts(); err == nil && len(hc) > 0 {
		st.HintsByMember = hc
		for _, n := range hc {
			st.Hints += n
		}
	}
	return st
}

// hello answers GET /internal/v1/hello: who this member is.
func (s *Server) hello(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, peer.Hello{Member: s.c.Self(), Gossip: s.gossipAddr, CatchingUp: s.c.CatchingUp(), Store: s.store.ID()})
}
