package transport

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ringfront/ringfront/appnode/transport/link"
)

// Forwarding a client request to the member that answers for its user:
// every rule of it is here, whichever way the request travels (a link,
// or HTTP for streams). The forwarder sends the client's request with
//
//   - X-Forwarded-For (the client's address appended to any it carried),
//     X-Forwarded-Host and X-Forwarded-Proto;
//   - HeaderClient, the client's address (ClientAddr): the peer address
//     of the member that took the request from the client, passed on
//     unchanged by any member after it;
//   - HeaderHops, so members whose rings disagree cannot bounce it for
//     ever; HeaderUnreachable, the members to pass over (the forwarder
//     could not reach them); HeaderFallback when the member is asked to
//     answer from what it holds (a user still moving to the forwarder);
//   - HeaderBudget, Plan.Timeout: how long the forwarder waits, which
//     the member's own calls to others share;
//   - HeaderClock, this member's clock;
//   - none of the client's own hop-by-hop or member headers, which a
//     client could otherwise forge.
//
// A forward that gets nothing back from the member (no answer within
// Plan.Timeout, a refused or broken connection, a link that went away
// before the request was read) writes nothing and sets Plan.Retry: the
// caller sends it to the next member (a forward is idempotent, see the
// server's pinning). A client that went away gets 499 (nobody reads it).

// Plan is one forward: where to, with what, and what came of it.
type Plan struct {
	// To is the member asked.
	To string
	// Hops, Skip and Fallback are sent as HeaderHops, HeaderUnreachable
	// and HeaderFallback.
	Hops     int
	Skip     []string
	Fallback bool
	// Body is the client's body, read whole (so it can go to a second
	// member).
	Body []byte
	// Timeout bounds the wait for the member's answer (its headers, for
	// a stream, which may then run as long as it likes).
	Timeout time.Duration

	// Retry is set when nothing came back from To, and Why says why;
	// Slow when it did not answer in time (as opposed to no
	// connection).
	Retry bool
	Why   string
	Slow  bool

	client context.Context // the client's own request context
	header http.Header     // what is sent
	timer  *time.Timer     // HTTP forwards: the timeout until the headers
	late   atomic.Bool     // the timer fired
}

// Forwarded reads what a member that forwarded r said about it: the hop
// count, the members to pass over, and whether to answer from what this
// member holds. A request that does not come from a member (FromMember)
// says nothing.
func Forwarded(r *http.Request) (hops int, skip []string, fallback bool) {
	if !FromMember(r) {
		return 0, nil, false
	}
	hops, _ = strconv.Atoi(r.Header.Get(HeaderHops))
	if v := r.Header.Get(HeaderUnreachable); v != "" {
		skip = strings.Split(v, ",")
	}
	return hops, skip, r.Header.Get(HeaderFallback) != ""
}

// Budget is how long the member that forwarded r waits for this
// member's answer (HeaderBudget), or 0 when r was not forwarded or says
// nothing.
func Budget(r *http.Request) time.Duration {
	if !FromMember(r) {
		return 0
	}
	ms, err := strconv.ParseInt(r.Header.Get(HeaderBudget), 10, 64)
	if err != nil || ms <= 0 {
		return 0
	}
	return time.Duration(min(ms, int64(CallTimeout/time.Millisecond))) * time.Millisecond
}

// Forward sends r to plan.To and copies the answer to w: over a link
// when there is one, else (streams, members without links) over HTTP.
// It sets plan.Retry, having written nothing, when the member did not
// answer in time or could not be reached.
func (t *Transport) Forward(w http.ResponseWriter, r *http.Request, plan *Plan) {
	plan.client = r.Context()
	plan.header = t.forwardHeader(r, plan)
	if t.links.Load() && !Streaming(r) {
		ctx, cancel := context.WithTimeout(r.Context(), plan.Timeout)
		defer cancel()
		head := link.EncodeRequest(r.Method, r.URL.RequestURI(), r.RemoteAddr, plan.header)
		payload, err := t.pool.RoundTrip(ctx, plan.To, head, plan.Body)
		if err == nil {
			if err = t.writeAnswer(w, payload); err == nil {
				return
			}
		}
		if !errors.Is(err, link.ErrUnsupported) {
			t.forwardFailed(w, plan, err)
			return
		}
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	plan.timer = time.AfterFunc(plan.Timeout, func() { plan.late.Store(true); cancel() })
	defer plan.timer.Stop()
	// The answer's clock replaces it (ModifyResponse), or the error's.
	w.Header().Del(HeaderClock)
	t.proxy.ServeHTTP(w, r.WithContext(context.WithValue(ctx, planKey{}, plan)))
}

// forwardHeader is the header a forward of r sends (see the top of the
// file).
func (t *Transport) forwardHeader(r *http.Request, plan *Plan) http.Header {
	h := make(http.Header, len(r.Header)+8)
	for k, vs := range r.Header {
		if !link.HopByHop(k) && !memberHeader(k) {
			h[k] = vs
		}
	}
	clientIP, _, _ := net.SplitHostPort(r.RemoteAddr)
	if prior := r.Header["X-Forwarded-For"]; len(prior) > 0 {
		clientIP = strings.Join(prior, ", ") + ", " + clientIP
	}
	h.Set("X-Forwarded-For", clientIP)
	h.Set("X-Forwarded-Host", r.Host)
	proto := "http"
	if p := r.Header.Get("X-Forwarded-Proto"); FromMember(r) && p != "" {
		proto = p // forwarded again: as the first member heard it
	} else if r.TLS != nil {
		proto = "https"
	}
	h.Set("X-Forwarded-Proto", proto)
	if a := ClientAddr(r); a.IsValid() {
		h.Set(HeaderClient, a.String())
	}
	h.Set(HeaderHops, strconv.Itoa(plan.Hops))
	h.Set(HeaderBudget, strconv.FormatInt(plan.Timeout.Milliseconds(), 10))
	h.Set(HeaderClock, t.stamp())
	if plan.Fallback {
		h.Set(HeaderFallback, "1")
	}
	if len(plan.Skip) > 0 {
		h.Set(HeaderUnreachable, strings.Join(plan.Skip, ","))
	}
	return h
}

// memberHeader reports headers that only a forwarder sets, never passed
// on from the client's request.
func memberHeader(k string) bool {
	switch k {
	case HeaderCluster, HeaderHops, HeaderUnreachable, HeaderFallback, HeaderBudget, HeaderClock, HeaderClient, "Content-Length",
		"X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto":
		return true
	}
	return false
}

// answerHeader reports the member's answer headers that the forwarder
// does not pass on: it set its own already.
func answerHeader(k string) bool {
	return k == HeaderOwner || k == HeaderRingVersion || k == HeaderClock || k == "Content-Length"
}

// forwardFailed handles a forward that got nothing back (see Plan).
func (t *Transport) forwardFailed(w http.ResponseWriter, plan *Plan, err error) {
	t.metrics.forwardErrors.Inc()
	if plan.client.Err() != nil {
		// The client went away; nobody reads this answer.
		w.WriteHeader(499)
		return
	}
	plan.Retry = true
	switch {
	case plan.late.Load() || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, errLate):
		plan.Why = fmt.Sprintf("did not answer within %v", plan.Timeout)
		plan.Slow = true
	case Refused(err):
		plan.Why = "refused the connection (not running)"
	case errors.Is(err, link.ErrUnsent):
		plan.Why = "was shutting down"
	default:
		plan.Why = "connection failed: " + err.Error()
	}
}

// Streaming reports requests whose answer is a stream: they are
// forwarded over HTTP.
func Streaming(r *http.Request) bool {
	return strings.HasSuffix(r.URL.Path, "/stream") || strings.Contains(r.Header.Get("Accept"), "text/event-stream")
}

// ---- over a link ----

// writeAnswer writes an answer frame to the client.
func (t *Transport) writeAnswer(w http.ResponseWriter, payload []byte) error {
	code, h, body, err := link.DecodeAnswer(payload)
	if err != nil {
		return err
	}
	t.observe(h.Get(HeaderClock))
	out := w.Header()
	for k, vs := range h {
		if !answerHeader(k) {
			out[k] = vs
		}
	}
	// This member's clock is past the answer's now: what the client
	// sends back next is later than the change it was told about (a
	// 409's stored edge, say).
	out.Set(HeaderClock, t.stamp())
	out.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(code)
	w.Write(body)
	return nil
}

// ---- over HTTP ----

type planKey struct{}

// errLate is the proxy's error for an answer that came after the
// forward's timeout.
var errLate = errors.New("answer after the member timeout")

// answered stops an HTTP forward's timer when the member's headers
// arrive; false means the timer fired first and the answer is too late.
func (p *Plan) answered() bool { return p.timer == nil || p.timer.Stop() }

func (t *Transport) newProxy(rt http.RoundTripper) *httputil.ReverseProxy {
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			plan := pr.In.Context().Value(planKey{}).(*Plan)
			pr.SetURL(&url.URL{Scheme: t.scheme, Host: plan.To})
			body := plan.Body
			pr.Out.Body = io.NopCloser(bytes.NewReader(body))
			pr.Out.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
			pr.Out.ContentLength = int64(len(body))
			if len(body) == 0 {
				pr.Out.Body, pr.Out.GetBody = http.NoBody, nil
			}
			pr.Out.Header = plan.header.Clone()
			pr.Out.Header.Set(HeaderCluster, Sign(t.key(), t.now(), pr.Out.Method, pr.Out.URL.RequestURI(), body))
		},
		BufferPool: bufferPool{},
		Transport:  rt,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			w.Header().Set(HeaderClock, t.stamp())
			t.forwardFailed(w, r.Context().Value(planKey{}).(*Plan), err)
		},
		ModifyResponse: func(resp *http.Response) error {
			// The member answered in time: from here on the answer may
			// take as long as it takes (a stream).
			if !resp.Request.Context().Value(planKey{}).(*Plan).answered() {
				return errLate
			}
			t.observe(resp.Header.Get(HeaderClock))
			for k := range resp.Header {
				if answerHeader(k) && k != "Content-Length" {
					resp.Header.Del(k)
				}
			}
			resp.Header.Set(HeaderClock, t.stamp()) // past the answer's, as over a link
			return nil
		},
	}
}

// bufferPool recycles the buffers that forwarded answers are copied
// through; without it every forward allocates 32 KiB.
type bufferPool struct{}

var buffers = sync.Pool{New: func() any { return make([]byte, 32<<10) }}

func (bufferPool) Get() []byte  { return buffers.Get().([]byte) }
func (bufferPool) Put(b []byte) { buffers.Put(b) }
