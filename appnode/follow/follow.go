package follow

import (
	"context"
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
	"github.com/ringfront/ringfront/appnode/transport"
)

// Options configure a Graph.
type Options struct {
	// Cluster is this member's view of the cluster: its clock, and the
	// followee's members.
	Cluster *peer.Cluster
	// Store is this member's database.
	Store *store.Store
	// Replica replicates both sides of an edge.
	Replica *replica.Replica
	// Fanout back-fills a new follower's inbox.
	Fanout *fanout.Fanout
	// Accounts checks the follower's token and the followee's record.
	Accounts *account.Accounts
}

// Graph serves the follow graph. It is safe for concurrent use.
type Graph struct {
	c     *peer.Cluster
	store *store.Store
	rep   *replica.Replica
	fan   *fanout.Fanout
	acct  *account.Accounts
}

// New returns the follow graph of opts.
func New(opts Options) *Graph {
	return &Graph{c: opts.Cluster, store: opts.Store, rep: opts.Replica, fan: opts.Fanout, acct: opts.Accounts}
}

// Routes registers the members' own route: the followee's side of a
// follow, behind internal (the cluster's authentication).
func (g *Graph) Routes(mux *http.ServeMux, internal func(http.HandlerFunc, int64) http.HandlerFunc) {
	mux.HandleFunc("PUT /internal/v1/users/{name}/followers", internal(g.putFollower, transport.MaxBody))
}

// Pin gives a forwarded follow or unfollow its clock, unless the
// client pinned one (see pinned; the server's pinner).
func (g *Graph) Pin(r *http.Request, body []byte) []byte {
	if r.Header.Get(api.HeaderEdgeClock) == "" {
		r.Header.Set(api.HeaderEdgeClock, strconv.FormatUint(uint64(g.c.Clock().Now()), 10))
	}
	return body
}

// CheckPin answers 400 for a follow or unfollow whose pinned clock
// (api.HeaderEdgeClock) is not one, or is further ahead of this
// member's clock than clients may be: nobody pins an edge so far into
// the future that later changes cannot beat it.
func (g *Graph) CheckPin(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if _, err := g.pinned(r); err != nil {
			transport.WriteError(w, http.StatusBadRequest, err)
			return
		}
		h(w, r)
	}
}

// pinned returns the clock pinned on a follow or unfollow: by the
// client (appnode/client pins one, the same on every member it tries,
// later than every clock it has seen) or by the member that forwarded
// it (Pin). Zero when none is.
func (g *Graph) pinned(r *http.Request) (feed.Timestamp, error) {
	v := r.Header.Get(api.HeaderEdgeClock)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("%s: %q is not a clock (a decimal hybrid logical clock value, as in %s answers)", api.HeaderEdgeClock, v, api.HeaderClock)
	}
	if ahead := feed.Timestamp(n).Time().Sub(g.c.Now()); ahead > feed.ClientSkew {
		return 0, fmt.Errorf("%s: %d is %v ahead of this member's clock (at most %v): check the client's clock", api.HeaderEdgeClock, n, ahead.Round(time.Second), feed.ClientSkew)
	}
	return feed.Timestamp(n), nil
}

// Follow serves PUT (follow) and DELETE (unfollow). The edge goes first
// to the followee's side (its first member that answers, which checks
// that the followee exists), then into this member's store on the
// follower's side, each replicated. Both copies carry the same clock,
// so a retry or a replica's copy merges to the same edge; and each
// side, when it stores a change, keeps a durable note to make sure the
// other side has it too (replica's edge notes), so the two sides converge
// whatever answer is lost on the way.
func (g *Graph) Follow(w http.ResponseWriter, r *http.Request) {
	name, other := r.PathValue("name"), r.PathValue("other")
	if err := feed.ValidName(other); err != nil {
		transport.WriteError(w, http.StatusBadRequest, err)
		return
	}
	if other == name {
		transport.WriteError(w, http.StatusBadRequest, errors.New("a user cannot follow themselves (their own posts are in their timeline already)"))
		return
	}
	if !g.acct.Authorize(w, r, name) {
		return
	}
	clock, err := g.clock(r, name, other)
	if err != nil {
		// A later change to this edge is stored here: this request is
		// an old one read late (a copy a paused member read after the
		// client had gone on), or its client's clock is behind. The
		// answer's clock is past the stored change: a client that means
		// it now pins a new clock and sends it again.
		w.Header().Set(api.HeaderClock, g.c.Stamp())
		transport.WriteError(w, http.StatusConflict, err)
		return
	}
	e := feed.Edge{Follower: name, Followee: other, Clock: clock, Removed: r.Method == http.MethodDelete}
	err = g.c.OnMembers(r.Context(), other, true, func(ctx context.Context, m string) error {
		if m == g.c.Self() {
			return g.mergeFollower(ctx, e)
		}
		return g.c.Call(ctx, http.MethodPut, m, "/internal/v1/users/"+other+"/followers", e, nil)
	})
	if err != nil {
		var pe *transport.Error
		switch {
		case errors.As(err, &pe) && (pe.Status == http.StatusNotFound || pe.Status == http.StatusBadRequest):
			// About the followee: the client's problem.
			transport.WriteError(w, pe.Status, errors.New(pe.Msg))
		case errors.Is(err, store.ErrNotFound):
			transport.WriteError(w, http.StatusNotFound, err)
		case errors.As(err, &pe):
			// Anything else the other side answered (a wrong cluster
			// secret, a full disk over there) is this cluster's
			// problem, not the client's.
			transport.WriteError(w, http.StatusBadGateway, fmt.Errorf("recording the edge on %s's side: %w", other, err))
		case errors.Is(err, replica.ErrTooFewCopies), errors.Is(err, peer.ErrNoMember):
			transport.WriteError(w, http.StatusServiceUnavailable, fmt.Errorf("recording the edge on %s's side: %w", other, err))
		default:
			replica.WriteError(w, err)
		}
		return
	}
	if _, err := g.rep.MergeEdge(store.Following, e, true, true); err != nil {
		transport.StoreError(w, err)
		return
	}
	if err := g.rep.Replicate(r.Context(), name, replica.Record{Edge: &e, Side: store.Following, Synced: true}); err != nil {
		replica.WriteError(w, err)
		return
	}
	if !e.Removed {
		g.fan.Backfill(r.Context(), name, other)
	}
	w.WriteHeader(http.StatusNoContent)
}

// clock returns the clock for a new follow or unfollow: the one
// pinned on it (see pinned), as it is, so the same request served
// twice (a retry, or a copy of it that a paused member reads late)
// stores the same edge and never beats a later change; or, for a
// request that reached this member first unpinned, a new one, later
// than the edge already stored here. Clocks travel with every request
// and answer (HeaderClock), so a pinned clock is later than the changes
// the pinning member or client has seen. A pinned clock older than the
// edge stored here is an error: that change is not the latest.
func (g *Graph) clock(r *http.Request, follower, followee string) (feed.Timestamp, error) {
	pin, _ := g.pinned(r) // checked by CheckPin
	old, err := g.store.Edge(store.Following, follower, followee)
	if err == nil {
		g.c.Clock().Observe(old.Clock)
	}
	if pin == 0 {
		return g.c.Clock().Now(), nil
	}
	g.c.Clock().Observe(pin)
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
func (g *Graph) mergeFollower(ctx context.Context, e feed.Edge) error {
	if err := g.acct.Exists(e.Followee); err != nil {
		return err
	}
	if _, err := g.rep.MergeEdge(store.Followers, e, false, true); err != nil {
		return err
	}
	return g.rep.Replicate(ctx, e.Followee, replica.Record{Edge: &e, Side: store.Followers, Fresh: true})
}

// putFollower is the node-to-node half of Follow.
func (g *Graph) putFollower(w http.ResponseWriter, r *http.Request) {
	var e feed.Edge
	if !transport.ReadJSON(w, r, &e, transport.MaxBody) {
		return
	}
	if e.Followee != r.PathValue("name") || feed.ValidName(e.Follower) != nil {
		transport.WriteError(w, http.StatusBadRequest, fmt.Errorf("edge %s→%s does not belong to %s", e.Follower, e.Followee, r.PathValue("name")))
		return
	}
	g.c.Clock().Observe(e.Clock)
	if err := g.mergeFollower(r.Context(), e); err != nil {
		replica.WriteError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// Active lists the other ends of user name's edges on one side, here,
// that are not removed; store.ErrNotFound when name is not stored here.
func (g *Graph) Active(side store.Side, name string) ([]string, error) {
	if err := g.acct.Exists(name); err != nil {
		return nil, err
	}
	edges, err := g.store.Edges(side, name)
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

// Following serves GET /v1/users/{name}/following.
func (g *Graph) Following(w http.ResponseWriter, r *http.Request) {
	g.list(w, r, store.Following, func(names []string) any { return api.FollowingAnswer{Following: names} })
}

// Followers serves GET /v1/users/{name}/followers.
func (g *Graph) Followers(w http.ResponseWriter, r *http.Request) {
	g.list(w, r, store.Followers, func(names []string) any { return api.FollowersAnswer{Followers: names} })
}

// list answers with the active edges of one side of the user r names,
// as answer makes them, then repairs the user's records.
func (g *Graph) list(w http.ResponseWriter, r *http.Request, side store.Side, answer func([]string) any) {
	defer g.rep.RepairAfterRead(r, r.PathValue("name"))
	names, err := g.Active(side, r.PathValue("name"))
	if err != nil {
		transport.StoreError(w, err)
		return
	}
	transport.WriteJSON(w, http.StatusOK, answer(names))
}
