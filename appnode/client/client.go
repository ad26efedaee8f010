package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ringfront/ringfront/appnode/api"
	"github.com/ringfront/ringfront/appnode/feed"
	"github.com/ringfront/ringfront/appnode/ring"
)

// Sentinel errors; an *Error matches the one for its status with
// errors.Is.
var (
	ErrBadRequest   = errors.New("bad request")
	ErrUnauthorized = errors.New("missing token")
	ErrForbidden    = errors.New("wrong token")
	ErrNotFound     = errors.New("not found")
	ErrConflict     = errors.New("already exists")
	// ErrUnavailable means no member of a key's preference list answered.
	ErrUnavailable = errors.New("no member answered")
)

// Error is an error answer from a member.
type Error struct {
	Status  int    // HTTP status
	Message string // the member's {"error": ...}
	Member  string // who answered
}

// Error says what the member answered.
func (e *Error) Error() string {
	return fmt.Sprintf("%s (%d from %s)", e.Message, e.Status, e.Member)
}

// Is matches the sentinel for the status.
func (e *Error) Is(target error) bool {
	switch e.Status {
	case http.StatusBadRequest:
		return target == ErrBadRequest
	case http.StatusUnauthorized:
		return target == ErrUnauthorized
	case http.StatusForbidden:
		return target == ErrForbidden
	case http.StatusNotFound:
		return target == ErrNotFound
	case http.StatusConflict:
		return target == ErrConflict
	}
	return false
}

// Options configure a Client.
type Options struct {
	// HTTP is the client to use; nil means one with keep-alive
	// connections to every member.
	HTTP *http.Client
	// AttemptTimeout bounds each request to one member; when it passes
	// without an answer the request goes to the next member of the
	// user's preference list (requests are made safe to send twice: see
	// Post and CreateUser). 0 means DefaultAttemptTimeout.
	AttemptTimeout time.Duration
	// TLS is the TLS configuration of https members (its RootCAs: the
	// CAs trusted; nil: the system's). It is used only when HTTP is
	// nil.
	TLS *tls.Config
	// CAFile, when set, is a PEM file of the CAs to trust instead of
	// the system's (added to a copy of TLS). Setting TLS or CAFile
	// makes seeds without a scheme https.
	CAFile string
}

// DefaultAttemptTimeout is Options.AttemptTimeout's default: a member
// answers within a few ms, and within about half a second even when it
// must itself pass over a member that does not answer (it waits three
// of its member timeouts, 150 ms each by default, for a write).
const DefaultAttemptTimeout = 750 * time.Millisecond

// A member that did not answer is asked last for suspectMin, twice as
// long each time it fails again (a partition lasts), up to suspectMax;
// an answer clears it.
const (
	suspectMin = time.Second
	suspectMax = 16 * time.Second
)

// suspicion is a member's standing after failures.
type suspicion struct {
	until time.Time
	wait  time.Duration
}

// Client talks to an appnode cluster. It is safe for concurrent use.
type Client struct {
	seeds   []string // host:port of members to fetch the ring from
	scheme  string   // http or https, for every member
	http    *http.Client
	attempt time.Duration
	ring    atomic.Pointer[ring.Ring]
	stale   atomic.Bool // a member answered with another ring version
	ids     *feed.IDSource

	refresh sync.Mutex // one ring fetch at a time

	mu      sync.Mutex // guards suspect
	suspect map[string]suspicion

	// clock is a hybrid logical clock past the latest cluster clock a
	// member answered with (api.HeaderClock). Its latest value is sent
	// with every request, so a change this client makes after another
	// gets a later clock on any member; follows and unfollows are
	// pinned to a new reading of it (api.HeaderEdgeClock).
	clock *feed.Clock
}

// New returns a client that learns the ring from the given members
// ("host:port", "http://host:port" or "https://host:port"; every seed
// with a scheme has the same one, and the members are asked over it).
// It makes no request yet.
func New(seeds []string, opts Options) (*Client, error) {
	if len(seeds) == 0 {
		return nil, errors.New("creating client: no seed members")
	}
	c := &Client{attempt: opts.AttemptTimeout, suspect: map[string]suspicion{}, clock: feed.NewClock(nil)}
	if c.attempt <= 0 {
		c.attempt = DefaultAttemptTimeout
	}
	// Post ids are made here, so a post sent again to another member
	// is the same post: a random tag keeps them apart from every other
	// client's and member's.
	var tag [8]byte
	rand.Read(tag[:])
	c.ids = feed.NewIDSource(feed.NewClock(nil), "client-"+hex.EncodeToString(tag[:]))
	for _, s := range seeds {
		if strings.Contains(s, "://") {
			u, err := url.Parse(s)
			if err != nil || u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
				return nil, fmt.Errorf("creating client: seed %q is not http://host:port or https://host:port", s)
			}
			if c.scheme != "" && c.scheme != u.Scheme {
				return nil, fmt.Errorf("creating client: seed %q is %s, another is %s: the members speak one or the other", s, u.Scheme, c.scheme)
			}
			c.scheme, s = u.Scheme, u.Host
		}
		c.seeds = append(c.seeds, s)
	}
	tlsConfig, err := TLSConfig(opts.TLS, opts.CAFile)
	if err != nil {
		return nil, err
	}
	if c.scheme == "" {
		c.scheme = "http"
		if tlsConfig != nil {
			c.scheme = "https"
		}
	}
	hc := opts.HTTP
	if hc == nil {
		hc = &http.Client{
			Transport: &http.Transport{MaxIdleConnsPerHost: 64, IdleConnTimeout: 90 * time.Second,
				TLSClientConfig: tlsConfig, ForceAttemptHTTP2: true},
		}
	}
	// A copy, so CheckRedirect does not change the caller's client.
	cp := *hc
	cp.CheckRedirect = c.checkRedirect
	c.http = &cp
	return c, nil
}

// Scheme is how the members are asked: http or https.
func (c *Client) Scheme() string { return c.scheme }

// checkRedirect follows a member's 307 to another member with the
// token: Go drops Authorization on a redirect to another host:port, but
// every member of the ring is one service.
func (c *Client) checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= 3 {
		return errors.New("stopped after 3 redirects")
	}
	if r := c.ring.Load(); r != nil && r.Has(req.URL.Host) {
		if auth := via[0].Header.Get("Authorization"); auth != "" {
			req.Header.Set("Authorization", auth)
		}
	}
	return nil
}

// Ring returns the client's ring, fetching it first if the client has
// none or a member reported another version. When the refetch fails the
// old ring is still used: it is right about most keys, and members
// route the rest.
func (c *Client) Ring(ctx context.Context) (*ring.Ring, error) {
	old := c.ring.Load()
	if old != nil && !c.stale.Load() {
		return old, nil
	}
	r, err := c.Refresh(ctx)
	if err != nil && old != nil {
		return old, nil
	}
	return r, err
}

// Refresh fetches the ring from the seeds (then from the members of the
// current ring) until one answers.
func (c *Client) Refresh(ctx context.Context) (*ring.Ring, error) {
	c.refresh.Lock()
	defer c.refresh.Unlock()
	if r := c.ring.Load(); r != nil && !c.stale.Load() {
		return r, nil // another goroutine just fetched it
	}
	candidates := c.seeds
	if r := c.ring.Load(); r != nil {
		candidates = slices.Concat(r.Members(), c.seeds)
	}
	var errs []error
	for _, m := range candidates {
		var info api.RingAnswer
		actx, cancel := context.WithTimeout(ctx, c.attempt)
		_, err := c.send(actx, m, http.MethodGet, "/v1/ring", "", nil, &info)
		cancel()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		r, err := ring.FromInfo(info.Info)
		if err != nil {
			return nil, fmt.Errorf("ring from %s: %w", m, err)
		}
		c.ring.Store(r)
		c.stale.Store(false)
		return r, nil
	}
	return nil, fmt.Errorf("fetching the ring: %w", errors.Join(errs...))
}

// Lookup returns the preference list of a user, owner first.
func (c *Client) Lookup(ctx context.Context, name string) ([]string, error) {
	r, err := c.Ring(ctx)
	if err != nil {
		return nil, err
	}
	return r.Preference(nil, name), nil
}

// transportError is a request that got no HTTP answer.
type transportError struct{ err error }

func (e transportError) Error() string { return e.err.Error() }
func (e transportError) Unwrap() error { return e.err }

// send makes one request to member and decodes a 2xx JSON answer into
// out. It returns the member's ring version.
func (c *Client) send(ctx context.Context, member, method, uri, token string, body, out any, hs ...header) (string, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return "", fmt.Errorf("encoding request: %w", err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.scheme+"://"+member+uri, rd)
	if err != nil {
		return "", fmt.Errorf("building request: %w", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if cl := c.clock.Last(); cl != 0 {
		req.Header.Set(api.HeaderClock, strconv.FormatUint(uint64(cl), 10))
	}
	for _, h := range hs {
		req.Header.Set(h.key, h.value)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return "", transportError{fmt.Errorf("%s %s on %s: %w", method, uri, member, err)}
	}
	defer resp.Body.Close()
	c.noteClock(resp.Header.Get(api.HeaderClock))
	version := resp.Header.Get(api.HeaderRingVersion)
	if resp.StatusCode/100 != 2 {
		var e api.Error
		json.NewDecoder(io.LimitReader(resp.Body, 1<<16)).Decode(&e)
		if e.Error == "" {
			e.Error = resp.Status
		}
		return version, &Error{Status: resp.StatusCode, Message: e.Error, Member: member}
	}
	if out == nil {
		io.Copy(io.Discard, resp.Body)
		return version, nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return version, fmt.Errorf("decoding answer from %s: %w", member, err)
	}
	return version, nil
}

// do sends a request about user name to its owner, going on to the
// rest of the preference list when a member does not answer within the
// attempt timeout (or cannot be reached), or answers that it cannot
// serve the request now (502, 503, 504). Other error answers are final:
// the member is up and has spoken. Members that did not answer a moment
// ago are asked last. Every request do sends is safe to send twice.
func (c *Client) do(ctx context.Context, name, method, uri, token string, body, out any, hs ...header) error {
	r, err := c.Ring(ctx)
	if err != nil {
		return err
	}
	var buf [8]string
	var errs []error
	for _, m := range c.order(r.Preference(buf[:0], name)) {
		actx, cancel := context.WithTimeout(ctx, c.attempt)
		version, err := c.send(actx, m, method, uri, token, body, out, hs...)
		cancel()
		if version != "" && version != r.Version() {
			c.stale.Store(true)
		}
		var te transportError
		var e *Error
		switch {
		case err == nil:
			c.answered(m)
			return nil
		case ctx.Err() != nil:
			return err
		case errors.As(err, &te):
			c.failed(m)
		case errors.As(err, &e) && (e.Status == http.StatusBadGateway || e.Status == http.StatusServiceUnavailable || e.Status == http.StatusGatewayTimeout):
		default:
			return err
		}
		errs = append(errs, err)
	}
	return fmt.Errorf("%w for %s: %w", ErrUnavailable, name, errors.Join(errs...))
}

// noteClock moves the client's clock past a cluster clock seen.
func (c *Client) noteClock(v string) {
	if n, err := strconv.ParseUint(v, 10, 64); err == nil {
		c.clock.Observe(feed.Timestamp(n))
	}
}

// header is one more header for a request.
type header struct{ key, value string }

// order puts the members that did not answer a moment ago last.
func (c *Client) order(pref []string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	var ok, suspect []string
	for _, m := range pref {
		if s, bad := c.suspect[m]; bad && now.Before(s.until) {
			suspect = append(suspect, m)
		} else {
			ok = append(ok, m)
		}
	}
	return append(ok, suspect...)
}

func (c *Client) failed(m string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.suspect[m]
	s.wait = min(max(2*s.wait, suspectMin), suspectMax)
	s.until = time.Now().Add(s.wait)
	c.suspect[m] = s
}

func (c *Client) answered(m string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.suspect, m)
}

// NewPostID returns a new post id for PostRequest.ID, unique to this
// client.
func (c *Client) NewPostID() string { return c.ids.Next().String() }

// NewToken returns a new user token for CreateUserRequest.Token: 32
// random bytes.
func (c *Client) NewToken() string {
	var raw [32]byte
	rand.Read(raw[:])
	return base64.RawURLEncoding.EncodeToString(raw[:])
}

// CreateUser creates a user and returns its token, which is shown only
// this once. The token is drawn here (32 random bytes), so that the
// request can go to another member when one does not answer: both
// store the same user.
func (c *Client) CreateUser(ctx context.Context, name string) (api.CreateUserAnswer, error) {
	var ans api.CreateUserAnswer
	if err := feed.ValidName(name); err != nil {
		return ans, err
	}
	req := api.CreateUserRequest{Name: name, Token: c.NewToken()}
	err := c.do(ctx, name, http.MethodPost, "/v1/users", "", req, &ans)
	return ans, err
}

// User returns a user's public record.
func (c *Client) User(ctx context.Context, name string) (api.UserAnswer, error) {
	var ans api.UserAnswer
	if err := feed.ValidName(name); err != nil {
		return ans, err
	}
	err := c.do(ctx, name, http.MethodGet, "/v1/users/"+name, "", nil, &ans)
	return ans, err
}

// Post posts text as user name, with name's token. The post's id is
// made here, so that the post can go to another member when one does
// not answer: a post stored by both is one post.
func (c *Client) Post(ctx context.Context, name, token, text string) (feed.Post, error) {
	var p feed.Post
	if err := feed.ValidName(name); err != nil {
		return p, err
	}
	req := api.PostRequest{Text: text, ID: c.NewPostID()}
	err := c.do(ctx, name, http.MethodPost, "/v1/users/"+name+"/posts", token, req, &p)
	return p, err
}

// Page says which page of posts to read: at most Limit (0 means the
// server's default) older than Before (empty means the newest).
type Page struct {
	Limit  int
	Before string
}

func (p Page) query() string {
	q := url.Values{}
	if p.Limit > 0 {
		q.Set("limit", strconv.Itoa(p.Limit))
	}
	if p.Before != "" {
		q.Set("before", p.Before)
	}
	if len(q) == 0 {
		return ""
	}
	return "?" + q.Encode()
}

// Posts reads a page of name's posts, newest first. The answer's Next
// is the Before of the following page, empty on the last.
func (c *Client) Posts(ctx context.Context, name string, page Page) (api.PostsAnswer, error) {
	var ans api.PostsAnswer
	if err := feed.ValidName(name); err != nil {
		return ans, err
	}
	err := c.do(ctx, name, http.MethodGet, "/v1/users/"+name+"/posts"+page.query(), "", nil, &ans)
	return ans, err
}

// Timeline reads a page of name's home timeline (the posts of everyone
// name follows, and name's own), with name's token.
func (c *Client) Timeline(ctx context.Context, name, token string, page Page) (api.PostsAnswer, error) {
	var ans api.PostsAnswer
	if err := feed.ValidName(name); err != nil {
		return ans, err
	}
	err := c.do(ctx, name, http.MethodGet, "/v1/users/"+name+"/timeline"+page.query(), token, nil, &ans)
	return ans, err
}

// Follow makes name follow other.
func (c *Client) Follow(ctx context.Context, name, token, other string) error {
	return c.edge(ctx, http.MethodPut, name, token, other)
}

// Unfollow makes name stop following other.
func (c *Client) Unfollow(ctx context.Context, name, token, other string) error {
	return c.edge(ctx, http.MethodDelete, name, token, other)
}

func (c *Client) edge(ctx context.Context, method, name, token, other string) error {
	if err := feed.ValidName(name); err != nil {
		return err
	}
	if err := feed.ValidName(other); err != nil {
		return err
	}
	// The change is pinned to a clock later than every one this client
	// has seen, the same on every member it tries: a copy that a member
	// reads late (it was paused while this client went on to another)
	// stores the same edge and never undoes a later change. A 409 says a
	// later change is stored, made elsewhere with a clock ahead of this
	// client's; this change is being made now, so it is pinned again,
	// past the answer's clock, once.
	uri := "/v1/users/" + name + "/following/" + other
	for try := 0; ; try++ {
		pin := header{api.HeaderEdgeClock, strconv.FormatUint(uint64(c.clock.Now()), 10)}
		err := c.do(ctx, name, method, uri, token, nil, nil, pin)
		var e *Error
		if try == 0 && errors.As(err, &e) && e.Status == http.StatusConflict {
			continue
		}
		return err
	}
}

// Following lists whom name follows.
func (c *Client) Following(ctx context.Context, name string) ([]string, error) {
	var ans api.FollowingAnswer
	if err := feed.ValidName(name); err != nil {
		return nil, err
	}
	err := c.do(ctx, name, http.MethodGet, "/v1/users/"+name+"/following", "", nil, &ans)
	return ans.Following, err
}

// Followers lists who follows name.
func (c *Client) Followers(ctx context.Context, name string) ([]string, error) {
	var ans api.FollowersAnswer
	if err := feed.ValidName(name); err != nil {
		return nil, err
	}
	err := c.do(ctx, name, http.MethodGet, "/v1/users/"+name+"/followers", "", nil, &ans)
	return ans.Followers, err
}

// TLSConfig is base (nil: the defaults) trusting the CAs in caFile
// instead of the system's; nil when both are unset.
func TLSConfig(base *tls.Config, caFile string) (*tls.Config, error) {
	if caFile == "" {
		return base, nil
	}
	pool, err := LoadCA(caFile)
	if err != nil {
		return nil, err
	}
	cfg := &tls.Config{}
	if base != nil {
		cfg = base.Clone()
	}
	cfg.RootCAs = pool
	return cfg, nil
}

// LoadCA reads a PEM file of CA certificates into a pool.
func LoadCA(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("CA file %s holds no PEM certificate", path)
	}
	return pool, nil
}
