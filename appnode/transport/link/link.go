package link

// The member link: how members carry requests to each other without an
// HTTP exchange per request.
//
// A forwarded read costs the forwarder a whole HTTP client exchange and
// the owner a whole HTTP server exchange on top of the work itself:
// header parsing and formatting, a write and a read system call on each
// side, and net/http's per-connection goroutine hand-offs. A link is a
// long-lived TCP connection between two members that carries many
// requests at once as length-prefixed frames: forwarded client requests
// and the members' own calls (replication, hints, fan-out, digests)
// alike. Writes from concurrent requests are combined, so under load one
// system call carries several requests or answers, and the owner runs
// the handler on an in-memory request without parsing HTTP.
//
// A link starts as an HTTP request on the member's API port:
//
//	GET /internal/v1/link HTTP/1.1
//	Connection: Upgrade
//	Upgrade: ringfront-link/1
//
// The owner answers 101 with a random challenge in HeaderChallenge;
// the caller's first frame is HMAC-SHA256(cluster secret, challenge),
// and the owner serves nothing before it has checked it (and said "ok"
// or "refused" in a frame of its own), so a recorded link cannot be
// replayed. A member that answers anything but 101 (an older version),
// or refuses the secret, is called over HTTP for a while.
//
// Frames are package frame's: a length, an id (0: the authentication
// frame; ^0: go-away) and a payload.
//
// When the owner shuts down it stops reading, sends go-away with the id
// of the last request it read, answers every request it read, and
// closes. Requests with higher ids never reached its handlers, so the
// caller treats them like a refused connection and moves on to the
// next member of the preference list; a link that breaks without
// go-away fails its requests in flight with 502, as a broken HTTP
// connection would.
//
// Streaming answers (server-sent events) travel over HTTP: a link
// answer is one frame, and a stream that a slow client holds up would
// hold up every request behind it on the link.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/ringfront/ringfront/appnode/transport/frame"
	"github.com/ringfront/ringfront/internal/daemon"
)

const (
	protocol    = "ringfront-link/1"
	upgradePath = "/internal/v1/link"
	// Route is the route that upgrades to a link (Server).
	Route = "GET " + upgradePath
	// HeaderChallenge carries the owner's challenge in its 101.
	HeaderChallenge = "X-Ringfront-Link-Challenge"

	// Conns is how many links a member keeps to each other member:
	// more than one, so one slow answer does not hold a whole socket
	// buffer up, and few, so writes still combine.
	Conns = 2
	// inflight bounds the requests one link serves at once; the
	// owner stops reading the link while it is full.
	inflight = 512
	// retryHTTP is how long a member that refused a link (an older
	// version) is forwarded to over HTTP before the link is tried again.
	retryHTTP = time.Minute
	// authTimeout bounds the handshake.
	authTimeout = 5 * time.Second

	idAuth   = 0
	idGoAway = ^uint64(0)

	// The owner's answers to the authentication frame.
	accepted = "ok"
	refused  = "refused"
)

// errWrongSecret is why a link was refused.
var errWrongSecret = errors.New("missing or wrong cluster credentials")

// Errors of the link client. ErrUnsent means the request never
// reached the owner's handlers: the caller may send it elsewhere.
var (
	ErrUnsent      = errors.New("member link closed before the request was read")
	ErrUnsupported = errors.New("member does not speak " + protocol)
	errRetired     = errors.New("member link retired")
)

// answerMAC is the answer to a link challenge.
func answerMAC(secret []byte, challenge string) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("ringfront-link\n" + challenge))
	return m.Sum(nil)
}

// HopByHop reports headers that belong to one connection, not to the
// request or answer (RFC 9110, section 7.6.1).
func HopByHop(k string) bool {
	switch k {
	case "Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
		"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade":
		return true
	}
	return false
}

// ---- the owner's side ----

// links tracks the links this member serves, so Serve's shutdown can
// drain them (http.Server forgets a connection once it is hijacked).
type linkSet struct {
	mu     sync.Mutex
	conns  map[*servedLink]struct{}
	closed bool
}

type servedLink struct {
	c        net.Conn
	w        *frame.Writer
	lastRead atomic.Uint64
	authed   atomic.Bool // the peer answered the challenge
	stopping atomic.Bool
	handlers sync.WaitGroup
	done     chan struct{}
}

// Server is the owner's side of member links: it upgrades requests to
// Route and serves the requests that arrive over them. Set its fields
// before the first request; it is safe for concurrent use after that.
type Server struct {
	// Self is this member's address, the Host of requests that arrive
	// over links.
	Self string
	// Key returns the cluster secret the caller's answer to the
	// challenge is checked with.
	Key func() []byte
	// Handler serves the requests that arrive over links.
	Handler http.Handler
	// Mark, when set, marks a link's requests' context as a member's.
	Mark func(context.Context) context.Context
	// Timeout bounds each request's handler.
	Timeout time.Duration
	Log     *slog.Logger
	// Refused counts links refused for a wrong answer to the challenge;
	// Served is the number of links open (both may be nil).
	Refused prometheus.Counter
	Served  prometheus.Gauge
	// Admit, when set, is asked before a request is upgraded: an error
	// refuses it (403, with the error), such as a link that did not come
	// over member TLS.
	Admit func(*http.Request) error

	set linkSet
}

// ServeHTTP upgrades an HTTP request to a member link and serves it
// until the peer closes it or the server shuts down.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !strings.EqualFold(r.Header.Get("Upgrade"), protocol) {
		daemon.WriteError(w, http.StatusUpgradeRequired, fmt.Errorf("this path upgrades to %s", protocol))
		return
	}
	if s.Admit != nil {
		if err := s.Admit(r); err != nil {
			daemon.WriteError(w, http.StatusForbidden, err)
			return
		}
	}
	var nonce [16]byte
	rand.Read(nonce[:])
	challenge := hex.EncodeToString(nonce[:])
	c, rw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		daemon.WriteError(w, http.StatusInternalServerError, fmt.Errorf("taking over the connection for a member link: %w", err))
		return
	}
	l := &servedLink{c: c, w: frame.NewWriter(c), done: make(chan struct{})}
	if !s.set.add(l) {
		c.Close() // shutting down
		return
	}
	defer s.set.remove(l)
	defer close(l.done)
	defer c.Close()
	c.SetDeadline(time.Time{})
	fmt.Fprintf(rw, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: %s\r\n%s: %s\r\n\r\n", protocol, HeaderChallenge, challenge)
	if err := rw.Flush(); err != nil {
		return
	}
	c.SetReadDeadline(time.Now().Add(authTimeout))
	id, mac, err := frame.Read(rw.Reader, nil)
	if err != nil {
		// The caller gave up during the handshake (its request's time
		// ran out): nothing was refused.
		s.Log.Debug("member link closed during the handshake", "op", "link", "peer", r.RemoteAddr, "err", err)
		return
	}
	if id != idAuth || !hmac.Equal(mac, answerMAC(s.Key(), challenge)) {
		s.Log.Warn("refused a member link", "op", "link", "peer", r.RemoteAddr, "err", errWrongSecret)
		if s.Refused != nil {
			s.Refused.Inc()
		}
		l.w.Write(idAuth, []byte(refused), nil)
		return
	}
	c.SetReadDeadline(time.Time{})
	if l.w.Write(idAuth, []byte(accepted), nil) != nil {
		return
	}
	l.authed.Store(true)
	if s.Served != nil {
		s.Served.Inc()
		defer s.Served.Dec()
	}

	ctx, cancel := context.WithCancel(context.WithoutCancel(r.Context()))
	defer cancel()
	if s.Mark != nil {
		ctx = s.Mark(ctx)
	}
	slots := make(chan struct{}, inflight)
	var buf []byte
	for {
		id, payload, err := frame.Read(rw.Reader, buf)
		if err != nil {
			break
		}
		buf = payload[:0] // DecodeRequest copies what it keeps
		if id == idAuth || id == idGoAway {
			break // a confused peer
		}
		l.lastRead.Store(id)
		req, err := DecodeRequest(ctx, s.Self, payload)
		if err != nil {
			s.Log.Warn("bad member link frame", "op", "link", "peer", r.RemoteAddr, "err", err)
			break
		}
		slots <- struct{}{}
		l.handlers.Add(1)
		go func() {
			defer func() { <-slots; l.handlers.Done() }()
			s.serveRequest(l, id, req)
		}()
		if l.stopping.Load() {
			break
		}
	}
	if !l.stopping.Load() {
		l.handlers.Wait()
		return
	}
	// Tell the peer which requests were read; the rest never will be.
	l.w.Write(idGoAway, binary.BigEndian.AppendUint64(nil, l.lastRead.Load()), nil)
	l.handlers.Wait()
	// Half-close, then read until the peer closes its side: closing with
	// its later requests unread would reset the connection, and a reset
	// throws away what the peer has not read yet, go-away included.
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite() // a TCP FIN, or a TLS close_notify
	}
	c.SetReadDeadline(time.Now().Add(authTimeout))
	io.Copy(io.Discard, rw.Reader)
}

// DecodeRequest decodes a request frame's payload (EncodeRequest's
// head, then the body) into a request to self with context ctx.
func DecodeRequest(ctx context.Context, self string, payload []byte) (*http.Request, error) {
	d := frame.NewDecoder(payload)
	method, uri, remote := d.String(), d.String(), d.String()
	h := d.Header()
	if d.Err() != nil {
		return nil, d.Err()
	}
	body := bytes.Clone(d.Rest())
	req, err := http.NewRequestWithContext(ctx, method, "http://"+self+uri, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("member link request %s %q: %w", method, uri, err)
	}
	req.Header = h
	req.RequestURI = uri
	req.RemoteAddr = remote
	req.Host = self
	return req, nil
}

// linkAnswer is the http.ResponseWriter of a request that came over a
// link: the answer is collected, then sent as one frame.
type linkAnswer struct {
	h    http.Header
	code int
	body bytes.Buffer
}

func (a *linkAnswer) Header() http.Header { return a.h }

func (a *linkAnswer) WriteHeader(code int) {
	if a.code == 0 {
		a.code = code
	}
}

func (a *linkAnswer) Write(b []byte) (int, error) {
	if a.code == 0 {
		a.code = http.StatusOK
	}
	if a.body.Len()+len(b) > frame.Max-64<<10 {
		return 0, fmt.Errorf("answer larger than a member link frame (%d bytes)", frame.Max)
	}
	return a.body.Write(b)
}

var answers = sync.Pool{New: func() any { return new(linkAnswer) }}

func (s *Server) serveRequest(l *servedLink, id uint64, req *http.Request) {
	ctx, cancel := context.WithTimeout(req.Context(), s.Timeout)
	defer cancel()
	a := answers.Get().(*linkAnswer)
	a.h, a.code = make(http.Header, 4), 0
	a.body.Reset()
	func() {
		// As net/http does for a connection: a handler's panic fails its
		// request, not the process.
		defer func() {
			if v := recover(); v != nil {
				if v != http.ErrAbortHandler {
					s.Log.Error("handler panicked", "op", "link", "path", req.URL.Path, "panic", v, "stack", string(debug.Stack()))
				}
				a.h, a.code = http.Header{}, 0
				a.body.Reset()
				daemon.WriteError(a, http.StatusInternalServerError, errors.New("internal error"))
			}
		}()
		s.Handler.ServeHTTP(a, req.WithContext(ctx))
	}()
	if a.code == 0 {
		a.code = http.StatusOK
	}
	head := make([]byte, 0, 256)
	head = binary.AppendUvarint(head, uint64(a.code))
	head = frame.AppendHeader(head, a.h, HopByHop)
	l.w.Write(id, head, a.body.Bytes()) // a broken link is seen by its reader
	if a.body.Cap() <= 1<<20 {
		answers.Put(a)
	}
}

func (ls *linkSet) add(l *servedLink) bool {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if ls.closed {
		return false
	}
	if ls.conns == nil {
		ls.conns = make(map[*servedLink]struct{})
	}
	ls.conns[l] = struct{}{}
	return true
}

func (ls *linkSet) remove(l *servedLink) {
	ls.mu.Lock()
	delete(ls.conns, l)
	ls.mu.Unlock()
}

// Drain stops the links other members have to this one: each stops
// reading, tells its peer the last request it read (the rest go to
// another member), answers what it read and closes. It waits until ctx
// is done, then closes what is left. New links are refused from then on.
func (s *Server) Drain(ctx context.Context) { s.set.drain(ctx) }

// drain stops every served link: each stops reading, tells its peer the
// last request it read, answers what it read and closes. It waits for
// them until ctx is done, then closes what is left.
func (ls *linkSet) drain(ctx context.Context) {
	ls.mu.Lock()
	ls.closed = true
	conns := make([]*servedLink, 0, len(ls.conns))
	for l := range ls.conns {
		conns = append(conns, l)
	}
	ls.mu.Unlock()
	for _, l := range conns {
		l.stopping.Store(true)
		l.c.SetReadDeadline(time.Now()) // wakes the reader
	}
	for _, l := range conns {
		select {
		case <-l.done:
		case <-ctx.Done():
			l.c.Close()
		}
	}
}

// ---- the forwarder's side ----

// Pool is the caller's side: this member's links to the other members.
// Set its fields before the first request; it is safe for concurrent
// use after that.
type Pool struct {
	// Key returns the cluster secret the owner's challenge is answered
	// with.
	Key func() []byte
	// Now is the clock of the time a member that refused a link is
	// called over HTTP for; nil means time.Now.
	Now func() time.Time
	Log *slog.Logger
	// Opened counts the links opened (may be nil).
	Opened prometheus.Counter
	// Dial opens a connection to a member; nil means DialTCP. Member
	// TLS dials here.
	Dial func(ctx context.Context, member string) (net.Conn, error)

	mu sync.Mutex // guards to
	to map[string]*peerLinks
}

func (p *Pool) now() time.Time {
	if p.Now != nil {
		return p.Now()
	}
	return time.Now()
}

type peerLinks struct {
	dialing [Conns]chan struct{} // one token: a dial of that slot is under way

	mu      sync.Mutex // guards the rest
	conns   [Conns]*link
	next    int
	httpTil time.Time // the peer refused a link: HTTP until then
	why     string    // and why
}

// Status is how this member calls another, for appnode status.
type Status struct {
	Member string `json:"member"`
	// Open counts the links open to it.
	Open int `json:"open"`
	// HTTPUntil, when set, is until when requests go over HTTP because
	// the member refused a link (Reason says why).
	HTTPUntil time.Time `json:"http_until,omitzero"`
	Reason    string    `json:"reason,omitempty"`
}

// Status lists the members this member has called, and how.
func (p *Pool) Status() []Status {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]Status, 0, len(p.to))
	for m, pl := range p.to {
		st := Status{Member: m}
		pl.mu.Lock()
		for _, l := range pl.conns {
			if l != nil && l.usable() {
				st.Open++
			}
		}
		if p.now().Before(pl.httpTil) {
			st.HTTPUntil, st.Reason = pl.httpTil, pl.why
		}
		pl.mu.Unlock()
		out = append(out, st)
	}
	slices.SortFunc(out, func(a, b Status) int { return strings.Compare(a.Member, b.Member) })
	return out
}

// Count counts the links other members have open to this one (those
// still in the handshake, or refused and closing, not included).
func (s *Server) Count() int { return s.set.count() }

func (ls *linkSet) count() int {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	n := 0
	for l := range ls.conns {
		if l.authed.Load() {
			n++
		}
	}
	return n
}

// link is one link to a member.
type link struct {
	peer    string
	c       net.Conn
	w       *frame.Writer
	mu      sync.Mutex
	pending map[uint64]chan linkResult
	nextID  uint64
	err     error // set once the link is closed
	goAway  bool
	done    chan struct{}
}

type linkResult struct {
	payload []byte
	err     error
}

func (p *Pool) peer(member string) *peerLinks {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.to == nil {
		p.to = make(map[string]*peerLinks)
	}
	pl := p.to[member]
	if pl == nil {
		pl = new(peerLinks)
		for i := range pl.dialing {
			pl.dialing[i] = make(chan struct{}, 1)
		}
		p.to[member] = pl
	}
	return pl
}

// get returns a usable link to member, dialling one if needed. It
// returns ErrUnsupported while the member is forwarded to over HTTP,
// and a dial error (which unreachable recognises) when the member cannot
// be reached.
func (p *Pool) get(ctx context.Context, member string) (*link, error) {
	pl := p.peer(member)
	pl.mu.Lock()
	if p.now().Before(pl.httpTil) {
		pl.mu.Unlock()
		return nil, ErrUnsupported
	}
	i := pl.next
	pl.next = (pl.next + 1) % Conns
	l := pl.conns[i]
	pl.mu.Unlock()
	if l != nil && l.usable() {
		return l, nil
	}
	// One dial per slot at a time: concurrent requests wait for this one
	// link instead of each dialling their own, each as long as its own
	// context lets it (a member that does not answer a dial must not
	// hold up a forward beyond its member timeout).
	select {
	case pl.dialing[i] <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-pl.dialing[i] }()
	pl.mu.Lock()
	if l := pl.conns[i]; l != nil && l.usable() {
		pl.mu.Unlock()
		return l, nil // dialled while this request waited
	}
	if p.now().Before(pl.httpTil) {
		pl.mu.Unlock()
		return nil, ErrUnsupported
	}
	pl.mu.Unlock()
	l, err := p.dial(ctx, member)
	pl.mu.Lock()
	defer pl.mu.Unlock()
	if errors.Is(err, ErrUnsupported) {
		pl.httpTil, pl.why = p.now().Add(retryHTTP), err.Error()
	}
	if err != nil {
		return nil, err
	}
	pl.conns[i] = l
	return l, nil
}

func (p *Pool) dial(ctx context.Context, member string) (*link, error) {
	ctx, cancel := context.WithTimeout(ctx, authTimeout)
	defer cancel()
	dial := p.Dial
	if dial == nil {
		dial = DialTCP
	}
	c, err := dial(ctx, member)
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*link, error) {
		c.Close()
		return nil, fmt.Errorf("opening a member link to %s: %w", member, err)
	}
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: Upgrade\r\nUpgrade: %s\r\n\r\n", upgradePath, member, protocol)
	br := bufio.NewReaderSize(c, 64<<10)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return fail(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSwitchingProtocols {
		c.Close()
		return nil, fmt.Errorf("%w (answered %s)", ErrUnsupported, resp.Status)
	}
	l := &link{peer: member, c: c, w: frame.NewWriter(c), pending: make(map[uint64]chan linkResult), nextID: 1, done: make(chan struct{})}
	if err := l.w.Write(idAuth, answerMAC(p.Key(), resp.Header.Get(HeaderChallenge)), nil); err != nil {
		return fail(err)
	}
	id, answer, err := frame.Read(br, nil)
	switch {
	case err != nil:
		return fail(err)
	case id == idAuth && string(answer) == refused:
		// Forwarded requests still work over HTTP, unsigned as far as
		// the peer can tell; the operator needs to fix the secret.
		c.Close()
		p.Log.Error("a member refused our cluster secret; calling it over HTTP", "op", "link", "peer", member)
		return nil, fmt.Errorf("%w: it refused the cluster secret", ErrUnsupported)
	case id != idAuth || string(answer) != accepted:
		return fail(errors.New("unexpected answer to the link challenge"))
	}
	c.SetDeadline(time.Time{})
	if p.Opened != nil {
		p.Opened.Inc()
	}
	go l.read(br)
	return l, nil
}

func (l *link) usable() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err == nil && !l.goAway
}

// read dispatches answers until the link breaks.
func (l *link) read(br *bufio.Reader) {
	defer close(l.done)
	var err error
	for {
		var id uint64
		var payload []byte
		id, payload, err = frame.Read(br, nil)
		if err != nil {
			break
		}
		if id == idGoAway {
			if len(payload) != 8 {
				err = errors.New("malformed go-away frame")
				break
			}
			if l.goAwayAfter(binary.BigEndian.Uint64(payload)) {
				err = errRetired // nothing left to wait for
				break
			}
			continue
		}
		l.mu.Lock()
		ch := l.pending[id]
		delete(l.pending, id)
		drained := l.goAway && len(l.pending) == 0
		l.mu.Unlock()
		if ch != nil {
			ch <- linkResult{payload: payload}
		}
		if drained {
			err = errRetired
			break
		}
	}
	l.close(fmt.Errorf("member link to %s: %w", l.peer, err))
}

// goAwayAfter fails the requests the owner will never read; it reports
// whether no request is left waiting for an answer.
func (l *link) goAwayAfter(last uint64) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.goAway = true
	for id, ch := range l.pending {
		if id > last {
			delete(l.pending, id)
			ch <- linkResult{err: ErrUnsent}
		}
	}
	return len(l.pending) == 0
}

// close fails every request still waiting; once the owner said go-away,
// those were read and are being answered, so a break now is a failure.
func (l *link) close(err error) {
	l.mu.Lock()
	if l.err == nil {
		l.err = err
	}
	for id, ch := range l.pending {
		delete(l.pending, id)
		ch <- linkResult{err: err}
	}
	l.mu.Unlock()
	l.c.Close()
}

// roundTrip sends one request frame and waits for its answer.
func (l *link) roundTrip(ctx context.Context, req []byte, body []byte) ([]byte, error) {
	ch := make(chan linkResult, 1)
	l.mu.Lock()
	if l.err != nil || l.goAway {
		l.mu.Unlock()
		return nil, ErrUnsent
	}
	id := l.nextID
	l.nextID++
	l.pending[id] = ch
	// Queued under l.mu, so frames go out in id order: go-away's
	// "everything after this id was not read" depends on it. Written
	// outside it, so concurrent requests combine into one write.
	err := l.w.Enqueue(id, req, body)
	l.mu.Unlock()
	if err == nil {
		err = l.w.Flush()
	}
	if err != nil {
		l.close(err)
	}
	select {
	case res := <-ch:
		return res.payload, res.err
	case <-ctx.Done():
		l.mu.Lock()
		delete(l.pending, id)
		l.mu.Unlock()
		return nil, ctx.Err()
	}
}

// retire stops new requests on the link and closes it once the ones in
// flight are answered.
func (l *link) retire() {
	l.mu.Lock()
	l.goAway = true
	idle := len(l.pending) == 0
	l.mu.Unlock()
	if idle {
		l.close(errRetired)
	}
}

// RetireAll retires every link (calls over links were turned off).
func (p *Pool) RetireAll() { p.each((*link).retire) }

// CloseAll closes every link; requests in flight fail.
func (p *Pool) CloseAll() {
	err := errors.New("member shutting down")
	p.each(func(l *link) { l.close(err) })
}

// each calls f for every link in the pool.
func (p *Pool) each(f func(*link)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, pl := range p.to {
		pl.mu.Lock()
		for _, l := range pl.conns {
			if l != nil {
				f(l)
			}
		}
		pl.mu.Unlock()
	}
}

// RoundTrip sends one request frame (head, then body) to member over a
// link and returns the answer frame. It returns ErrUnsupported, having
// sent nothing, while the member is called over HTTP. A second try is
// made only after ErrUnsent: the member was draining and never read the
// request; a redial tells whether it is still there.
func (p *Pool) RoundTrip(ctx context.Context, member string, head, body []byte) ([]byte, error) {
	var err error
	for try := 0; try < 2 && (try == 0 || errors.Is(err, ErrUnsent)); try++ {
		var l *link
		if l, err = p.get(ctx, member); err != nil {
			return nil, err
		}
		var payload []byte
		if payload, err = l.roundTrip(ctx, head, body); err == nil {
			return payload, nil
		}
	}
	return nil, err
}

// EncodeRequest encodes a request frame's payload, less the body.
func EncodeRequest(method, uri, remote string, h http.Header) []byte {
	b := make([]byte, 0, 512)
	b = frame.AppendString(b, method)
	b = frame.AppendString(b, uri)
	b = frame.AppendString(b, remote)
	return frame.AppendHeader(b, h, HopByHop)
}

// DecodeAnswer decodes an answer frame.
func DecodeAnswer(payload []byte) (int, http.Header, []byte, error) {
	d := frame.NewDecoder(payload)
	code := d.Uvarint()
	h := d.Header()
	if d.Err() != nil {
		return 0, nil, nil, fmt.Errorf("member link answer: %w", d.Err())
	}
	if code < 100 || code > 999 {
		return 0, nil, nil, fmt.Errorf("member link answer with status %d", code)
	}
	return int(code), h, d.Rest(), nil
}

// DialTCP opens a plain TCP connection to member, without Nagle's delay:
// a link's writes are combined already.
func DialTCP(ctx context.Context, member string) (net.Conn, error) {
	d := net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}
	c, err := d.DialContext(ctx, "tcp", member)
	if err != nil {
		return nil, err
	}
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	return c, nil
}
