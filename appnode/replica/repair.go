package replica

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"

	"github.com/ringfront/ringfront/appnode/api"
	"github.com/ringfront/ringfront/appnode/feed"
	"github.com/ringfront/ringfront/appnode/peer"
	"github.com/ringfront/ringfront/appnode/store"
	"github.com/ringfront/ringfront/appnode/transport"
)

// Read repair: after this member answers a read for a user (it is the
// first live member of the user's preference list), it compares, in
// the background, what it holds for that user with each other live
// replica — the user record, the page of posts the read covered, and
// every follow edge on both sides — and repairs both ways by union:
// records it lacks are stored here, records the replica lacks are sent
// to it. Records are immutable or merge by their clock, so a repair
// never undoes a write.

// maxRepairs bounds the repairs running at once; a read that would
// start one more skips its repair (the next read of the user repairs).
const maxRepairs = 4

// maxRepairEdges bounds the edges one side of a user sends for a
// repair: far more than anyone follows before fan-out limits apply.
const maxRepairEdges = 10_000

// Records is what a member holds for one user: the answer of GET
// /internal/v1/users/{name}/records.
type Records struct {
	User      *feed.User  `json:"user,omitempty"`
	Posts     []feed.Post `json:"posts"`
	More      bool        `json:"more"` // posts older than the page exist
	Following []feed.Edge `json:"following"`
	Followers []feed.Edge `json:"followers"`
}

// SetReadRepair turns read repair on or off.
func (s *Replica) SetReadRepair(on bool) { s.readRepair.Store(on) }

// LocalRecords collects this member's records for name: the user, one
// page of posts (older than before, up to limit) and all edges.
func (s *Replica) LocalRecords(name string, before feed.ID, limit int) (Records, error) {
	var out Records
	switch u, err := s.store.User(name); {
	case err == nil:
		out.User = &u
	case !errors.Is(err, store.ErrNotFound):
		return out, err
	}
	posts, next, err := s.store.Posts(name, before, limit)
	if err != nil {
		return out, err
	}
	out.Posts, out.More = posts, !next.IsZero()
	if out.Following, err = s.store.Edges(store.Following, name); err != nil {
		return out, err
	}
	if out.Followers, err = s.store.Edges(store.Followers, name); err != nil {
		return out, err
	}
	if len(out.Following) > maxRepairEdges || len(out.Followers) > maxRepairEdges {
		return out, fmt.Errorf("%s has more than %d edges on one side, too many to repair on read", name, maxRepairEdges)
	}
	return out, nil
}

// recordsHandler is the node-to-node half of read repair.
func (s *Replica) recordsHandler(w http.ResponseWriter, r *http.Request) {
	limit, before, err := api.Page(r.URL.Query())
	if err != nil {
		transport.WriteError(w, http.StatusBadRequest, err)
		return
	}
	recs, err := s.LocalRecords(r.PathValue("name"), before, limit)
	if err != nil {
		transport.StoreError(w, err)
		return
	}
	transport.WriteJSON(w, http.StatusOK, recs)
}

// RepairAfterRead starts a background repair of name after the read r:
// of the page of its posts r asks for (?limit= and ?before=; none when
// they are wrong), if read repair is on and fewer than maxRepairs are
// running; the members Skipped in r's context are left out.
func (s *Replica) RepairAfterRead(r *http.Request, name string) {
	limit, before, err := api.Page(r.URL.Query())
	if err != nil || !s.readRepair.Load() {
		return
	}
	select {
	case s.repairSlots <- struct{}{}:
	default:
		s.metrics.repairs.WithLabelValues("skipped").Inc()
		return
	}
	skip := peer.Skipped(r.Context())
	s.background.Add(1)
	go func() {
		defer s.background.Done()
		defer func() { <-s.repairSlots }()
		ctx, cancel := context.WithTimeout(context.Background(), transport.CallTimeout)
		defer cancel()
		if _, err := s.Repair(ctx, name, before, limit, skip...); err != nil {
			s.log.Warn("read repair", "op", "repair", "user", name, "err", err)
		}
	}()
}

// Repair compares this member's records for name (the page of posts
// older than before, up to limit) with every other live member of the
// user's preference list, except those in skip, and repairs both sides.
// It returns how many records were copied, either way.
func (s *Replica) Repair(ctx context.Context, name string, before feed.ID, limit int, skip ...string) (int, error) {
	local, err := s.LocalRecords(name, before, limit)
	if err != nil {
		s.metrics.repairs.WithLabelValues("failed").Inc()
		return 0, fmt.Errorf("reading %s's records here: %w", name, err)
	}
	var buf [8]string
	copied := 0
	var errs error
	for _, m := range s.c.Ring().Preference(buf[:0], name) {
		if m == s.c.Self() || !s.c.Alive(m) || slices.Contains(skip, m) {
			continue
		}
		n, err := s.repairWith(ctx, m, name, before, limit, local)
		copied += n
		errs = errors.Join(errs, err)
	}
	switch {
	case errs != nil:
		s.metrics.repairs.WithLabelValues("failed").Inc()
	case copied > 0:
		s.metrics.repairs.WithLabelValues("repaired").Inc()
	default:
		s.metrics.repairs.WithLabelValues("same").Inc()
	}
	return copied, errs
}

// repairWith repairs name between this member and member m.
func (s *Replica) repairWith(ctx context.Context, m, name string, before feed.ID, limit int, local Records) (int, error) {
	remote, err := s.RemoteRecords(ctx, m, name, before, limit)
	if err != nil {
		return 0, err
	}
	return s.Reconcile(ctx, m, name, local, remote, true)
}

// RemoteRecords fetches member m's records for name.
func (s *Replica) RemoteRecords(ctx context.Context, m, name string, before feed.ID, limit int) (Records, error) {
	q := url.Values{"limit": {strconv.Itoa(limit)}}
	if !before.IsZero() {
		q.Set("before", before.String())
	}
	var remote Records
	if err := s.c.Call(ctx, http.MethodGet, m, "/internal/v1/users/"+name+"/records?"+q.Encode(), nil, &remote); err != nil {
		return remote, fmt.Errorf("reading %s's records on %s: %w", name, m, err)
	}
	return remote, nil
}

// Reconcile makes this member and m hold the union of local and remote
// (the same query on each) and returns how many records it copied. The
// user record is copied only withUser, and after everything else: a
// member that has the user record has the rest (see movedFrom).
func (s *Replica) Reconcile(ctx context.Context, m, name string, local, remote Records, withUser bool) (int, error) {
	var here, there []Record // what this member lacks, what m lacks
	here = append(here, missingPosts(remote, local)...)
	there = append(there, missingPosts(local, remote)...)
	for _, side := range []struct {
		side          store.Side
		local, remote []feed.Edge
	}{{store.Following, local.Following, remote.Following}, {store.Followers, local.Followers, remote.Followers}} {
		h, t := diffEdges(side.local, side.remote)
		for _, e := range h {
			here = append(here, Record{Edge: &e, Side: side.side})
		}
		for _, e := range t {
			there = append(there, Record{Edge: &e, Side: side.side})
		}
	}
	switch {
	case !withUser:
	case local.User == nil && remote.User != nil:
		here = append(here, Record{User: remote.User})
	case local.User != nil && remote.User == nil:
		there = append(there, Record{User: local.User})
	case local.User != nil && remote.User != nil:
		// Both keep the merge (feed.Join): the winner when the name was
		// created on both sides of a partition (the loser's token stops
		// working), else the union of the two token sets (a revocation
		// seen on either side holds on both).
		u := feed.Join(*local.User, *remote.User)
		if !feed.Same(u, *local.User) {
			here = append(here, Record{User: &u})
		}
		if !feed.Same(u, *remote.User) {
			there = append(there, Record{User: &u})
		}
	}
	for _, rec := range here {
		if err := s.Apply(rec); err != nil {
			return 0, fmt.Errorf("repairing %s here from %s: %w", name, m, err)
		}
	}
	sent := 0
	for sent < len(there) {
		n := min(len(there)-sent, maxReplicateRecords)
		if err := s.c.Call(ctx, http.MethodPost, m, "/internal/v1/replicate", replicateRequest{Records: there[sent : sent+n]}, nil); err != nil {
			return len(here) + sent, fmt.Errorf("repairing %s on %s: %w", name, m, err)
		}
		sent += n
	}
	if len(here)+sent > 0 {
		s.log.Info("repaired", "op", "repair", "user", name, "peer", m, "copied_here", len(here), "copied_there", sent)
	}
	return len(here) + sent, nil
}

// missingPosts returns the posts of page a that page b (the same query
// on another member) lacks. b's page covers every id from its oldest
// post up, or everything when it is not full (no more), so a post of a
// outside that range may simply be past b's page, not missing.
func missingPosts(a, b Records) []Record {
	in := make(map[feed.ID]bool, len(b.Posts))
	for _, p := range b.Posts {
		in[p.ID] = true
	}
	var oldest feed.ID
	if b.More && len(b.Posts) > 0 {
		oldest = b.Posts[len(b.Posts)-1].ID
	}
	var out []Record
	for _, p := range a.Posts {
		if !in[p.ID] && p.ID.Compare(oldest) > 0 {
			out = append(out, Record{Post: &p})
		}
	}
	return out
}

// diffEdges returns the edges to store locally and remotely so that
// both sides end with the merge of the two.
func diffEdges(local, remote []feed.Edge) (here, there []feed.Edge) {
	type pair struct{ a, b string }
	rm := make(map[pair]feed.Edge, len(remote))
	for _, e := range remote {
		rm[pair{e.Follower, e.Followee}] = e
	}
	seen := make(map[pair]bool, len(local))
	for _, l := range local {
		k := pair{l.Follower, l.Followee}
		seen[k] = true
		r, ok := rm[k]
		if !ok {
			there = append(there, l)
			continue
		}
		m := feed.Merge(l, r)
		if m != l {
			here = append(here, m)
		}
		if m != r {
			there = append(there, m)
		}
	}
	for k, r := range rm {
		if !seen[k] {
			here = append(here, r)
		}
	}
	return here, there
}
