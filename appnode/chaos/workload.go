package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/ringfront/ringfront/appnode/api"
	"github.com/ringfront/ringfront/appnode/chaos/history"
	"github.com/ringfront/ringfront/appnode/client"
	"github.com/ringfront/ringfront/appnode/feed"
)

// ClientTimeout is how long a client waits for an operation, as in
// issue 13: past it the outcome is unknown.
const ClientTimeout = 3 * time.Second

// opWeights is the operation mix after setup, as relative weights: a
// write-heavy feed, so that faults meet many writes.
var opWeights = []struct {
	kind   history.Kind
	weight int
}{
	{history.Post, 30}, {history.ReadPosts, 12}, {history.ReadTimeline, 14}, {history.Follow, 12}, {history.Unfollow, 8}, {history.ReadFollowing, 12}, {history.ReadFollowers, 12},
}

// generator draws one worker's operations from the seed: the same seed
// and worker give the same sequence of kinds, users and members.
type generator struct {
	rnd     *rand.Rand
	users   []string
	members []string
	client  history.ClientKind
	worker  int
	tag     string // makes post texts unique to the run
	seq     int
}

func newGenerator(seed uint64, client history.ClientKind, worker int, users, members []string, tag string) *generator {
	return &generator{rnd: rand.New(rand.NewPCG(seed, uint64(worker)+1)), users: users, members: members,
		client: client, worker: worker, tag: tag}
}

// next returns the worker's next operation, not yet made.
func (g *generator) next() history.Op {
	total := 0
	for _, w := range opWeights {
		total += w.weight
	}
	n := g.rnd.IntN(total)
	var kind history.Kind
	for _, w := range opWeights {
		if n < w.weight {
			kind = w.kind
			break
		}
		n -= w.weight
	}
	g.seq++
	o := history.Op{Client: g.client, Worker: g.worker, Kind: kind, User: g.users[g.rnd.IntN(len(g.users))]}
	switch kind {
	case history.Follow, history.Unfollow:
		o.Other = g.users[g.rnd.IntN(len(g.users)-1)]
		if o.Other == o.User {
			o.Other = g.users[len(g.users)-1]
		}
	case history.Post:
		o.Text = fmt.Sprintf("%s %s%d #%d", g.tag, g.client, g.worker, g.seq)
	}
	if g.client == history.Plain {
		o.Member = g.members[g.rnd.IntN(len(g.members))]
	}
	return o
}

// requester makes an operation and fills in its outcome.
type requester interface {
	do(ctx context.Context, o *history.Op)
}

// plainClient sends each request to the member the operation names and
// never retries. It makes every kind but CreateUser.
type plainClient struct {
	http   *http.Client
	tokens map[string]string // by user; read-only once the load starts
}

func (c *plainClient) do(ctx context.Context, o *history.Op) {
	method, path, body := http.MethodGet, "/v1/users/"+o.User, any(nil)
	token := ""
	switch o.Kind {
	case history.Post:
		method, path, body, token = http.MethodPost, path+"/posts", api.PostRequest{Text: o.Text}, c.tokens[o.User]
	case history.ReadPosts:
		path += "/posts"
	case history.Follow:
		method, path, token = http.MethodPut, path+"/following/"+o.Other, c.tokens[o.User]
	case history.Unfollow:
		method, path, token = http.MethodDelete, path+"/following/"+o.Other, c.tokens[o.User]
	case history.ReadFollowing:
		path += "/following"
	case history.ReadFollowers:
		path += "/followers"
	case history.ReadTimeline:
		path, token = path+"/timeline", c.tokens[o.User]
	}
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	o.Start = time.Now()
	defer func() { o.End = time.Now() }()
	req, err := http.NewRequestWithContext(ctx, method, "http://"+o.Member+path, rd)
	if err != nil {
		o.Outcome, o.Err = history.Failed, err.Error()
		return
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		o.Outcome, o.Err = history.Unknown, err.Error()
		if neverSent(err) {
			o.Outcome = history.Failed
		}
		return
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		// The member answered, but the answer broke off: a 2xx may
		// have been a success.
		o.Outcome, o.Err = history.Unknown, fmt.Sprintf("%d, then reading the answer: %v", resp.StatusCode, err)
		return
	}
	if resp.StatusCode/100 != 2 {
		var e api.Error
		json.Unmarshal(b, &e)
		o.Outcome, o.Status, o.Err = history.Failed, resp.StatusCode, fmt.Sprintf("%d %s", resp.StatusCode, e.Error)
		return
	}
	o.Outcome = history.OK
	if o.Kind == history.Post {
		var p feed.Post
		if err := json.Unmarshal(b, &p); err == nil {
			o.PostID, o.PostCreated = p.ID.String(), p.Created
		}
	}
}

// smartClient makes operations with appnode/client. CreateUser stores
// the token, so it must not run concurrently with other operations.
type smartClient struct {
	c      *client.Client
	tokens map[string]string // by user; read-only once the load starts
}

func (c *smartClient) do(ctx context.Context, o *history.Op) {
	tok := c.tokens[o.User]
	o.Start = time.Now()
	var err error
	switch o.Kind {
	case history.CreateUser:
		var a api.CreateUserAnswer
		if a, err = c.c.CreateUser(ctx, o.User); err == nil {
			c.tokens[o.User] = a.Token
		}
	case history.Post:
		var p feed.Post
		if p, err = c.c.Post(ctx, o.User, tok, o.Text); err == nil {
			o.PostID, o.PostCreated = p.ID.String(), p.Created
		}
	case history.ReadPosts:
		_, err = c.c.Posts(ctx, o.User, client.Page{})
	case history.Follow:
		err = c.c.Follow(ctx, o.User, tok, o.Other)
	case history.Unfollow:
		err = c.c.Unfollow(ctx, o.User, tok, o.Other)
	case history.ReadFollowing:
		_, err = c.c.Following(ctx, o.User)
	case history.ReadFollowers:
		_, err = c.c.Followers(ctx, o.User)
	case history.ReadTimeline:
		_, err = c.c.Timeline(ctx, o.User, tok, client.Page{})
	}
	o.End = time.Now()
	var ce *client.Error
	switch {
	case err == nil:
		o.Outcome = history.OK
	case errors.As(err, &ce):
		// The last member tried answered; an earlier one that did not
		// answer may still have applied it (a 5xx is never definite).
		o.Outcome, o.Status, o.Err = history.Failed, ce.Status, err.Error()
	case neverSent(err):
		o.Outcome, o.Err = history.Failed, err.Error()
	default:
		o.Outcome, o.Err = history.Unknown, err.Error()
	}
}

// neverSent reports whether err proves that no request reached a
// member: every network error in it is a failed connect (refused,
// unreachable, no answer to the SYN). A timeout or a broken connection
// after the request went out is not.
func neverSent(err error) bool {
	dials, others := 0, 0
	var walk func(error)
	walk = func(e error) {
		if op, ok := e.(*net.OpError); ok {
			if op.Op == "dial" {
				dials++
			} else {
				others++
			}
			return
		}
		switch u := e.(type) {
		case interface{ Unwrap() []error }:
			for _, c := range u.Unwrap() {
				walk(c)
			}
		case interface{ Unwrap() error }:
			if c := u.Unwrap(); c != nil {
				walk(c)
				return
			}
			others++
		default:
			if e != client.ErrUnavailable { // the sentinel over the attempts
				others++
			}
		}
	}
	walk(err)
	return dials > 0 && others == 0
}

// gate lets the load be paused while the checker reads: workers hold it
// shared for each operation, Pause takes it whole (waiting for the
// operations under way).
type gate struct{ mu sync.RWMutex }

func (g *gate) Pause()  { g.mu.Lock() }
func (g *gate) Resume() { g.mu.Unlock() }

// worker makes operations until ctx is done, one every interval at
// most, and records each.
func worker(ctx context.Context, gen *generator, r requester, h *history.History, g *gate, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		o := gen.next()
		g.mu.RLock()
		if ctx.Err() != nil {
			g.mu.RUnlock()
			return
		}
		octx, cancel := context.WithTimeout(ctx, ClientTimeout)
		r.do(octx, &o)
		cancel()
		g.mu.RUnlock()
		// Recorded even when the end of the run cut it short: a post
		// without an answer may still be stored.
		h.Add(o)
	}
}
