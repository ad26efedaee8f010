package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ringfront/ringfront/appnode/feed"
	"github.com/ringfront/ringfront/appnode/ring"
	"github.com/ringfront/ringfront/appnode/store"
	"github.com/ringfront/ringfront/internal/daemon"
)

// Routing says what a member does with a request for a user it does not
// own.
type Routing string

const (
	// Forward proxies the request to the owner (the default).
	Forward Routing = "forward"
	// Redirect answers 307 with the owner's URL.
	Redirect Routing = "redirect"
)

// Options configure a Server.
type Options struct {
	// Self is this member's advertised address; it must be in Ring.
	Self string
	// Ring is the initial ring.
	Ring *ring.Ring
	// Routing is Forward (default) or Redirect.
	Routing Routing
	// Store is this member's database.
	Store *store.Store
	// Secret is the cluster secret for node-to-node calls.
	Secret []byte
	// Log is the logger; nil means slog.Default().
	Log *slog.Logger
	// Registry receives the metrics; nil means none are registered.
	Registry prometheus.Registerer
	// Transport carries forwarded and node-to-node requests; nil means
	// a transport tuned for many idle connections to few members.
	Transport http.RoundTripper
	// Now is the wall clock; nil means time.Now.
	Now func() time.Time
	// View is the failure detector (gossip.Detector); nil means Alive's
	// answers, or every member alive when that is nil too. Requests for
	// a user go to the first member of the user's preference list that
	// is not dead and not catching up.
	View View
	// Alive, when View is nil, reports whether a member is up (true:
	// alive, false: dead).
	Alive func(member string) bool
	// WriteAcks is how many durable copies on distinct members (this
	// member's included) a write needs before it is acknowledged; 0
	// means 2, or 1 when the ring has one replica. SetWriteAcks changes
	// it.
	WriteAcks int
	// MemberTimeout is how long to wait for another member before going
	// on to the next; 0 means DefaultMemberTimeout. SetMemberTimeout
	// changes it.
	MemberTimeout time.Duration
	// GossipAddr is this member's gossip address, which it tells the
	// other members when they ask (GET /internal/v1/hello).
	GossipAddr string
	// CatchUp is told whether this member is catching up (see
	// RunCatchUp): the failure detector gossips it, so the others prefer
	// caught-up replicas meanwhile. nil means nobody is told.
	CatchUp func(catchingUp bool)
	// StartCatchingUp makes the member catch up from the start: until
	// RunCatchUp is done it answers for its users only when no caught-up
	// replica can. A member that may have missed writes (every real
	// start) sets it.
	StartCatchingUp bool
	// ReadRepair turns read repair on (see Repair); SetReadRepair
	// changes it.
	ReadRepair bool
	// AntiEntropyInterval is how often RunAntiEntropy compares with the
	// other members; 0 means DefaultAntiEntropyInterval.
	AntiEntropyInterval time.Duration
	// AntiEntropyRate is how many records per second anti-entropy
	// compares and copies; 0 means DefaultAntiEntropyRate.
	AntiEntropyRate int
	// HandoffInterval is how often RunHandoff offers hints to members
	// that are alive again; 0 means DefaultHandoffInterval.
	HandoffInterval time.Duration
	// Links forwards requests to other members over member links (see
	// link.go) instead of one HTTP exchange each; members that do not
	// accept a link, and streams, still get HTTP. A member serves links
	// whatever this says.
	Links bool
}

// Server serves appnode's API. It is safe for concurrent use; SetRing
// and SetRouting may be called while it serves.
type Server struct {
	self    string
	ring    atomic.Pointer[ring.Ring]
	routing atomic.Value // Routing
	store   *store.Store
	secret  []byte
	log     *slog.Logger
	now     func() time.Time
	health  peerHealth
	clock   *feed.Clock
	ids     *feed.IDSource
	peers   *http.Client
	proxy   *httputil.ReverseProxy
	mux     *http.ServeMux
	metrics *metrics

	writeAcks        atomic.Int32
	peerTimeoutFloor atomic.Int64 // a time.Duration: the member timeout's floor
	gossipAddr       string
	catchingUp       atomic.Bool // a catch-up is due or under way
	catchUpHook      func(bool)
	catchUpKick      chan struct{}                 // KickCatchUp → RunCatchUp
	kickMu           sync.Mutex                    // guards kicked
	kicked           []string                      // members to catch up with next
	started          time.Time                     // for awake's monotonic clock
	awake            atomic.Int64                  // time.Since(started) at RunCatchUp's last tick
	hintsIn          atomic.Pointer[chan struct{}] // closed once a catch-up's hints have arrived
	handoffInterval  time.Duration
	readRepair       atomic.Bool
	// antiEntropyInterval is a time.Duration.
	antiEntropyInterval atomic.Int64
	ae                  antiEntropy
	repairSlots         chan struct{}  // one token per running repair
	repairs             sync.WaitGroup // running repairs and replica calls, waited for by Serve
	rebalance           rebalancer
	prevRing            atomic.Pointer[ring.Ring] // the ring before the last change
	fan                 fanout                    // fan-out on write and live streams (fanout.go)
	copies              copiesState               // fan-out copies' delivered notices (fanoutcopies.go)

	links    linkPool
	useLinks atomic.Bool // forward over links (else HTTP only)
	served   linkSet

	srv *http.Server
	ln  net.Listener
}

// New returns a server for opts.
func New(opts Options) (*Server, error) {
	if opts.Ring == nil || !opts.Ring.Has(opts.Self) {
		return nil, fmt.Errorf("creating server: %s is not a member of the ring", opts.Self)
	}
	if opts.Store == nil {
		return nil, errors.New("creating server: no store")
	}
	if len(opts.Secret) == 0 {
		return nil, errors.New("creating server: empty cluster secret")
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.View == nil {
		alive := opts.Alive
		if alive == nil {
			alive = func(string) bool { return true }
		}
		opts.View = aliveView(alive)
	}
	if opts.CatchUp == nil {
		opts.CatchUp = func(bool) {}
	}
	if opts.HandoffInterval == 0 {
		opts.HandoffInterval = DefaultHandoffInterval
	}
	if opts.Transport == nil {
		opts.Transport = NewTransport()
	}
	s := &Server{
		self:   opts.Self,
		store:  opts.Store,
		secret: opts.Secret,
		log:    opts.Log.With("component", "api"),
		now:    opts.Now,
		health: peerHealth{view: opts.View},
		clock:  feed.NewClock(opts.Now),
		peers:  &http.Client{Transport: opts.Transport, Timeout: peerTimeout},

		handoffInterval: opts.HandoffInterval,
		repairSlots:     make(chan struct{}, maxRepairs),
		gossipAddr:      opts.GossipAddr,
		catchUpHook:     opts.CatchUp,
		catchUpKick:     make(chan struct{}, 1),
		started:         time.Now(),
	}
	s.metrics = newMetrics(opts.Registry, opts.Store, s.catchingUp.Load)
	if opts.StartCatchingUp {
		s.setCatchingUp(true)
	}
	s.SetMemberTimeout(opts.MemberTimeout)
	s.initFanout(opts.Registry)
	s.ring.Store(opts.Ring)
	s.SetWriteAcks(opts.WriteAcks)
	s.SetReadRepair(opts.ReadRepair)
	s.initAntiEntropy(opts)
	s.ids = feed.NewIDSource(s.clock, opts.Self)
	s.rebalance.settled = opts.Ring
	s.rebalance.kick = make(chan struct{}, 1)
	if err := s.SetRouting(opts.Routing); err != nil {
		return nil, err
	}
	s.proxy = &httputil.ReverseProxy{
		Rewrite:      s.rewrite,
		BufferPool:   bufferPool{},
		Transport:    opts.Transport,
		ErrorHandler: s.proxyError,
		ModifyResponse: func(resp *http.Response) error {
			// The owner answered in time: from here on the answer may
			// take as long as it takes (a stream).
			if plan, ok := resp.Request.Context().Value(planKey{}).(*forwardPlan); ok && !plan.answered() {
				return errLate
			}
			s.observeClock(resp.Header.Get(HeaderClock))
			// The forwarder already set these for its own answer;
			// copying the owner's too would send each twice.
			resp.Header.Del(HeaderOwner)
			resp.Header.Del(HeaderRingVersion)
			return nil
		},
	}
	s.links.s = s
	s.SetLinks(opts.Links)
	s.routes()
	return s, nil
}

// peerTimeout bounds one node-to-node call; the caller's context may cut
// it shorter.
const peerTimeout = 10 * time.Second

// NewTransport returns the HTTP transport members use among themselves:
// keep-alive connections to every member, enough of them idle that a
// busy forwarder does not redial (a redial costs more than the request).
// (A hand-written HTTP/1.1 transport without net/http's per-connection
// reader and writer goroutines was measured at only about 6% less CPU
// per forward, not worth its risk.)
func NewTransport() *http.Transport {
	return &http.Transport{
		Proxy:                 nil, // members talk directly, never through an HTTP proxy
		DialContext:           (&net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: peerTimeout,
	}
}

// SetRing installs a new ring; requests already routed keep the old one.
// RunRebalance then streams the users whose preference lists changed to
// their new members.
func (s *Server) SetRing(r *ring.Ring) error {
	if !r.Has(s.self) {
		return fmt.Errorf("new ring does not contain this member %s", s.self)
	}
	if old := s.ring.Swap(r); old.Version() != r.Version() {
		s.prevRing.Store(old)
	}
	select {
	case s.rebalance.kick <- struct{}{}: // RunRebalance plans the move
	default: // a plan is already due; it will see this ring
	}
	return nil
}

// Ring returns the current ring.
func (s *Server) Ring() *ring.Ring { return s.ring.Load() }

// SetRouting sets the routing mode; empty means Forward.
func (s *Server) SetRouting(m Routing) error {
	switch m {
	case "":
		m = Forward
	case Forward, Redirect:
	default:
		return fmt.Errorf("routing %q is not forward or redirect", m)
	}
	s.routing.Store(m)
	return nil
}

// SetLinks turns forwarding over member links on or off; turning it off
// closes this member's links once their requests are answered.
func (s *Server) SetLinks(on bool) {
	if !s.useLinks.Swap(on) || on {
		return
	}
	s.links.retireAll()
}

// Routing returns the routing mode.
func (s *Server) Routing() Routing { return s.routing.Load().(Routing) }

// ServeHTTP serves the API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rw := &recorder{ResponseWriter: w, code: http.StatusOK}
	h := w.Header()
	setHeader(h, HeaderRingVersion, s.ring.Load().Version())
	s.observeClock(headerValue(r.Header, HeaderClock))
	setHeader(h, HeaderClock, strconv.FormatUint(uint64(s.clock.Last()), 10))
	s.mux.ServeHTTP(rw, r)
	if r.Pattern == linkRoute {
		return // a link's lifetime is not a request's latency
	}
	route := r.Pattern
	if route == "" || route == "/" {
		route = "unmatched"
	}
	s.metrics.observe(route, rw.code, time.Since(start))
	if rw.code >= 500 {
		s.log.Warn("request failed", "op", route, "code", rw.code, "path", r.URL.Path)
	}
}

// setHeader sets header key, which must be in canonical form (every
// Header* constant is: TestHeaderNamesCanonical), to the single value v
// without Header.Set's check and canonicalization of the key: the
// headers every request answers with cost a fraction of a 307's CPU
// that way.
func setHeader(h http.Header, key, v string) { h[key] = []string{v} }

// headerValue is h.Get(key) for a key in canonical form (see setHeader).
func headerValue(h http.Header, key string) string {
	if v := h[key]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// recorder remembers the status code written.
type recorder struct {
	http.ResponseWriter
	code    int
	written bool
}

func (r *recorder) WriteHeader(code int) {
	if !r.written {
		r.code, r.written = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	r.written = true
	return r.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the real writer.
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// Listen binds addr; Addr reports the bound address.
func (s *Server) Listen(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("api listener on %s: %w", addr, err)
	}
	s.ln = ln
	s.srv = &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	return nil
}

// Addr is the bound address, after Listen.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// shutdownGrace bounds a graceful stop: in-flight requests (at most a
// peer timeout long) get this long to finish.
const shutdownGrace = 10 * time.Second

// Serve serves until ctx is done, then shuts down gracefully within
// shutdownGrace.
func (s *Server) Serve(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- s.srv.Serve(s.ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("api listener: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
	defer cancel()
	// Links drain once the listener is closed, so a peer's redial is
	// refused and it moves on to the next member.
	linksDone := make(chan struct{})
	s.srv.RegisterOnShutdown(func() { s.served.drain(sctx); close(linksDone) })
	err := s.srv.Shutdown(sctx)
	<-linksDone
	s.closeLinks()
	<-errc
	s.repairs.Wait() // each is bounded by peerTimeout

	if err != nil {
		return fmt.Errorf("shutting down api listener: %w", err)
	}
	return nil
}

// bufferPool recycles the buffers that forwarded answers are copied
// through; without it every forward allocates 32 KiB.
type bufferPool struct{}

var buffers = sync.Pool{New: func() any { return make([]byte, 32<<10) }}

func (bufferPool) Get() []byte  { return buffers.Get().([]byte) }
func (bufferPool) Put(b []byte) { buffers.Put(b) }

// target returns the member that answers for user name: the first of
// its candidates, or the owner when there is none (so an error names
// who should have answered).
func (s *Server) target(rg *ring.Ring, name string, skip ...string) string {
	if c, _ := s.candidates(rg, name, skip); len(c) > 0 {
		return c[0]
	}
	return rg.Owner(name)
}

// forwardPlan is what the forwarders need to know about one forward,
// and what they found.
type forwardPlan struct {
	owner    string
	hops     int
	skip     []string
	body     []byte
	fallback bool // ask owner to answer from what it holds (HeaderFallback)
	// timeout bounds the wait for the owner's answer (its headers, for
	// an HTTP forward, so a stream can then run as long as it likes).
	timeout time.Duration
	// client is the client's own request context.
	client context.Context

	// Set by the forwarders: retry when nothing came back from owner
	// (no answer in time, a refused or broken connection), and why. A
	// forward is idempotent (see pin), so the caller sends it to the
	// next member.
	retry bool
	why   string
	slow  bool // no answer in time (as opposed to no connection)

	timer *time.Timer // HTTP forwards: the timeout until the headers
	late  atomic.Bool // the timer fired
}

// answered stops an HTTP forward's timer when the owner's headers
// arrive; false means the timer fired first and the answer is too late.
func (p *forwardPlan) answered() bool {
	return p.timer == nil || p.timer.Stop()
}

// fail records a forward that got nothing from its owner.
func (p *forwardPlan) fail(err error) {
	p.retry = true
	switch {
	case p.late.Load() || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, errLate):
		p.why = fmt.Sprintf("did not answer within %v", p.timeout)
		p.slow = true
	case isRefused(err):
		p.why = "refused the connection (not running)"
	case errors.Is(err, errLinkUnsent):
		p.why = "was shutting down"
	default:
		p.why = "connection failed: " + err.Error()
	}
}

// errLate is ModifyResponse's error for an answer that came after the
// forward's timeout.
var errLate = errors.New("answer after the member timeout")

type planKey struct{}

// skipKey carries, in a request's context, the members to pass over for
// it (see HeaderUnreachable).
type skipKey struct{}

// skipped returns the members to pass over for the request in ctx.
func skipped(ctx context.Context) []string {
	skip, _ := ctx.Value(skipKey{}).([]string)
	return skip
}

// pinner makes a request safe to send to a second member after the
// first did not answer: it fixes, in the body or the headers, what the
// member that serves it would otherwise choose (a post's id, a new
// user's token, an edge's clock), so that two members serving the same
// request store the same record. It returns the body to send.
type pinner func(r *http.Request, body []byte) []byte

// serveRouted serves a request for user name: here with h when this
// member answers for name, else by forwarding (or redirecting) it to
// the member that does: the first of name's candidates (see
// candidates). A member that does not answer within the member timeout,
// or whose connection fails, is passed over for the next candidate: a
// forward is made idempotent first (pin), so a request the first member
// may have served does no harm when a second serves it too. The error
// when no member answers lists each member asked or passed over and
// why.
func (s *Server) serveRouted(w http.ResponseWriter, r *http.Request, name string, h http.HandlerFunc, pin pinner) {
	s.notePause()
	rg := s.ring.Load()
	hops := 0
	var skip []string
	fallback := false
	if s.fromMember(r) {
		hops, _ = strconv.Atoi(r.Header.Get(HeaderHops))
		if v := r.Header.Get(HeaderUnreachable); v != "" {
			skip = strings.Split(v, ",")
		}
		fallback = r.Header.Get(HeaderFallback) != ""
	}
	var body []byte
	buffer := func() bool {
		if body != nil {
			return true
		}
		// Buffered, so the request can go to another member if the
		// first does not answer.
		b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
		if err != nil {
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Errorf("reading request body (at most %d bytes): %w", maxBody, err))
			return false
		}
		if pin != nil {
			b = pin(r, b)
		}
		body = b
		return true
	}
	serveHere := func() {
		if body != nil {
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		ctx := context.WithValue(r.Context(), skipKey{}, skip)
		if s.catchingUp.Load() {
			// No caught-up replica answered: merge with the others
			// first, so this member never answers from a store that
			// has not caught up alone.
			if err := s.catchUpUser(ctx, r, name); err != nil {
				writeError(w, http.StatusServiceUnavailable, err)
				return
			}
		}
		h(w, r.WithContext(ctx))
	}
	if fallback {
		// A new member of the user's preference list sent this here
		// because the user had not reached it yet: answer from here.
		w.Header().Set(HeaderOwner, s.self)
		serveHere()
		return
	}
	cands, passed := s.candidates(rg, name, skip)
	if hops > 0 && slices.Contains(cands, s.self) {
		// Another member chose this one: serve it rather than send it
		// on because the two see the others' state differently.
		cands = []string{s.self}
	}
	tried := triedMembers(passed)
	var slow []string // members that did not answer in time
	for i := 0; i < len(cands)+len(slow); i++ {
		// The member timeout is for going on to another member: once
		// every candidate has been tried, those that were only slow
		// (busy, not gone) get another, longer try, rather than a 503
		// for an answer on its way.
		m, last := "", false
		if i < len(cands) {
			m = cands[i]
		} else {
			m, last = slow[i-len(cands)], true
		}
		setHeader(w.Header(), HeaderOwner, m)
		if m == s.self {
			// Bounded by the previous preference list's length.
			for fskip := skip; hops < maxHops; {
				prev := s.movedFrom(name, fskip)
				if prev == "" || slices.Contains(fskip, prev) {
					break
				}
				if !buffer() {
					return
				}
				plan := &forwardPlan{owner: prev, hops: hops + 1, skip: skip, body: body, fallback: true,
					timeout: s.memberTimeout(prev), client: r.Context()}
				s.metrics.fellBack.Inc()
				s.forward(w, r, plan)
				if !plan.retry {
					return
				}
				s.failed(prev, plan.why)
				fskip = append(slices.Clip(fskip), prev)
			}
			serveHere()
			return
		}
		if hops >= maxHops {
			writeError(w, http.StatusLoopDetected, fmt.Errorf("request for %s was forwarded %d times without reaching its owner (members disagree about the ring?)", name, hops))
			return
		}
		if s.Routing() == Redirect {
			s.metrics.redirected.Inc()
			setHeader(w.Header(), "Location", "http://"+m+requestTarget(r))
			w.WriteHeader(http.StatusTemporaryRedirect)
			return
		}
		if !buffer() {
			return
		}
		timeout := s.forwardTimeout(m, r)
		if last {
			timeout = lastResort(timeout)
		}
		plan := &forwardPlan{owner: m, hops: hops + 1, skip: skip, body: body, timeout: timeout, client: r.Context()}
		s.metrics.forwarded.Inc()
		s.forward(w, r, plan)
		if !plan.retry {
			s.answered(m)
			return
		}
		s.log.Warn("forwarding failed; trying the next member", "op", "forward", "peer", m, "user", name, "err", plan.why)
		s.failed(m, plan.why)
		s.metrics.failovers.Inc()
		tried.add(m, plan.why)
		if plan.slow && !last {
			slow = append(slow, m)
		} else {
			skip = append(slices.Clip(skip), m)
		}
	}
	writeError(w, http.StatusServiceUnavailable, noMember(name, tried))
}

// requestTarget is r's path and query as the client sent them (as
// nginx's $request_uri), for a redirect to another member: rebuilding
// them from r.URL costs more than the rest of a 307.
func requestTarget(r *http.Request) string {
	if strings.HasPrefix(r.RequestURI, "/") {
		return r.RequestURI
	}
	return r.URL.RequestURI() // absolute-form, or a request built in this process
}

// observeClock moves this member's clock past a clock another member or
// a client sent (HeaderClock), unless it is further from this member's
// wall clock than signed requests may be: nobody pushes the clock far
// into the future.
func (s *Server) observeClock(v string) {
	if v == "" {
		return
	}
	c, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return
	}
	if d := feed.Timestamp(c).Time().Sub(s.now()); d > clockSkew || d < -clockSkew {
		return
	}
	s.clock.Observe(feed.Timestamp(c))
}

// forwardTimeout is how long a forward of r to m waits before going on
// to the next member: the member timeout, writeTimeouts of them for a
// write (m may itself wait for a replica).
func (s *Server) forwardTimeout(m string, r *http.Request) time.Duration {
	t := s.memberTimeout(m)
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		t *= writeTimeouts
	}
	return t
}

// movedFrom returns the member that answered for user name under the
// previous ring, when name moved to this member with the last ring
// change and has not arrived here yet; else "". Requests for such a
// user go there until the rebalance has streamed it here, so a moving
// user is never missing (and never created twice).
func (s *Server) movedFrom(name string, skip []string) string {
	prev := s.prevRing.Load()
	if prev == nil || prev.InPreference(name, s.self) {
		return ""
	}
	if ok, err := s.store.HasUser(name); err != nil || ok {
		return ""
	}
	if m := s.target(prev, name, skip...); m != s.self {
		return m
	}
	return ""
}

// forward sends r to plan.owner and copies the answer to w: over a
// member link when there is one, else with the HTTP reverse proxy. It
// sets plan.retry, having written nothing, when the owner did not
// answer in time or could not be reached.
func (s *Server) forward(w http.ResponseWriter, r *http.Request, plan *forwardPlan) {
	if s.useLinks.Load() && !streaming(r) && s.forwardLink(w, r, plan) {
		return
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	plan.timer = time.AfterFunc(plan.timeout, func() { plan.late.Store(true); cancel() })
	defer plan.timer.Stop()
	s.proxy.ServeHTTP(w, r.WithContext(context.WithValue(ctx, planKey{}, plan)))
}

// closeLinks closes this member's links to others and drains the links
// others have to it (Serve does it on shutdown).
func (s *Server) closeLinks() {
	s.links.closeAll()
	ctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	s.served.drain(ctx)
}

// rewrite points a forwarded request at the owner and signs it, so the
// owner believes its hop count and the members it should pass over.
func (s *Server) rewrite(pr *httputil.ProxyRequest) {
	plan := pr.In.Context().Value(planKey{}).(*forwardPlan)
	pr.SetURL(&url.URL{Scheme: "http", Host: plan.owner})
	pr.SetXForwarded()
	body := plan.body
	pr.Out.Body = io.NopCloser(bytes.NewReader(body))
	pr.Out.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	pr.Out.ContentLength = int64(len(body))
	if len(body) == 0 {
		pr.Out.Body, pr.Out.GetBody = http.NoBody, nil
	}
	pr.Out.Header.Set(HeaderHops, strconv.Itoa(plan.hops))
	pr.Out.Header.Del(HeaderUnreachable)
	pr.Out.Header.Del(HeaderFallback)
	if plan.fallback {
		pr.Out.Header.Set(HeaderFallback, "1")
	}
	if len(plan.skip) > 0 {
		pr.Out.Header.Set(HeaderUnreachable, strings.Join(plan.skip, ","))
	}
	pr.Out.Header.Set(HeaderClock, strconv.FormatUint(uint64(s.clock.Last()), 10))
	pr.Out.Header.Set(HeaderCluster, sign(s.secret, s.now(), pr.Out.Method, pr.Out.URL.RequestURI()))
}

// unreachable reports whether err means the request never reached the
// member: the connection could not be made.
func unreachable(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

func (s *Server) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	plan := r.Context().Value(planKey{}).(*forwardPlan)
	s.metrics.forwardErrors.Inc()
	if plan.client.Err() != nil {
		// The client went away; nobody reads this answer.
		w.WriteHeader(499)
		return
	}
	// Nothing came back: the caller tries the next member.
	plan.fail(err)
}

// writeError writes {"error": "..."}.
func writeError(w http.ResponseWriter, code int, err error) { daemon.WriteError(w, code, err) }

// writeJSON writes v compactly; API answers are for programs.
func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeError(w, http.StatusInternalServerError, fmt.Errorf("encoding answer: %w", err))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	w.Write(append(b, '\n'))
}

// maxBody bounds a request body: a post is at most 280 characters of up
// to 4 bytes, wrapped in JSON with escapes.
const maxBody = 16 << 10

// readJSON decodes a request body into v, strictly: unknown fields and
// trailing data are errors. It answers the request itself on failure.
func readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	return readJSONLimit(w, r, v, maxBody)
}

// readJSONLimit is readJSON for bodies of up to limit bytes.
func readJSONLimit(w http.ResponseWriter, r *http.Request, v any, limit int64) bool {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Errorf("request body is larger than %d bytes", limit))
		return false
	case err != nil:
		writeError(w, http.StatusBadRequest, fmt.Errorf("reading request body: %w", err))
		return false
	}
	r.Body = io.NopCloser(bytes.NewReader(body)) // for forwarding
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeError(w, http.StatusBadRequest, fmt.Errorf("request body is not the expected JSON: %w", err))
		return false
	}
	if dec.More() {
		writeError(w, http.StatusBadRequest, errors.New("request body has data after the JSON object"))
		return false
	}
	return true
}
