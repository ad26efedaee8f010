package proxy

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/ringfront/ringfront/appnode/api"
	"github.com/ringfront/ringfront/appnode/client"
	"github.com/ringfront/ringfront/appnode/feed"
	"github.com/ringfront/ringfront/internal/daemon"
)

// maxBody bounds a request body the proxy buffers (it must be able to
// send it again to the next member): far above any API request.
const maxBody = 1 << 20

// dialTimeout is how long the proxy waits for a member to accept a
// connection before trying the next one.
const dialTimeout = time.Second

// attemptTimeout is how long a member has to answer (its headers: a
// stream then lasts as long as it lasts) before the request goes to the
// next member: see client.DefaultAttemptTimeout.
const attemptTimeout = client.DefaultAttemptTimeout

// Options configure a Proxy.
type Options struct {
	// Transport carries requests to the members; nil means one with
	// keep-alive connections and a short dial timeout.
	Transport http.RoundTripper
	// Log is the logger; nil means slog.Default().
	Log *slog.Logger
	// TLS and CAFile are how https members are trusted (see
	// client.Options); the default Transport uses them too.
	TLS    *tls.Config
	CAFile string
	// Bounds bound the listener's requests; zero fields mean
	// DefaultBounds'.
	Bounds daemon.HTTPBounds
}

// DefaultBounds are the proxy listener's bounds: a browser's headers
// (cookies for localhost included) fit; a live stream moves its write
// deadline on at each write.
var DefaultBounds = daemon.HTTPBounds{
	MaxHeaderBytes:    64 << 10,
	ReadHeaderTimeout: 5 * time.Second,
	ReadTimeout:       30 * time.Second,
	WriteTimeout:      30 * time.Second,
	IdleTimeout:       120 * time.Second,
}

// Proxy is the local proxy. It is safe for concurrent use.
type Proxy struct {
	client *client.Client
	tr     http.RoundTripper
	log    *slog.Logger
	bounds daemon.HTTPBounds
	srv    *http.Server
	ln     net.Listener
}

// New returns a proxy that learns the ring from seeds ("host:port",
// "http://host:port" or "https://host:port").
func New(seeds []string, opts Options) (*Proxy, error) {
	c, err := client.New(seeds, client.Options{TLS: opts.TLS, CAFile: opts.CAFile})
	if err != nil {
		return nil, fmt.Errorf("creating proxy: %w", err)
	}
	tlsConfig, err := client.TLSConfig(opts.TLS, opts.CAFile)
	if err != nil {
		return nil, fmt.Errorf("creating proxy: %w", err)
	}
	if opts.Transport == nil {
		opts.Transport = &http.Transport{
			Proxy:               nil,
			DialContext:         (&net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConnsPerHost: 64,
			IdleConnTimeout:     90 * time.Second,
			// Members answer at once, streams included (they send their
			// headers before the first event).
			ResponseHeaderTimeout: 15 * time.Second,
			TLSClientConfig:       tlsConfig,
			ForceAttemptHTTP2:     true,
		}
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	return &Proxy{client: c, tr: opts.Transport, log: opts.Log.With("subsystem", "proxy"), bounds: opts.Bounds.Or(DefaultBounds)}, nil
}

// hopHeaders are meaningful for one connection only (RFC 9110 7.6.1).
var hopHeaders = []string{"Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate", "Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

// ServeHTTP sends r to the members of its user's preference list in
// order until one answers, and passes the answer back. A member that
// does not answer within attemptTimeout, cannot be reached, or answers
// that it cannot serve the request now (502, 503, 504) is passed over
// for the next. Before the first try a new post gets its id and a new
// user its token (pin), so a request sent to two members is stored
// once.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		daemon.WriteError(w, http.StatusRequestEntityTooLarge, fmt.Errorf("reading the request body (at most %d bytes): %w", maxBody, err))
		return
	}
	body = p.pin(r, body)
	members, err := p.members(r, body)
	if err != nil {
		daemon.WriteError(w, http.StatusBadGateway, err)
		return
	}
	var errs []error
	for i, m := range members {
		resp, cancel, err := p.send(r, m, body)
		if err != nil {
			errs = append(errs, err)
			if r.Context().Err() != nil {
				return // the client left
			}
			if rotation(r) && !client.NotSent(err) {
				// It may have been served: a second member would issue
				// another token (see client.RotateToken).
				daemon.WriteError(w, http.StatusBadGateway, fmt.Errorf("%w (a token rotation is not sent to a second member once one may have taken it: check with the current token)", err))
				return
			}
			p.log.Debug("member did not answer; trying the next", "peer", m, "err", err)
			continue
		}
		p.client.NoteVersion(resp.Header.Get(api.HeaderRingVersion))
		if unavailable(resp.StatusCode) && i < len(members)-1 && !rotation(r) {
			errs = append(errs, fmt.Errorf("%s %s on %s: %s", r.Method, r.URL.Path, m, resp.Status))
			resp.Body.Close()
			cancel()
			continue
		}
		p.copyResponse(w, resp)
		cancel()
		return
	}
	daemon.WriteError(w, http.StatusBadGateway, fmt.Errorf("no member answered %s %s: %w", r.Method, r.URL.Path, errors.Join(errs...)))
}

// rotation reports a token rotation, which the proxy sends on to
// another member only when it could not connect to the first.
func rotation(r *http.Request) bool {
	return r.Method == http.MethodPost && strings.HasPrefix(r.URL.Path, "/v1/users/") && strings.HasSuffix(r.URL.Path, "/tokens")
}

// unavailable reports answers that say a member cannot serve a request
// now, where another member may.
func unavailable(code int) bool {
	return code == http.StatusBadGateway || code == http.StatusServiceUnavailable || code == http.StatusGatewayTimeout
}

// pin gives a new post its id and a new user its token when the client
// did not choose them, so the request is the same request on every
// member it is sent to.
func (p *Proxy) pin(r *http.Request, body []byte) []byte {
	if r.Method != http.MethodPost {
		return body
	}
	var fields map[string]json.RawMessage
	if json.Unmarshal(body, &fields) != nil || fields == nil {
		return body // the member answers what is wrong with it
	}
	var key, value string
	switch {
	case r.URL.Path == "/v1/users":
		key, value = "token", p.client.NewToken()
	case strings.HasPrefix(r.URL.Path, "/v1/users/") && strings.HasSuffix(r.URL.Path, "/posts"):
		key, value = "id", p.client.NewPostID()
	default:
		return body
	}
	if _, ok := fields[key]; ok {
		return body
	}
	fields[key], _ = json.Marshal(value)
	b, err := json.Marshal(fields)
	if err != nil {
		return body
	}
	return b
}

// members lists the members to try for r: the preference list of its
// user (from the path, or the body of POST /v1/users), then the rest of
// the ring, any of which routes the request itself.
func (p *Proxy) members(r *http.Request, body []byte) ([]string, error) {
	rg, err := p.client.Ring(r.Context())
	if err != nil {
		return nil, fmt.Errorf("learning the ring: %w", err)
	}
	name := userOf(r, body)
	var out []string
	if name != "" {
		out = rg.Preference(nil, name)
	}
	for _, m := range rg.Members() {
		if !slices.Contains(out, m) {
			out = append(out, m)
		}
	}
	return out, nil
}

// userOf returns the user a request is about, "" when none.
func userOf(r *http.Request, body []byte) string {
	if rest, ok := strings.CutPrefix(r.URL.Path, "/v1/users/"); ok {
		name, _, _ := strings.Cut(rest, "/")
		if feed.ValidName(name) == nil {
			return name
		}
		return ""
	}
	if r.URL.Path == "/v1/users" && r.Method == http.MethodPost {
		var req api.CreateUserRequest
		if json.Unmarshal(body, &req) == nil && feed.ValidName(req.Name) == nil {
			return req.Name
		}
	}
	return ""
}

// send sends r to member; the member has attemptTimeout to answer.
// The caller calls cancel once it is done with the answer.
func (p *Proxy) send(r *http.Request, member string, body []byte) (*http.Response, context.CancelFunc, error) {
	ctx, cancel := context.WithCancel(r.Context())
	timer := time.AfterFunc(attemptTimeout, cancel)
	out, err := http.NewRequestWithContext(ctx, r.Method, p.client.Scheme()+"://"+member+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		timer.Stop()
		cancel()
		return nil, nil, fmt.Errorf("building the request to %s: %w", member, err)
	}
	if len(body) == 0 {
		out.Body = http.NoBody
	}
	out.Header = r.Header.Clone()
	for _, h := range hopHeaders {
		out.Header.Del(h)
	}
	out.Header.Del("X-Forwarded-For")
	out.ContentLength = int64(len(body))
	resp, err := p.tr.RoundTrip(out)
	late := !timer.Stop()
	if err != nil {
		cancel()
		if late {
			return nil, nil, fmt.Errorf("%s %s on %s: no answer within %v", r.Method, r.URL.Path, member, attemptTimeout)
		}
		return nil, nil, fmt.Errorf("%s %s on %s: %w", r.Method, r.URL.Path, member, err)
	}
	return resp, cancel, nil
}

// copyResponse passes resp back, flushing every read of a live stream
// at once. A stream outlives the listener's write timeout: its write
// deadline moves on at each write, so only a client that takes nothing
// for a write timeout is cut off.
func (p *Proxy) copyResponse(w http.ResponseWriter, resp *http.Response) {
	defer resp.Body.Close()
	h := w.Header()
	for k, vs := range resp.Header {
		h[k] = vs
	}
	for _, k := range hopHeaders {
		h.Del(k)
	}
	w.WriteHeader(resp.StatusCode)
	stream := strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream")
	rc := http.NewResponseController(w)
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		if n > 0 {
			if stream {
				rc.SetWriteDeadline(time.Now().Add(p.bounds.WriteTimeout))
			}
			if _, werr := w.Write(buf[:n]); werr != nil {
				return
			}
			if stream {
				if err := rc.Flush(); err != nil {
					return
				}
			}
		}
		if err != nil {
			return
		}
	}
}

// Listen binds addr; Addr reports the bound address.
func (p *Proxy) Listen(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("proxy listener on %s: %w", addr, err)
	}
	p.ln = ln
	p.srv = p.bounds.Server(p, slog.NewLogLogger(p.log.Handler(), slog.LevelWarn))
	return nil
}

// Addr is the bound address, after Listen.
func (p *Proxy) Addr() net.Addr { return p.ln.Addr() }

// shutdownGrace bounds a graceful stop; live streams are cut after it.
const shutdownGrace = 5 * time.Second

// Serve serves until ctx is done, then shuts down within shutdownGrace.
func (p *Proxy) Serve(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- p.srv.Serve(p.ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("proxy listener: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
	defer cancel()
	err := p.srv.Shutdown(sctx)
	if err != nil {
		p.srv.Close() // live streams do not end by themselves
	}
	<-errc
	return nil
}
