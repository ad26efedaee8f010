package transport

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ringfront/ringfront/appnode/api"
	"github.com/ringfront/ringfront/appnode/transport/link"
)

// Headers, as in package api.
const (
	HeaderCluster     = api.HeaderCluster
	HeaderHops        = api.HeaderHops
	HeaderOwner       = api.HeaderOwner
	HeaderUnreachable = api.HeaderUnreachable
	HeaderFallback    = api.HeaderFallback
	HeaderBudget      = api.HeaderBudget
	HeaderRingVersion = api.HeaderRingVersion
	HeaderClock       = api.HeaderClock
	HeaderClient      = api.HeaderClient
)

// CallTimeout bounds one member-to-member call; the caller's context
// may cut it shorter.
const CallTimeout = 10 * time.Second

// MaxBody bounds a client request body: a post is at most 280
// characters of up to 4 bytes, wrapped in JSON with escapes.
const MaxBody = 16 << 10

// shutdownGrace bounds the drain of the links others have to this
// member when it stops.
const shutdownGrace = 10 * time.Second

// Options configure a Transport.
type Options struct {
	// Self is this member's advertised address.
	Self string
	// Secret is the cluster secret: links answer a challenge with it,
	// HTTP requests are signed with it.
	Secret []byte
	// Log is the logger; nil means slog.Default().
	Log *slog.Logger
	// Registry receives the metrics; nil means none are registered.
	Registry prometheus.Registerer
	// Now is the wall clock (signatures carry it); nil means time.Now.
	Now func() time.Time
	// Stamp returns this member's clock for HeaderClock on every
	// request; Observe is given the clock each answer carries. nil
	// means none is sent or observed.
	Stamp   func() string
	Observe func(clock string)
	// HTTP carries the HTTP traffic (streams, and members that do not
	// offer links); nil means NewHTTP().
	HTTP http.RoundTripper
	// Links sends requests over member links (else HTTP only); SetLinks
	// changes it. A member serves links whatever this says.
	Links bool
	// TLS, when set, carries every member connection over TLS (see
	// tls.go): links and HTTP are dialled with it, and links and signed
	// requests that did not come over a member TLS connection are
	// refused. nil means plain TCP (tests).
	TLS *MemberTLS
}

// Transport carries every request between members: client requests
// forwarded to the member that answers for their user (Forward) and the
// members' own calls (Call), over member links (package link), or signed
// HTTP for streams, for members that do not offer links, and when links
// are turned off. It is safe for concurrent use.
type Transport struct {
	self    string
	now     func() time.Time
	stamp   func() string
	observe func(string)
	log     *slog.Logger
	http    *http.Client
	proxy   *httputil.ReverseProxy
	metrics metrics

	mu      sync.Mutex // guards secret and handler
	secret  []byte
	handler http.Handler

	pool   link.Pool
	served link.Server
	links  atomic.Bool

	tls    *MemberTLS // nil: plain TCP between members
	scheme string     // of member HTTP requests: https with tls
}

// New returns a transport for opts.
func New(opts Options) *Transport {
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Stamp == nil {
		opts.Stamp = func() string { return "" }
	}
	if opts.Observe == nil {
		opts.Observe = func(string) {}
	}
	if opts.HTTP == nil {
		h := NewHTTP()
		if opts.TLS != nil {
			h.DialTLSContext = opts.TLS.Dial
		}
		opts.HTTP = h
	}
	t := &Transport{
		self: opts.Self, secret: opts.Secret, now: opts.Now, stamp: opts.Stamp, observe: opts.Observe,
		log:     opts.Log.With("subsystem", "transport"),
		http:    &http.Client{Transport: opts.HTTP, Timeout: CallTimeout},
		handler: http.NotFoundHandler(),
		tls:     opts.TLS, scheme: "http",
	}
	if opts.TLS != nil {
		t.scheme = "https"
	}
	t.metrics = newMetrics(opts.Registry)
	t.proxy = t.newProxy(opts.HTTP)
	t.pool = link.Pool{Key: t.key, Now: t.now, Log: t.log, Opened: t.metrics.linksOpened}
	if opts.TLS != nil {
		t.pool.Dial = func(ctx context.Context, member string) (net.Conn, error) { return opts.TLS.Dial(ctx, "tcp", member) }
	}
	t.served = link.Server{
		Self: t.self, Key: t.key, Handler: http.HandlerFunc(t.serveLinked),
		Mark:    func(ctx context.Context) context.Context { return context.WithValue(ctx, memberKey{}, true) },
		Timeout: CallTimeout, Log: t.log, Refused: t.metrics.linkRefused, Served: t.metrics.linksServed,
	}
	if opts.TLS != nil {
		t.served.Admit = func(r *http.Request) error {
			if !MemberConn(r) {
				return errPlainMember
			}
			return nil
		}
	}
	t.SetLinks(opts.Links)
	return t
}

// NewHTTP returns the HTTP transport members use among themselves:
// keep-alive connections to every member, enough of them idle that a
// busy member does not redial (a redial costs more than the request).
// (A hand-written HTTP/1.1 transport without net/http's per-connection
// reader and writer goroutines was measured at only about 6% less CPU
// per forward, not worth its risk; HTTP/2 cleartext spends 2.6 times
// the member link's CPU on a forward: bench/appnode/RESULTS.md.)
func NewHTTP() *http.Transport {
	return &http.Transport{
		Proxy:                 nil, // members talk directly, never through an HTTP proxy
		DialContext:           (&net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: CallTimeout,
	}
}

// SetHandler sets what serves the requests that arrive over links: the
// member's whole API, as for a request that arrived over HTTP.
func (t *Transport) SetHandler(h http.Handler) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.handler = h
}

// SetSecret replaces the cluster secret, for new links and signatures
// from now on.
func (t *Transport) SetSecret(secret []byte) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.secret = secret
}

func (t *Transport) key() []byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.secret
}

func (t *Transport) serveLinked(w http.ResponseWriter, r *http.Request) {
	t.mu.Lock()
	h := t.handler
	t.mu.Unlock()
	h.ServeHTTP(w, r)
}

// ServeLink upgrades an HTTP request to a member link and serves it
// until the peer closes it or the server shuts down (register it at
// LinkRoute).
func (t *Transport) ServeLink(w http.ResponseWriter, r *http.Request) { t.served.ServeHTTP(w, r) }

// The member link's route, its challenge header and how a member calls
// another (package link).
const (
	LinkRoute           = link.Route
	HeaderLinkChallenge = link.HeaderChallenge
)

// LinkStatus is how this member calls another, for appnode status.
type LinkStatus = link.Status

// SetLinks turns member links on or off; turning them off closes this
// member's links once their requests are answered.
func (t *Transport) SetLinks(on bool) {
	if !t.links.Swap(on) || on {
		return
	}
	t.pool.RetireAll()
}

// Status lists the members this member has sent requests to, and how.
func (t *Transport) Status() []LinkStatus { return t.pool.Status() }

// LinksServed counts the links other members have open to this one.
func (t *Transport) LinksServed() int { return t.served.Count() }

// Drain stops the links other members have to this one: each stops
// reading, tells its peer the last request it read (the rest go to
// another member), answers what it read and closes. It waits until ctx
// is done, then closes what is left. Run it once the listener is
// closed, so that a peer's redial is refused.
func (t *Transport) Drain(ctx context.Context) { t.served.Drain(ctx) }

// Close closes this member's links to others (requests in flight fail)
// and drains the links others have to it.
func (t *Transport) Close() {
	t.pool.CloseAll()
	ctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	t.served.Drain(ctx)
}

type metrics struct {
	forwardErrors prometheus.Counter
	linksOpened   prometheus.Counter
	linksServed   prometheus.Gauge
	linkRefused   prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) metrics {
	m := metrics{
		forwardErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "appnode_forward_errors_total",
			Help: "Forwarded requests that got no answer from the owner.",
		}),
		linksOpened: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "appnode_links_opened_total",
			Help: "Member links this member opened to forward requests.",
		}),
		linksServed: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "appnode_links_served",
			Help: "Member links other members have open to this one.",
		}),
		linkRefused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "appnode_links_refused_total",
			Help: "Member links refused for a wrong answer to the challenge (a wrong cluster secret).",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.forwardErrors, m.linksOpened, m.linksServed, m.linkRefused)
	}
	return m
}
