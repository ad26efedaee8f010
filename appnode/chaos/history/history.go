package history

import (
	"cmp"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"sync"
	"time"
)

// Kind is what an operation does.
type Kind string

// The operations a client makes.
const (
	CreateUser    Kind = "create"    // POST /v1/users
	Post          Kind = "post"      // POST /v1/users/U/posts
	ReadPosts     Kind = "posts"     // GET /v1/users/U/posts
	Follow        Kind = "follow"    // PUT /v1/users/U/following/O
	Unfollow      Kind = "unfollow"  // DELETE /v1/users/U/following/O
	ReadFollowing Kind = "following" // GET /v1/users/U/following
	ReadFollowers Kind = "followers" // GET /v1/users/U/followers
	ReadTimeline  Kind = "timeline"  // GET /v1/users/U/timeline
)

// Outcome is what a client learnt of an operation.
type Outcome string

// Outcomes.
const (
	// OK: a 2xx answer.
	OK Outcome = "ok"
	// Failed: a definite error answer (an HTTP error status), or a
	// request that provably never left the client (the connection was
	// never made).
	Failed Outcome = "failed"
	// Unknown: no answer (the 3 s timeout, a connection broken after the
	// request was sent): the operation may or may not have taken effect.
	Unknown Outcome = "unknown"
)

// ClientKind says how a client picks the member it asks.
type ClientKind string

// Client kinds.
const (
	// Plain clients send each request to a member picked at random and
	// never retry.
	Plain ClientKind = "plain"
	// Smart clients use appnode/client: the ring, the user's owner
	// first, the next member of the preference list when one fails.
	Smart ClientKind = "smart"
)

// Op is one operation as a client saw it.
type Op struct {
	Client ClientKind `json:"client"`
	Worker int        `json:"worker"`
	Kind   Kind       `json:"kind"`
	User   string     `json:"user"`
	Other  string     `json:"other,omitempty"` // the followee of a follow or unfollow
	Text   string     `json:"text,omitempty"`  // a post's text (unique in a run)
	// Member is the member a plain client asked; empty for a smart
	// client, which picks its own.
	Member  string    `json:"member,omitempty"`
	Start   time.Time `json:"start"`
	End     time.Time `json:"end"`
	Outcome Outcome   `json:"outcome"`
	// Status is the HTTP status of an error answer; 0 when there was
	// none.
	Status int    `json:"status,omitempty"`
	Err    string `json:"err,omitempty"`
	// PostID and PostCreated are an acknowledged post's id and time, as
	// the member answered.
	PostID      string    `json:"post_id,omitempty"`
	PostCreated time.Time `json:"post_created,omitzero"`
	// Setup marks the operations made before the first fault window
	// (creating the users and their first follows).
	Setup bool `json:"setup,omitempty"`
}

// Latency is how long the client waited.
func (o Op) Latency() time.Duration { return o.End.Sub(o.Start) }

// mayHaveApplied reports whether a write that was not acknowledged can
// still have taken effect: no answer, or a server error after which the
// member may have stored it (a 5xx from a forward, a replica that did
// not answer). A 4xx and a connection never made are definite.
func (o Op) mayHaveApplied() bool {
	return o.Outcome == Unknown || o.Outcome == Failed && o.Status >= 500
}

func (o Op) String() string {
	s := fmt.Sprintf("%s %s %s", o.Client, o.Kind, o.User)
	if o.Other != "" {
		s += "→" + o.Other
	}
	if o.Member != "" {
		s += " via " + o.Member
	}
	s += fmt.Sprintf(" at %s: %s", o.Start.Format("15:04:05.000"), o.Outcome)
	if o.Err != "" {
		s += " (" + o.Err + ")"
	}
	return s
}

// History records operations. It is safe for concurrent use.
type History struct {
	mu  sync.Mutex // guards ops
	ops []Op
}

// Add records an operation.
func (h *History) Add(o Op) {
	h.mu.Lock()
	h.ops = append(h.ops, o)
	h.mu.Unlock()
}

// Ops returns a copy of the operations sorted by start time.
func (h *History) Ops() []Op {
	h.mu.Lock()
	ops := slices.Clone(h.ops)
	h.mu.Unlock()
	slices.SortStableFunc(ops, func(a, b Op) int { return a.Start.Compare(b.Start) })
	return ops
}

// WriteFile saves the operations as JSON, one per line.
func (h *History) WriteFile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("saving the history: %w", err)
	}
	enc := json.NewEncoder(f)
	for _, o := range h.Ops() {
		if err := enc.Encode(o); err != nil {
			f.Close()
			return fmt.Errorf("saving the history to %s: %w", path, err)
		}
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("saving the history to %s: %w", path, err)
	}
	return nil
}

// pairKey names the follow edge follower→followee.
type pairKey struct{ Follower, Followee string }

func (p pairKey) String() string { return p.Follower + "→" + p.Followee }

// edgeOps groups the follow and unfollow operations by edge, each
// group sorted by start time.
func edgeOps(ops []Op) map[pairKey][]Op {
	out := map[pairKey][]Op{}
	for _, o := range ops {
		if o.Kind == Follow || o.Kind == Unfollow {
			k := pairKey{o.User, o.Other}
			out[k] = append(out[k], o)
		}
	}
	for _, g := range out {
		slices.SortStableFunc(g, func(a, b Op) int { return cmp.Compare(a.Start.UnixNano(), b.Start.UnixNano()) })
	}
	return out
}
