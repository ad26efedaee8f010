package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/ringfront/ringfront/appnode/antientropy"
	"github.com/ringfront/ringfront/appnode/api"
	"github.com/ringfront/ringfront/appnode/feed"
	"github.com/ringfront/ringfront/appnode/peer"
	"github.com/ringfront/ringfront/appnode/replica"
	"github.com/ringfront/ringfront/appnode/ring"
	"github.com/ringfront/ringfront/appnode/store"
	"github.com/ringfront/ringfront/appnode/transport"
)

func (s *Server) routes() {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/users", s.createUser)
	mux.HandleFunc("GET /v1/users/{name}", s.keyed(s.getUser, nil))
	mux.HandleFunc("POST /v1/users/{name}/posts", s.keyed(s.createPost, s.pinPost))
	mux.HandleFunc("POST /v1/users/{name}/tokens", s.keyed(s.rotateToken, s.pinToken))
	mux.HandleFunc("GET /v1/users/{name}/posts", s.keyed(s.listPosts, nil))
	mux.HandleFunc("PUT /v1/users/{name}/following/{other}", s.checkEdgePin(s.keyed(s.follow, s.pinEdge)))
	mux.HandleFunc("DELETE /v1/users/{name}/following/{other}", s.checkEdgePin(s.keyed(s.follow, s.pinEdge)))
	mux.HandleFunc("GET /v1/users/{name}/following", s.keyed(s.listFollowing, nil))
	mux.HandleFunc("GET /v1/users/{name}/followers", s.keyed(s.listFollowers, nil))
	mux.HandleFunc("GET /v1/users/{name}/timeline", s.keyed(s.timeline, nil))
	mux.HandleFunc("GET /v1/users/{name}/timeline/stream", s.keyed(s.timelineStream, nil))
	mux.HandleFunc("GET /healthz", s.healthz)
	mux.HandleFunc("GET /v1/ring", s.getRing)
	mux.HandleFunc("GET /v1/ring/lookup", s.lookup)
	// The members' own calls, each subsystem's on its own routes.
	internal := s.tr.Internal
	mux.HandleFunc("PUT /internal/v1/users/{name}/followers", internal(s.putFollower, transport.MaxBody))
	mux.HandleFunc("GET /internal/v1/hello", internal(s.hello, transport.MaxBody))
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

// pinPost gives a forwarded post its id, unless the client chose one.
func (s *Server) pinPost(r *http.Request, body []byte) []byte {
	var req api.PostRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if dec.Decode(&req) != nil || dec.More() || req.ID != "" {
		return body // the member that serves it answers what is wrong
	}
	req.ID = s.ids.Next().String()
	b, err := json.Marshal(req)
	if err != nil {
		return body
	}
	return b
}

// pinEdge gives a forwarded follow or unfollow its clock, unless the
// client pinned one (see edgePin).
func (s *Server) pinEdge(r *http.Request, body []byte) []byte {
	if r.Header.Get(api.HeaderEdgeClock) == "" {
		r.Header.Set(api.HeaderEdgeClock, strconv.FormatUint(uint64(s.c.Clock().Now()), 10))
	}
	return body
}

// checkEdgePin answers 400 for a follow or unfollow whose pinned clock
// (api.HeaderEdgeClock) is not one, or is further ahead of this
// member's clock than clients may be: nobody pins an edge so far into
// the future that later changes cannot beat it.
func (s *Server) checkEdgePin(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if _, err := s.edgePin(r); err != nil {
			writeError(w, http.StatusBadRequest, err)
			return
		}
		h(w, r)
	}
}

// edgePin returns the clock pinned on a follow or unfollow: by the
// client (appnode/client pins one, the same on every member it tries,
// later than every clock it has seen) or by the member that forwarded
// it (pinEdge). Zero when none is.
func (s *Server) edgePin(r *http.Request) (feed.Timestamp, error) {
	v := r.Header.Get(api.HeaderEdgeClock)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("%s: %q is not a clock (a decimal hybrid logical clock value, as in %s answers)", api.HeaderEdgeClock, v, api.HeaderClock)
	}
	if ahead := feed.Timestamp(n).Time().Sub(s.c.Now()); ahead > idSkew {
		return 0, fmt.Errorf("%s: %d is %v ahead of this member's clock (at most %v): check the client's clock", api.HeaderEdgeClock, n, ahead.Round(time.Second), idSkew)
	}
	return feed.Timestamp(n), nil
}

// idSkew is how far a post id or an edge clock chosen by a client may
// be from this member's clock: wide enough for clients and members
// whose clocks disagree, narrow enough that nobody pins a post to the
// top of timelines, or an edge beyond later changes, for long.
const idSkew = 5 * time.Minute

// storeError answers a failed store operation.
func (s *Server) storeError(w http.ResponseWriter, err error) { transport.StoreError(w, err) }

func hashToken(token string) []byte {
	sum := sha256.Sum256([]byte(token))
	return sum[:]
}

// authorize checks the bearer token of user name and answers the request
// itself (401, 403, 404 or a store error) when it is not right.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request, name string) bool {
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || token == "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="appnode"`)
		writeError(w, http.StatusUnauthorized, fmt.Errorf("this needs %s's token (Authorization: Bearer ...)", name))
		return false
	}
	u, err := s.store.User(name)
	if err != nil {
		s.storeError(w, err)
		return false
	}
	if !tokenAccepted(w, u, token) {
		return false
	}
	return s.admitUser(w, r, name)
}

func (s *Server) createUser(w http.ResponseWriter, r *http.Request) {
	var req api.CreateUserRequest
	if !readJSON(w, r, &req) {
		return
	}
	if err := feed.ValidName(req.Name); err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	if req.Token == "" {
		// Drawn here, before routing, so that a forward to a member that
		// does not answer can be sent to the next with the same token.
		req.Token = newToken()
		b, err := json.Marshal(req)
		if err != nil {
			writeError(w, http.StatusInternalServerError, fmt.Errorf("encoding request: %w", err))
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(b))
	} else if raw, err := base64.RawURLEncoding.DecodeString(req.Token); err != nil || len(req.Token) != api.TokenLen || len(raw) != 32 {
		writeError(w, http.StatusBadRequest, fmt.Errorf("token: is not %d characters of URL-safe base64 (32 random bytes)", api.TokenLen))
		return
	}
	s.serveRouted(w, r, req.Name, func(w http.ResponseWriter, r *http.Request) { s.createUserHere(w, r, req.Name, req.Token) }, nil)
}

// createUserHere creates user name with token on this member, which
// answers for it. The same request served again (a forwarder that did
// not hear the first answer sent it to the next member) finds the user
// with the same token and answers 201 again.
func (s *Server) createUserHere(w http.ResponseWriter, r *http.Request, name, token string) {
	u := feed.User{Name: name, TokenHash: hashToken(token), Created: s.c.Clock().Now().Time()}
	switch err := s.store.CreateUser(u); {
	case errors.Is(err, store.ErrExists):
		cur, err := s.store.User(name)
		if err != nil {
			s.storeError(w, err)
			return
		}
		if subtle.ConstantTimeCompare(cur.TokenHash, u.TokenHash) != 1 {
			writeError(w, http.StatusConflict, fmt.Errorf("user %s: %w", name, store.ErrExists))
			return
		}
		u = cur // this very request, served before
	case err != nil:
		s.storeError(w, err)
		return
	default:
		if err := s.store.SetHorizon(u.Name, feed.ID{}); err != nil {
			// Without it the first timeline read merges and starts the inbox.
			s.log.Warn("starting an inbox", "op", "create", "user", u.Name, "err", err)
		}
	}
	if err := s.rep.Replicate(r.Context(), u.Name, replica.Record{User: &u}); err != nil {
		replica.WriteError(w, err)
		return
	}
	w.Header().Set("Location", "/v1/users/"+u.Name)
	writeJSON(w, http.StatusCreated, api.CreateUserAnswer{Name: u.Name, Token: token})
}

func (s *Server) getUser(w http.ResponseWriter, r *http.Request) {
	u, err := s.store.User(r.PathValue("name"))
	if err != nil {
		s.storeError(w, err)
		if errors.Is(err, store.ErrNotFound) {
			s.repairAfterRead(r, r.PathValue("name")) // a replica may have it
		}
		return
	}
	writeJSON(w, http.StatusOK, api.UserAnswer{Name: u.Name, Created: u.Created})
	s.repairAfterRead(r, u.Name)
}

func (s *Server) createPost(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if !s.authorize(w, r, name) {
		return
	}
	var req api.PostRequest
	if !readJSON(w, r, &req) {
		return
	}
	if err := feed.ValidText(req.Text); err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	id, err := s.postID(req.ID)
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	p := feed.Post{ID: id, Author: name, Text: req.Text, Created: id.Time()}
	queued, writes, err := s.fan.StorePost(p)
	if err != nil {
		s.storeError(w, err)
		return
	}
	rec := replica.Record{Post: &p, Copies: s.fan.CopiesOf(queued), From: s.c.Self(), FromStore: s.store.ID()}
	if err := s.rep.Replicate(r.Context(), name, rec); err != nil {
		s.fan.Kick()
		replica.WriteError(w, err)
		return
	}
	s.fan.DeliverQueued(r.Context(), queued, writes)
	w.Header().Set("Location", "/v1/users/"+name+"/posts/"+id.String())
	writeJSON(w, http.StatusCreated, p)
}

// postID returns the id for a new post: the one the client (or the
// member that forwarded the post) chose, checked, or a new one.
func (s *Server) postID(chosen string) (feed.ID, error) {
	if chosen == "" {
		return s.ids.Next(), nil
	}
	id, err := feed.ParseID(chosen)
	if err != nil {
		return id, fmt.Errorf("id: %w", err)
	}
	if d := id.Time().Sub(s.c.Now()); d > idSkew || d < -idSkew {
		return id, fmt.Errorf("id: %s is from %s, more than %v from this member's clock", chosen, id.Time().Format(time.RFC3339), idSkew)
	}
	return id, nil
}

// page reads ?limit= and ?before=.
func page(r *http.Request) (limit int, before feed.ID, err error) { return api.Page(r.URL.Query()) }

// repairAfterRead starts a background read repair of name (see
// replica's RepairAfterRead) after a read of the page r asks for.
func (s *Server) repairAfterRead(r *http.Request, name string) {
	if limit, before, err := page(r); err == nil {
		s.rep.RepairAfterRead(r.Context(), name, before, limit)
	}
}

func cursor(id feed.ID) string {
	if id.IsZero() {
		return ""
	}
	return id.String()
}

func (s *Server) listPosts(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	limit, before, err := page(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	if err := s.userExists(name); err != nil {
		s.storeError(w, err)
		if errors.Is(err, store.ErrNotFound) {
			s.repairAfterRead(r, name) // a replica may have it
		}
		return
	}
	posts, next, err := s.store.PostsRaw(name, before, limit)
	if err != nil {
		s.storeError(w, err)
		return
	}
	writePosts(w, posts, next)
	s.repairAfterRead(r, name)
}

// userExists returns nil, store.ErrNotFound or the store's error.
func (s *Server) userExists(name string) error {
	ok, err := s.store.HasUser(name)
	switch {
	case err != nil:
		return err
	case !ok:
		return fmt.Errorf("user %s: %w", name, store.ErrNotFound)
	}
	return nil
}

// writePosts writes an api.PostsAnswer from stored JSON, without
// decoding and re-encoding every post.
func writePosts(w http.ResponseWriter, posts []store.RawPost, next feed.ID) {
	n := 64
	for _, p := range posts {
		n += len(p.JSON) + 1
	}
	b := make([]byte, 0, n)
	b = append(b, `{"posts":[`...)
	for i, p := range posts {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, p.JSON...)
	}
	b = append(b, `],"next":"`...)
	b = append(b, cursor(next)...)
	b = append(b, "\"}\n"...)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(http.StatusOK)
	w.Write(b)
}

// follow serves PUT (follow) and DELETE (unfollow). The edge goes first
// to the followee's side (its first member that answers, which checks
// that the followee exists), then into this member's store on the
// follower's side, each replicated. Both copies carry the same clock,
// so a retry or a replica's copy merges to the same edge; and each
// side, when it stores a change, keeps a durable note to make sure the
// other side has it too (replica's edge notes), so the two sides converge
// whatever answer is lost on the way.
func (s *Server) follow(w http.ResponseWriter, r *http.Request) {
	name, other := r.PathValue("name"), r.PathValue("other")
	if err := feed.ValidName(other); err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	if other == name {
		writeError(w, http.StatusBadRequest, errors.New("a user cannot follow themselves (their own posts are in their timeline already)"))
		return
	}
	if !s.authorize(w, r, name) {
		return
	}
	clock, err := s.edgeClock(r, name, other)
	if err != nil {
		// A later change to this edge is stored here: this request is
		// an old one read late (a copy a paused member read after the
		// client had gone on), or its client's clock is behind. The
		// answer's clock is past the stored change: a client that means
		// it now pins a new clock and sends it again.
		w.Header().Set(api.HeaderClock, s.c.Stamp())
		writeError(w, http.StatusConflict, err)
		return
	}
	e := feed.Edge{Follower: name, Followee: other, Clock: clock, Removed: r.Method == http.MethodDelete}
	err = s.c.OnMembers(r.Context(), other, true, func(ctx context.Context, m string) error {
		if m == s.c.Self() {
			return s.mergeFollower(ctx, e)
		}
		return s.c.Call(ctx, http.MethodPut, m, "/internal/v1/users/"+other+"/followers", e, nil)
	})
	if err != nil {
		var pe *transport.Error
		switch {
		case errors.As(err, &pe) && (pe.Status == http.StatusNotFound || pe.Status == http.StatusBadRequest):
			// About the followee: the client's problem.
			writeError(w, pe.Status, errors.New(pe.Msg))
		case errors.Is(err, store.ErrNotFound):
			writeError(w, http.StatusNotFound, err)
		case errors.As(err, &pe):
			// Anything else the other side answered (a wrong cluster
			// secret, a full disk over there) is this cluster's
			// problem, not the client's.
			writeError(w, http.StatusBadGateway, fmt.Errorf("recording the edge on %s's side: %w", other, err))
		case errors.Is(err, replica.ErrTooFewCopies), errors.Is(err, peer.ErrNoMember):
			writeError(w, http.StatusServiceUnavailable, fmt.Errorf("recording the edge on %s's side: %w", other, err))
		default:
			replica.WriteError(w, err)
		}
		return
	}
	if _, err := s.rep.MergeEdge(store.Following, e, true, true); err != nil {
		s.storeError(w, err)
		return
	}
	if err := s.rep.Replicate(r.Context(), name, replica.Record{Edge: &e, Side: store.Following, Synced: true}); err != nil {
		replica.WriteError(w, err)
		return
	}
	if !e.Removed {
		s.fan.Backfill(r.Context(), name, other)
	}
	w.WriteHeader(http.StatusNoContent)
}

// edgeClock returns the clock for a new follow or unfollow: the one
// pinned on it (see edgePin), as it is, so the same request served
// twice (a retry, or a copy of it that a paused member reads late)
// stores the same edge and never beats a later change; or, for a
// request that reached this member first unpinned, a new one, later
// than the edge already stored here. Clocks travel with every request
// and answer (HeaderClock), so a pinned clock is later than the changes
// the pinning member or client has seen. A pinned clock older than the
// edge stored here is an error: that change is not the latest.
func (s *Server) edgeClock(r *http.Request, follower, followee string) (feed.Timestamp, error) {
	pin, _ := s.edgePin(r) // checked by checkEdgePin
	old, err := s.store.Edge(store.Following, follower, followee)
	if err == nil {
		s.c.Clock().Observe(old.Clock)
	}
	if pin == 0 {
		return s.c.Clock().Now(), nil
	}
	s.c.Clock().Observe(pin)
	if err == nil && old.Clock > pin {
		change := "a follow"
		if old.Removed {
			change = "an unfollow"
		}
		return 0, fmt.Errorf("%s following %s: a later change is stored (%s at %s; this request's clock is %s): send it again with a later %s to make it the latest",
			follower, followee, change, old.Clock.Time().Format(time.RFC3339Nano), pin.Time().Format(time.RFC3339Nano), api.HeaderEdgeClock)
	}
	return pin, nil
}

// mergeFollower stores an edge on the followee's side, here, and on the
// followee's other replicas.
func (s *Server) mergeFollower(ctx context.Context, e feed.Edge) error {
	if err := s.userExists(e.Followee); err != nil {
		return err
	}
	if _, err := s.rep.MergeEdge(store.Followers, e, false, true); err != nil {
		return err
	}
	return s.rep.Replicate(ctx, e.Followee, replica.Record{Edge: &e, Side: store.Followers, Fresh: true})
}

// putFollower is the node-to-node half of follow.
func (s *Server) putFollower(w http.ResponseWriter, r *http.Request) {
	var e feed.Edge
	if !readJSON(w, r, &e) {
		return
	}
	if e.Followee != r.PathValue("name") || feed.ValidName(e.Follower) != nil {
		writeError(w, http.StatusBadRequest, fmt.Errorf("edge %s→%s does not belong to %s", e.Follower, e.Followee, r.PathValue("name")))
		return
	}
	s.c.Clock().Observe(e.Clock)
	if err := s.mergeFollower(r.Context(), e); err != nil {
		replica.WriteError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// active lists the other ends of the edges on one side that are not
// removed.
func (s *Server) active(side store.Side, name string) ([]string, error) {
	if err := s.userExists(name); err != nil {
		return nil, err
	}
	edges, err := s.store.Edges(side, name)
	if err != nil {
		return nil, err
	}
	out := []string{}
	for _, e := range edges {
		if e.Removed {
			continue
		}
		if side == store.Following {
			out = append(out, e.Followee)
		} else {
			out = append(out, e.Follower)
		}
	}
	return out, nil
}

func (s *Server) listFollowing(w http.ResponseWriter, r *http.Request) {
	defer s.repairAfterRead(r, r.PathValue("name"))
	names, err := s.active(store.Following, r.PathValue("name"))
	if err != nil {
		s.storeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, api.FollowingAnswer{Following: names})
}

func (s *Server) listFollowers(w http.ResponseWriter, r *http.Request) {
	defer s.repairAfterRead(r, r.PathValue("name"))
	names, err := s.active(store.Followers, r.PathValue("name"))
	if err != nil {
		s.storeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, api.FollowersAnswer{Followers: names})
}

// timeline reads a page of name's home timeline: the posts of every
// user name follows and of name itself, newest first (timelinePage).
func (s *Server) timeline(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	limit, before, err := page(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	if !s.authorize(w, r, name) {
		return
	}
	following, err := s.store.ActiveFollowing(name) // authorize found the user
	if err != nil {
		s.storeError(w, err)
		return
	}
	all, more, err := s.tl.Page(r.Context(), name, following, before, limit)
	if err != nil {
		s.storeOrPeerError(w, err)
		return
	}
	var next feed.ID
	if more && len(all) > 0 {
		next = all[len(all)-1].ID
	}
	writePosts(w, all, next)
}

// storeOrPeerError answers an error that came from the local store or
// from another member.
func (s *Server) storeOrPeerError(w http.ResponseWriter, err error) {
	var pe *transport.Error
	switch {
	case errors.As(err, &pe):
		writeError(w, http.StatusBadGateway, err)
	case errors.Is(err, peer.ErrNoMember):
		writeError(w, http.StatusServiceUnavailable, err)
	case errors.Is(err, context.DeadlineExceeded):
		writeError(w, http.StatusGatewayTimeout, err)
	case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrDiskFull),
		errors.Is(err, store.ErrReadOnly), errors.Is(err, store.ErrFailed):
		s.storeError(w, err)
	default:
		writeError(w, http.StatusBadGateway, err)
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
