package server

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/ringfront/ringfront/appnode/api"
	"github.com/ringfront/ringfront/appnode/feed"
	"github.com/ringfront/ringfront/appnode/ring"
	"github.com/ringfront/ringfront/appnode/store"
)

func (s *Server) routes() {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/users", s.createUser)
	mux.HandleFunc("GET /v1/users/{name}", s.keyed(s.getUser))
	mux.HandleFunc("POST /v1/users/{name}/posts", s.keyed(s.createPost))
	mux.HandleFunc("GET /v1/users/{name}/posts", s.keyed(s.listPosts))
	mux.HandleFunc("PUT /v1/users/{name}/following/{other}", s.keyed(s.follow))
	mux.HandleFunc("DELETE /v1/users/{name}/following/{other}", s.keyed(s.follow))
	mux.HandleFunc("GET /v1/users/{name}/following", s.keyed(s.listFollowing))
	mux.HandleFunc("GET /v1/users/{name}/followers", s.keyed(s.listFollowers))
	mux.HandleFunc("GET /v1/users/{name}/timeline", s.keyed(s.timeline))
	mux.HandleFunc("GET /v1/ring", s.getRing)
	mux.HandleFunc("GET /v1/ring/lookup", s.lookup)
	mux.HandleFunc("GET /internal/v1/users/{name}/posts", s.internal(s.listPosts))
	mux.HandleFunc("PUT /internal/v1/users/{name}/followers", s.internal(s.putFollower))
	mux.HandleFunc("/", s.notFound)
	s.mux = mux
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
// then routes the request to the name's owner or serves it here.
func (s *Server) keyed(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		if err := feed.ValidName(name); err != nil {
			writeError(w, http.StatusBadRequest, err)
			return
		}
		if s.route(w, r, name) {
			return
		}
		h(w, r)
	}
}

// internal wraps a node-to-node handler: it needs the cluster secret and
// is always served here, never routed.
func (s *Server) internal(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !verify(s.secret, s.now(), r) {
			writeError(w, http.StatusUnauthorized, errCluster)
			return
		}
		if err := feed.ValidName(r.PathValue("name")); err != nil {
			writeError(w, http.StatusBadRequest, err)
			return
		}
		h(w, r)
	}
}

// storeError answers a failed store operation.
func (s *Server) storeError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, store.ErrNotFound):
		writeError(w, http.StatusNotFound, err)
	case errors.Is(err, store.ErrExists):
		writeError(w, http.StatusConflict, err)
	case errors.Is(err, store.ErrDiskFull):
		writeError(w, http.StatusInsufficientStorage, err)
	case errors.Is(err, store.ErrReadOnly), errors.Is(err, store.ErrFailed):
		writeError(w, http.StatusServiceUnavailable, err)
	default:
		writeError(w, http.StatusInternalServerError, err)
	}
}

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
	if subtle.ConstantTimeCompare(hashToken(token), u.TokenHash) != 1 {
		writeError(w, http.StatusForbidden, fmt.Errorf("wrong token for %s", name))
		return false
	}
	return true
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
	if s.route(w, r, req.Name) {
		return
	}
	// 32 random bytes: a token nobody guesses.
	var raw [32]byte
	rand.Read(raw[:])
	token := base64.RawURLEncoding.EncodeToString(raw[:])
	u := feed.User{Name: req.Name, TokenHash: hashToken(token), Created: s.clock.Now().Time()}
	if err := s.store.CreateUser(u); err != nil {
		s.storeError(w, err)
		return
	}
	w.Header().Set("Location", "/v1/users/"+u.Name)
	writeJSON(w, http.StatusCreated, api.CreateUserAnswer{Name: u.Name, Token: token})
}

func (s *Server) getUser(w http.ResponseWriter, r *http.Request) {
	u, err := s.store.User(r.PathValue("name"))
	if err != nil {
		s.storeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, api.UserAnswer{Name: u.Name, Created: u.Created})
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
	id := s.ids.Next()
	p := feed.Post{ID: id, Author: name, Text: req.Text, Created: id.Time()}
	if err := s.store.AddPost(p); err != nil {
		s.storeError(w, err)
		return
	}
	w.Header().Set("Location", "/v1/users/"+name+"/posts/"+id.String())
	writeJSON(w, http.StatusCreated, p)
}

// page reads ?limit= and ?before=.
func page(r *http.Request) (limit int, before feed.ID, err error) {
	limit = feed.DefaultPage
	if v := r.URL.Query().Get("limit"); v != "" {
		limit, err = strconv.Atoi(v)
		if err != nil || limit < 1 || limit > feed.MaxPage {
			return 0, before, fmt.Errorf("limit: %q is not a number from 1 to %d", v, feed.MaxPage)
		}
	}
	if v := r.URL.Query().Get("before"); v != "" {
		before, err = feed.ParseID(v)
		if err != nil {
			return 0, before, fmt.Errorf("before: %w", err)
		}
	}
	return limit, before, nil
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
	if _, err := s.store.User(name); err != nil {
		s.storeError(w, err)
		return
	}
	posts, next, err := s.store.Posts(name, before, limit)
	if err != nil {
		s.storeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, api.PostsAnswer{Posts: nonNil(posts), Next: cursor(next)})
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// follow serves PUT (follow) and DELETE (unfollow). The edge goes first
// to the followee's owner, which checks that the followee exists, then
// into this member's store on the follower's side. Both copies carry the
// same clock, so a retry or a replica's copy merges to the same edge.
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
	e := feed.Edge{Follower: name, Followee: other, Clock: s.clock.Now(), Removed: r.Method == http.MethodDelete}
	owner := s.target(s.ring.Load(), other)
	if owner == s.self {
		if err := s.mergeFollower(e); err != nil {
			s.storeError(w, err)
			return
		}
	} else if err := s.call(r.Context(), http.MethodPut, owner, "/internal/v1/users/"+other+"/followers", e, nil); err != nil {
		var pe *peerError
		if errors.As(err, &pe) && pe.Status/100 == 4 {
			writeError(w, pe.Status, errors.New(pe.Msg))
		} else {
			writeError(w, http.StatusBadGateway, fmt.Errorf("recording the edge with %s's owner: %w", other, err))
		}
		return
	}
	if _, err := s.store.MergeEdge(store.Following, e); err != nil {
		s.storeError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// mergeFollower stores an edge on the followee's side, here.
func (s *Server) mergeFollower(e feed.Edge) error {
	if _, err := s.store.User(e.Followee); err != nil {
		return err
	}
	_, err := s.store.MergeEdge(store.Followers, e)
	return err
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
	s.clock.Observe(e.Clock)
	if err := s.mergeFollower(e); err != nil {
		s.storeError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// active lists the other ends of the edges on one side that are not
// removed.
func (s *Server) active(side store.Side, name string) ([]string, error) {
	if _, err := s.store.User(name); err != nil {
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
	names, err := s.active(store.Following, r.PathValue("name"))
	if err != nil {
		s.storeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, api.FollowingAnswer{Following: names})
}

func (s *Server) listFollowers(w http.ResponseWriter, r *http.Request) {
	names, err := s.active(store.Followers, r.PathValue("name"))
	if err != nil {
		s.storeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, api.FollowersAnswer{Followers: names})
}

// timelineFanout bounds the parallel reads of one timeline request: a
// user following thousands must not open thousands of requests at once.
const timelineFanout = 16

// timelineTimeout bounds the whole read-time merge.
const timelineTimeout = 5 * time.Second

// timeline merges, at read time, one page of posts of every user name
// follows and of name itself, read in parallel from each author's owner.
// The top limit of the union of every author's top limit is exactly the
// top limit overall, so cursor paging is exact.
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
	authors, err := s.active(store.Following, name)
	if err != nil {
		s.storeError(w, err)
		return
	}
	authors = append(authors, name)
	pages := make([]api.PostsAnswer, len(authors))
	ctx, cancel := context.WithTimeout(r.Context(), timelineTimeout)
	defer cancel()
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(timelineFanout)
	rg := s.ring.Load()
	for i, author := range authors {
		g.Go(func() error {
			var err error
			pages[i], err = s.authorPosts(ctx, rg, author, before, limit)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		s.storeOrPeerError(w, err)
		return
	}
	var all []feed.Post
	more := false
	for _, p := range pages {
		all = append(all, p.Posts...)
		more = more || p.Next != ""
	}
	slices.SortFunc(all, func(a, b feed.Post) int { return cmp.Compare(0, a.ID.Compare(b.ID)) })
	ans := api.PostsAnswer{Posts: nonNil(all)}
	if len(all) > limit {
		ans.Posts, more = all[:limit], true
	}
	if more && len(ans.Posts) > 0 {
		ans.Next = ans.Posts[len(ans.Posts)-1].ID.String()
	}
	writeJSON(w, http.StatusOK, ans)
}

// authorPosts reads one page of an author's posts, here or from the
// member that answers for the author. An author that does not exist has no posts.
func (s *Server) authorPosts(ctx context.Context, rg *ring.Ring, author string, before feed.ID, limit int) (api.PostsAnswer, error) {
	if owner := s.target(rg, author); owner != s.self {
		uri := "/internal/v1/users/" + author + "/posts?limit=" + strconv.Itoa(limit)
		if !before.IsZero() {
			uri += "&before=" + before.String()
		}
		var ans api.PostsAnswer
		err := s.call(ctx, http.MethodGet, owner, uri, nil, &ans)
		var pe *peerError
		if errors.As(err, &pe) && pe.Status == http.StatusNotFound {
			return api.PostsAnswer{}, nil
		}
		if err != nil {
			return api.PostsAnswer{}, fmt.Errorf("reading posts of %s: %w", author, err)
		}
		return ans, nil
	}
	posts, next, err := s.store.Posts(author, before, limit)
	if err != nil {
		return api.PostsAnswer{}, err
	}
	return api.PostsAnswer{Posts: posts, Next: cursor(next)}, nil
}

// storeOrPeerError answers an error that came from the local store or
// from another member.
func (s *Server) storeOrPeerError(w http.ResponseWriter, err error) {
	var pe *peerError
	switch {
	case errors.As(err, &pe):
		writeError(w, http.StatusBadGateway, err)
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
	writeJSON(w, http.StatusOK, api.RingAnswer{Info: s.ring.Load().Info(), Self: s.self, Routing: string(s.Routing())})
}

func (s *Server) lookup(w http.ResponseWriter, r *http.Request) {
	key := r.URL.Query().Get("key")
	if key == "" {
		writeError(w, http.StatusBadRequest, errors.New("key: missing (GET /v1/ring/lookup?key=NAME)"))
		return
	}
	rg := s.ring.Load()
	pref := rg.Preference(nil, key)
	writeJSON(w, http.StatusOK, api.LookupAnswer{Key: key, Hash: ring.HashKey(key).String(), Owner: pref[0], Preference: pref, Version: rg.Version()})
}

// Status is what the admin API's /v1/status reports.
type Status struct {
	Self    string      `json:"self"`
	Routing string      `json:"routing"`
	Ring    ring.Info   `json:"ring"`
	Store   store.Stats `json:"store"`
}

// Status reports the server's state.
func (s *Server) Status() Status {
	return Status{Self: s.self, Routing: string(s.Routing()), Ring: s.ring.Load().Info(), Store: s.store.Stats()}
}
