package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/ringfront/ringfront/appnode/account"
	"github.com/ringfront/ringfront/appnode/antientropy"
	"github.com/ringfront/ringfront/appnode/api"
	"github.com/ringfront/ringfront/appnode/fanout"
	"github.com/ringfront/ringfront/appnode/feed"
	"github.com/ringfront/ringfront/appnode/follow"
	"github.com/ringfront/ringfront/appnode/limits"
	"github.com/ringfront/ringfront/appnode/peer"
	"github.com/ringfront/ringfront/appnode/posts"
	"github.com/ringfront/ringfront/appnode/replica"
	"github.com/ringfront/ringfront/appnode/ring"
	"github.com/ringfront/ringfront/appnode/store"
	"github.com/ringfront/ringfront/appnode/timeline"
	"github.com/ringfront/ringfront/appnode/transport"
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
	// Transport carries the HTTP requests between members (streams, and
	// members that do not offer links); nil means transport.NewHTTP().
	Transport http.RoundTripper
	// Now is the wall clock; nil means time.Now.
	Now func() time.Time
	// View is the failure detector (gossip.Detector); nil means Alive's
	// answers, or every member alive when that is nil too. Requests for
	// a user go to the first member of the user's preference list that
	// is not dead and not catching up.
	View peer.View
	// Alive, when View is nil, reports whether a member is up (true:
	// alive, false: dead).
	Alive func(member string) bool
	// WriteAcks is how many durable copies on distinct members (this
	// member's included) a write needs before it is acknowledged; 0
	// means 2, or 1 when the ring has one replica. SetWriteAcks changes
	// it.
	WriteAcks int
	// MemberTimeout is how long to wait for another member before going
	// on to the next; 0 means peer.DefaultMemberTimeout.
	// SetMemberTimeout changes it.
	MemberTimeout time.Duration
	// GossipAddr is this member's gossip address, which it tells the
	// other members when they ask (GET /internal/v1/hello).
	GossipAddr string
	// CatchUp is told whether this member is catching up (see
	// antientropy's RunCatchUp): the failure detector gossips it, so the
	// others prefer caught-up replicas meanwhile. nil means nobody is
	// told.
	CatchUp func(catchingUp bool)
	// StartCatchingUp makes the member catch up from the start: until
	// RunCatchUp is done it answers for its users only when no caught-up
	// replica can. A member that may have missed writes (every real
	// start) sets it.
	StartCatchingUp bool
	// ReadRepair turns read repair on (see Repair); SetReadRepair
	// changes it.
	ReadRepair bool
	// AntiEntropyInterval is how often anti-entropy compares with the
	// other members; 0 means antientropy.DefaultInterval.
	AntiEntropyInterval time.Duration
	// AntiEntropyRate is how many records per second anti-entropy
	// compares and copies; 0 means antientropy.DefaultRate.
	AntiEntropyRate int
	// RebalanceRate is how many users per second are streamed to new
	// replicas after a ring change; 0 means
	// antientropy.DefaultRebalanceRate.
	RebalanceRate int
	// HandoffInterval is how often hints are offered to members that
	// are alive again; 0 means replica.DefaultHandoffInterval.
	HandoffInterval time.Duration
	// Links sends requests to other members over member links
	// (appnode/transport) instead of one HTTP exchange each; members
	// that do not accept a link, and streams, still get HTTP. A member
	// serves links whatever this says.
	Links bool
	// MemberTLS, when set, carries all member traffic over TLS (see
	// transport.MemberTLS), dialled and served: Listen accepts it on the
	// API port. nil means plain TCP between members (tests).
	MemberTLS *transport.MemberTLS
	// APICert, when set, serves the API over TLS with the certificate
	// it returns (certs.Pair's GetCertificate); nil means plain HTTP.
	APICert func(*tls.ClientHelloInfo) (*tls.Certificate, error)
	// Bounds bound the API listener's requests (header size, timeouts);
	// zero fields mean DefaultBounds'.
	Bounds daemon.HTTPBounds
}

// Server serves appnode's API: it is one member, its subsystems put
// together. It is safe for concurrent use; the Set methods may be
// called while it serves.
type Server struct {
	c       *peer.Cluster
	tr      *transport.Transport
	store   *store.Store
	rep     *replica.Replica
	sync    *antientropy.Syncer
	tl      *timeline.Timeline
	fan     *fanout.Fanout
	log     *slog.Logger
	ids     *feed.IDSource // the member's post ids (package posts draws them)
	mux     *http.ServeMux
	metrics *metrics
	gate    *limits.Gate
	acct    *account.Accounts
	posts   *posts.Posts
	follow  *follow.Graph
	bounds  daemon.HTTPBounds

	routing       atomic.Value // Routing
	heartbeat     atomic.Int64 // live streams' heartbeat, a time.Duration
	gossipAddr    string
	rebalanceRate int
	memberTLS     *transport.MemberTLS
	apiCert       func(*tls.ClientHelloInfo) (*tls.Certificate, error)
	scheme        string // of the API: http or https

	srv *http.Server
	ln  net.Listener
}

// New returns a server for opts.
func New(opts Options) (*Server, error) {
	if opts.Store == nil {
		return nil, errors.New("creating server: no store")
	}
	if len(opts.Secret) == 0 {
		return nil, errors.New("creating server: empty cluster secret")
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if opts.View == nil && opts.Alive != nil {
		opts.View = peer.AliveView(opts.Alive)
	}
	c, err := peer.New(peer.Options{
		Self: opts.Self, Ring: opts.Ring, View: opts.View, Now: opts.Now, MemberTimeout: opts.MemberTimeout,
		CatchUp: opts.CatchUp, Log: opts.Log,
		Transport: transport.Options{Secret: opts.Secret, Registry: opts.Registry, HTTP: opts.Transport, Links: opts.Links,
			TLS: opts.MemberTLS},
	})
	if err != nil {
		return nil, fmt.Errorf("creating server: %w", err)
	}
	s := &Server{
		c: c, tr: c.Transport(), store: opts.Store,
		log:        opts.Log.With("subsystem", "api"),
		ids:        feed.NewIDSource(c.Clock(), opts.Self),
		gossipAddr: opts.GossipAddr, rebalanceRate: opts.RebalanceRate,
		bounds:    opts.Bounds.Or(DefaultBounds),
		memberTLS: opts.MemberTLS, apiCert: opts.APICert, scheme: "http",
	}
	if opts.APICert != nil {
		s.scheme = "https"
	}
	s.metrics = newMetrics(opts.Registry, opts.Store)
	s.gate = limits.NewGate(opts.Registry, len(c.Ring().Members()))
	s.tl = timeline.New(timeline.Options{Cluster: c, Store: opts.Store, Log: opts.Log, Registry: opts.Registry})
	s.fan = fanout.New(fanout.Options{Cluster: c, Store: opts.Store, Timeline: s.tl, Log: opts.Log, Registry: opts.Registry})
	s.rep = replica.New(replica.Options{Cluster: c, Store: opts.Store, Log: opts.Log, Registry: opts.Registry,
		WriteAcks: opts.WriteAcks, ReadRepair: opts.ReadRepair, HandoffInterval: opts.HandoffInterval, FanOut: s.fan})
	if opts.StartCatchingUp {
		c.SetCatchingUp(true)
	}
	s.sync = antientropy.New(antientropy.Options{Cluster: c, Store: opts.Store, Replica: s.rep, Log: opts.Log, Registry: opts.Registry,
		Interval: opts.AntiEntropyInterval, Rate: opts.AntiEntropyRate})
	s.acct = account.New(account.Options{Cluster: c, Store: opts.Store, Replica: s.rep, Gate: s.gate, Log: s.log})
	s.posts = posts.New(posts.Options{Cluster: c, Store: opts.Store, Replica: s.rep, Fanout: s.fan, Timeline: s.tl, Accounts: s.acct,
		IDs: s.ids})
	s.follow = follow.New(follow.Options{Cluster: c, Store: opts.Store, Replica: s.rep, Fanout: s.fan, Accounts: s.acct})
	s.SetStreamHeartbeat(0)
	if err := s.SetRouting(opts.Routing); err != nil {
		return nil, err
	}
	s.routes()
	s.tr.SetHandler(s)
	return s, nil
}

// Cluster is this member's view of the cluster.
func (s *Server) Cluster() *peer.Cluster { return s.c }

// Replica is this member's replication.
func (s *Server) Replica() *replica.Replica { return s.rep }

// Syncer is this member's anti-entropy, rebalancing and catch-up.
func (s *Server) Syncer() *antientropy.Syncer { return s.sync }

// Fanout is this member's fan-out on write.
func (s *Server) Fanout() *fanout.Fanout { return s.fan }

// Timeline is this member's timeline reader.
func (s *Server) Timeline() *timeline.Timeline { return s.tl }

// Transport carries this member's requests to the others.
func (s *Server) Transport() *transport.Transport { return s.tr }

// Limits is the member's rate limiter.
func (s *Server) Limits() *limits.Limiter { return s.gate.Limiter() }

// RunBackground runs the member's background work until ctx is done:
// it learns the previous ring from the others (a member just added),
// then catches up, hands hints over, syncs edge notes, runs
// anti-entropy, delivers the fan-out outbox and its copies' notices,
// and rebalances after ring changes. Start it once the server serves:
// members starting together ask each other.
func (s *Server) RunBackground(ctx context.Context) error {
	lctx, cancel := context.WithTimeout(ctx, learnRingTimeout)
	s.sync.LearnPreviousRing(lctx)
	cancel()
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return s.sync.RunCatchUp(gctx) })
	g.Go(func() error { return s.rep.RunHandoff(gctx) })
	g.Go(func() error { return s.rep.RunEdgeSync(gctx) })
	g.Go(func() error { return s.sync.Run(gctx) })
	g.Go(func() error { return s.fan.Run(gctx) })
	g.Go(func() error { return s.fan.RunCopies(gctx) })
	g.Go(func() error { return s.sync.RunRebalance(gctx, s.rebalanceRate) })
	return g.Wait()
}

// maxHops bounds forwarding: a request that reaches a second non-owner
// (two members whose rings disagree) is forwarded once more, then
// refused with 508.
const maxHops = 2

// learnRingTimeout bounds asking the other members for the previous
// ring at start: a few round trips to each.
const learnRingTimeout = 2 * time.Second

// SetRing installs a new ring; requests already routed keep the old one.
// The users whose preference lists changed are then streamed to their
// new members (antientropy's RunRebalance).
func (s *Server) SetRing(r *ring.Ring) error {
	if err := s.c.SetRing(r); err != nil {
		return err
	}
	s.gate.Limiter().SetMembers(len(r.Members()))
	s.sync.RingChanged()
	return nil
}

// Ring returns the current ring.
func (s *Server) Ring() *ring.Ring { return s.c.Ring() }

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

// Routing returns the routing mode.
func (s *Server) Routing() Routing { return s.routing.Load().(Routing) }

// Tuning is what can change while a member runs, at start and on
// reload; zero values mean the defaults.
type Tuning struct {
	Routing             Routing
	WriteAcks           int
	MemberTimeout       time.Duration
	ReadRepair          bool
	Links               bool
	AntiEntropyInterval time.Duration
	AntiEntropyRate     int
	FanoutLimit         int
	InboxMax            int
	StreamHeartbeat     time.Duration
	// Limits are the rate limits (the zero Config limits nothing).
	Limits limits.Config
}

// Tune applies t to every subsystem.
func (s *Server) Tune(t Tuning) error {
	if err := s.SetRouting(t.Routing); err != nil {
		return err
	}
	s.rep.SetWriteAcks(t.WriteAcks)
	s.c.SetMemberTimeout(t.MemberTimeout)
	s.rep.SetReadRepair(t.ReadRepair)
	s.tr.SetLinks(t.Links)
	s.sync.SetInterval(t.AntiEntropyInterval)
	s.sync.SetRate(t.AntiEntropyRate)
	s.fan.SetLimits(t.FanoutLimit, t.InboxMax)
	s.SetStreamHeartbeat(t.StreamHeartbeat)
	s.gate.Limiter().Configure(t.Limits)
	return nil
}

// SetFanout sets fanout_limit (0: fanout.DefaultFanoutLimit; negative:
// no author is pushed, every timeline read merges) and inbox_max (0:
// fanout.DefaultInboxMax).
func (s *Server) SetFanout(limit, inboxMax int) { s.fan.SetLimits(limit, inboxMax) }

// DefaultStreamHeartbeat is how often a live stream sends a comment so
// proxies and browsers keep the connection open.
const DefaultStreamHeartbeat = 15 * time.Second

// SetStreamHeartbeat sets how often live streams send a heartbeat
// comment; 0 means DefaultStreamHeartbeat.
func (s *Server) SetStreamHeartbeat(d time.Duration) {
	if d <= 0 {
		d = DefaultStreamHeartbeat
	}
	s.heartbeat.Store(int64(d))
}

// ServeHTTP serves the API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rw := &recorder{ResponseWriter: w, code: http.StatusOK}
	h := w.Header()
	setHeader(h, api.HeaderRingVersion, s.c.Ring().Version())
	s.c.ObserveClock(headerValue(r.Header, api.HeaderClock))
	setHeader(h, api.HeaderClock, s.c.Stamp())
	s.mux.ServeHTTP(rw, r)
	if r.Pattern == transport.LinkRoute {
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
// api.Header* constant is: TestHeaderNamesCanonical), to the single
// value v without Header.Set's check and canonicalization of the key:
// the headers every request answers with cost a fraction of a 307's CPU
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
	if s.memberTLS != nil || s.apiCert != nil {
		// Member TLS, and the API's when it has a certificate, on the
		// one port.
		ln = transport.NewListener(ln, s.memberTLS, s.apiCert, s.log)
	}
	s.ln = ln
	s.srv = s.bounds.Server(clientBodies(s), slog.NewLogLogger(s.log.Handler(), slog.LevelWarn))
	return nil
}

// Addr is the bound address, after Listen.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// shutdownGrace bounds a graceful stop: in-flight requests (at most a
// call timeout long) get this long to finish.
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
	s.srv.RegisterOnShutdown(func() { s.tr.Drain(sctx); close(linksDone) })
	err := s.srv.Shutdown(sctx)
	<-linksDone
	s.tr.Close()
	<-errc
	s.rep.Wait() // each is bounded by transport.CallTimeout

	if err != nil {
		return fmt.Errorf("shutting down api listener: %w", err)
	}
	return nil
}

// fromMember returns r marked as coming from another member when it is
// signed with the cluster secret (transport.Authenticate; a request over
// a link is marked already), else r as it is. It answers the request
// itself (413) and returns false when the body is too large to check.
func (s *Server) fromMember(w http.ResponseWriter, r *http.Request) (*http.Request, bool) {
	if transport.FromMember(r) || headerValue(r.Header, api.HeaderCluster) == "" {
		return r, true
	}
	r2, err := s.tr.Authenticate(w, r, transport.MaxBody)
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Errorf("request body is larger than %d bytes", transport.MaxBody))
		return r, false
	}
	return r2, true // not signed: a client's request
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
	s.sync.NotePause()
	rg := s.c.Ring()
	r, ok := s.fromMember(w, r)
	if !ok || !s.gate.AdmitAddress(w, r) {
		return
	}
	hops, skip, fallback := transport.Forwarded(r)
	var answerBy time.Time // when the forwarder stops waiting, if r was forwarded
	if b := transport.Budget(r); b > 0 {
		answerBy = time.Now().Add(b)
	}
	var body []byte
	buffer := func() bool {
		if body != nil {
			return true
		}
		// Buffered, so the request can go to another member if the
		// first does not answer.
		b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, transport.MaxBody))
		if err != nil {
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Errorf("reading request body (at most %d bytes): %w", transport.MaxBody, err))
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
		ctx := peer.WithSkip(r.Context(), skip)
		if !answerBy.IsZero() {
			ctx = peer.WithBudget(ctx, answerBy)
		}
		if s.c.CatchingUp() {
			// No caught-up replica answered: merge with the others
			// first, so this member never answers from a store that
			// has not caught up alone.
			if limit, before, err := api.Page(r.URL.Query()); err == nil { // else the handler answers 400
				if err := s.sync.CatchUpUser(ctx, name, before, limit); err != nil {
					writeError(w, http.StatusServiceUnavailable, err)
					return
				}
			}
		}
		h(w, r.WithContext(ctx))
	}
	if fallback {
		// A new member of the user's preference list sent this here
		// because the user had not reached it yet: answer from here.
		w.Header().Set(api.HeaderOwner, s.c.Self())
		serveHere()
		return
	}
	cands, passed := s.c.Candidates(rg, name, skip)
	if hops > 0 && slices.Contains(cands, s.c.Self()) {
		// Another member chose this one: serve it rather than send it
		// on because the two see the others' state differently.
		cands = []string{s.c.Self()}
	}
	tried := peer.Tried(passed)
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
		setHeader(w.Header(), api.HeaderOwner, m)
		if m == s.c.Self() {
			// Bounded by the previous preference list's length.
			for fskip := skip; hops < maxHops; {
				prev := s.movedFrom(name, fskip)
				if prev == "" || slices.Contains(fskip, prev) {
					break
				}
				if !buffer() {
					return
				}
				plan := &transport.Plan{To: prev, Hops: hops + 1, Skip: skip, Body: body, Fallback: true,
					Timeout: s.c.MemberTimeout(prev)}
				s.metrics.fellBack.Inc()
				s.tr.Forward(s.streamWriter(w, r), r, plan)
				if !plan.Retry {
					return
				}
				s.c.Failed(prev, plan.Why)
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
			setHeader(w.Header(), "Location", s.scheme+"://"+m+requestTarget(r))
			w.WriteHeader(http.StatusTemporaryRedirect)
			return
		}
		if !buffer() {
			return
		}
		timeout := s.forwardTimeout(m, r)
		if last {
			timeout = peer.LastResort(timeout)
		}
		plan := &transport.Plan{To: m, Hops: hops + 1, Skip: skip, Body: body, Timeout: timeout}
		s.metrics.forwarded.Inc()
		s.tr.Forward(s.streamWriter(w, r), r, plan)
		if !plan.Retry {
			s.c.Answered(m)
			return
		}
		s.log.Warn("forwarding failed; trying the next member", "op", "forward", "peer", m, "user", name, "err", plan.Why)
		s.c.Failed(m, plan.Why)
		s.metrics.failovers.Inc()
		tried.Add(m, plan.Why)
		if plan.Slow && !last {
			slow = append(slow, m)
		} else {
			skip = append(slices.Clip(skip), m)
		}
	}
	writeError(w, http.StatusServiceUnavailable, peer.NoMember(name, tried))
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

// forwardTimeout is how long a forward of r to m waits before going on
// to the next member: the member timeout, writeTimeouts of them for a
// write (m may itself wait for a replica).
func (s *Server) forwardTimeout(m string, r *http.Request) time.Duration {
	t := s.c.MemberTimeout(m)
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		t *= peer.WriteTimeouts
	}
	return t
}

// movedFrom returns the member that answered for user name under the
// previous ring, when name moved to this member with the last ring
// change and has not arrived here yet; else "". Requests for such a
// user go there until the rebalance has streamed it here, so a moving
// user is never missing (and never created twice).
func (s *Server) movedFrom(name string, skip []string) string {
	prev := s.c.Previous()
	if prev == nil || prev.InPreference(name, s.c.Self()) {
		return ""
	}
	if ok, err := s.store.HasUser(name); err != nil || ok {
		return ""
	}
	if m := s.c.Target(prev, name, skip...); m != s.c.Self() {
		return m
	}
	return ""
}

// writeError writes {"error": "..."}.
func writeError(w http.ResponseWriter, code int, err error) { transport.WriteError(w, code, err) }

// writeJSON writes v compactly; API answers are for programs.
func writeJSON(w http.ResponseWriter, code int, v any) { transport.WriteJSON(w, code, v) }
