package posts

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/ringfront/ringfront/appnode/account"
	"github.com/ringfront/ringfront/appnode/api"
	"github.com/ringfront/ringfront/appnode/fanout"
	"github.com/ringfront/ringfront/appnode/feed"
	"github.com/ringfront/ringfront/appnode/peer"
	"github.com/ringfront/ringfront/appnode/replica"
	"github.com/ringfront/ringfront/appnode/store"
	"github.com/ringfront/ringfront/appnode/timeline"
	"github.com/ringfront/ringfront/appnode/transport"
)

// Options configure Posts.
type Options struct {
	// Cluster is this member's view of the cluster (its clock).
	Cluster *peer.Cluster
	// Store is this member's database.
	Store *store.Store
	// Replica replicates a new post.
	Replica *replica.Replica
	// Fanout stores a new post with its fan-out entries and delivers
	// them.
	Fanout *fanout.Fanout
	// Timeline reads home timelines.
	Timeline *timeline.Timeline
	// Accounts checks the user's token and record.
	Accounts *account.Accounts
	// IDs draws the ids of new posts.
	IDs *feed.IDSource
}

// Posts serves the users' posts and home timelines. It is safe for
// concurrent use.
type Posts struct {
	c     *peer.Cluster
	store *store.Store
	rep   *replica.Replica
	fan   *fanout.Fanout
	tl    *timeline.Timeline
	acct  *account.Accounts
	ids   *feed.IDSource
}

// New returns the posts of opts.
func New(opts Options) *Posts {
	return &Posts{c: opts.Cluster, store: opts.Store, rep: opts.Replica, fan: opts.Fanout, tl: opts.Timeline,
		acct: opts.Accounts, ids: opts.IDs}
}

// Pin gives a forwarded post its id, unless the client chose one (see
// the server's pinner).
func (p *Posts) Pin(r *http.Request, body []byte) []byte {
	var req api.PostRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if dec.Decode(&req) != nil || dec.More() || req.ID != "" {
		return body // the member that serves it answers what is wrong
	}
	req.ID = p.ids.Next().String()
	b, err := json.Marshal(req)
	if err != nil {
		return body
	}
	return b
}

// Create serves POST /v1/users/{name}/posts.
func (p *Posts) Create(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if !p.acct.Authorize(w, r, name) {
		return
	}
	var req api.PostRequest
	if !transport.ReadJSON(w, r, &req, transport.MaxBody) {
		return
	}
	if err := feed.ValidText(req.Text); err != nil {
		transport.WriteError(w, http.StatusBadRequest, err)
		return
	}
	id, err := p.postID(req.ID)
	if err != nil {
		transport.WriteError(w, http.StatusBadRequest, err)
		return
	}
	post := feed.Post{ID: id, Author: name, Text: req.Text, Created: id.Time()}
	queued, writes, err := p.fan.StorePost(post)
	if err != nil {
		transport.StoreError(w, err)
		return
	}
	rec := replica.Record{Post: &post, Copies: p.fan.CopiesOf(queued), From: p.c.Self(), FromStore: p.store.ID()}
	if err := p.rep.Replicate(r.Context(), name, rec); err != nil {
		p.fan.Kick()
		replica.WriteError(w, err)
		return
	}
	p.fan.DeliverQueued(r.Context(), queued, writes)
	w.Header().Set("Location", "/v1/users/"+name+"/posts/"+id.String())
	transport.WriteJSON(w, http.StatusCreated, post)
}

// postID returns the id for a new post: the one the client (or the
// member that forwarded the post) chose, checked, or a new one.
func (p *Posts) postID(chosen string) (feed.ID, error) {
	if chosen == "" {
		return p.ids.Next(), nil
	}
	id, err := feed.ParseID(chosen)
	if err != nil {
		return id, fmt.Errorf("id: %w", err)
	}
	if d := id.Time().Sub(p.c.Now()); d > feed.ClientSkew || d < -feed.ClientSkew {
		return id, fmt.Errorf("id: %s is from %s, more than %v from this member's clock", chosen, id.Time().Format(time.RFC3339), feed.ClientSkew)
	}
	return id, nil
}

// page reads the page r asks for (?limit= and ?before=), or answers
// 400 and returns false.
func page(w http.ResponseWriter, r *http.Request) (limit int, before feed.ID, ok bool) {
	limit, before, err := api.Page(r.URL.Query())
	if err != nil {
		transport.WriteError(w, http.StatusBadRequest, err)
		return 0, feed.ID{}, false
	}
	return limit, before, true
}

// List serves GET /v1/users/{name}/posts.
func (p *Posts) List(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	limit, before, ok := page(w, r)
	if !ok {
		return
	}
	if err := p.acct.Exists(name); err != nil {
		transport.StoreError(w, err)
		if errors.Is(err, store.ErrNotFound) {
			p.rep.RepairAfterRead(r, name) // a replica may have it
		}
		return
	}
	posts, next, err := p.store.PostsRaw(name, before, limit)
	if err != nil {
		transport.StoreError(w, err)
		return
	}
	writePosts(w, posts, next)
	p.rep.RepairAfterRead(r, name)
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

// cursor is a page's "next": the id to ask for posts before, empty
// after the last page.
func cursor(id feed.ID) string {
	if id.IsZero() {
		return ""
	}
	return id.String()
}

// Timeline serves GET /v1/users/{name}/timeline: a page of name's home
// timeline, the posts of every user name follows and of name itself,
// newest first (timeline.Page).
func (p *Posts) Timeline(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	limit, before, ok := page(w, r)
	if !ok {
		return
	}
	if !p.acct.Authorize(w, r, name) {
		return
	}
	following, err := p.store.ActiveFollowing(name) // Authorize found the user
	if err != nil {
		transport.StoreError(w, err)
		return
	}
	all, more, err := p.tl.Page(r.Context(), name, following, before, limit)
	if err != nil {
		storeOrPeerError(w, err)
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
func storeOrPeerError(w http.ResponseWriter, err error) {
	var pe *transport.Error
	switch {
	case errors.As(err, &pe):
		transport.WriteError(w, http.StatusBadGateway, err)
	case errors.Is(err, peer.ErrNoMember):
		transport.WriteError(w, http.StatusServiceUnavailable, err)
	case errors.Is(err, context.DeadlineExceeded):
		transport.WriteError(w, http.StatusGatewayTimeout, err)
	case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrDiskFull),
		errors.Is(err, store.ErrReadOnly), errors.Is(err, store.ErrFailed):
		transport.StoreError(w, err)
	default:
		transport.WriteError(w, http.StatusBadGateway, err)
	}
}
