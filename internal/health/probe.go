package health

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Result is the outcome of one probe.
type Result struct {
	OK       bool          // the probe passed
	Err      string        // why it failed; empty when OK
	Status   int           // HTTP status, 0 for tcp or when none arrived
	Message  string        // exec checks: the first line of the command's output
	Duration time.Duration // how long the probe took
	At       time.Time     // when the probe started
}

// Prober runs one probe of a target. Implementations must return when ctx
// is done; the Monitor gives each probe a context bounded by the check's
// timeout.
type Prober interface {
	Probe(ctx context.Context, t Target) Result
}

// bodyLimit bounds how much of an HTTP response a probe reads: enough for
// any status page, small enough that a misbehaving target cannot make the
// checker buffer much.
const bodyLimit = 64 << 10

// NetProber probes over the network: a TCP connect, or an HTTP(S) GET;
// or it runs a command (exec, see exec.go). It is safe for concurrent use.
type NetProber struct {
	dialer   net.Dialer
	plain    *http.Transport
	verify   *http.Transport
	noVerify *http.Transport
}

// NewNetProber returns a prober that opens a fresh connection for every
// probe, so a listener that died is noticed at once rather than hidden
// behind a kept-alive connection.
func NewNetProber() *NetProber {
	p := &NetProber{}
	mk := func(tc *tls.Config) *http.Transport {
		return &http.Transport{
			DialContext:            p.dialer.DialContext,
			DisableKeepAlives:      true,
			TLSClientConfig:        tc,
			TLSHandshakeTimeout:    0, // bounded by the probe's context
			MaxResponseHeaderBytes: bodyLimit,
			Proxy:                  nil,
		}
	}
	p.plain = mk(nil)
	p.verify = mk(&tls.Config{MinVersion: tls.VersionTLS12})
	p.noVerify = mk(&tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: true})
	return p
}

// Probe implements Prober.
func (p *NetProber) Probe(ctx context.Context, t Target) Result {
	start := time.Now()
	res := Result{At: start}
	var err error
	switch t.Check.Type {
	case "tcp":
		err = p.probeTCP(ctx, t)
	case "http", "https":
		res.Status, err = p.probeHTTP(ctx, t)
	case "exec":
		res.Message, err = p.probeExec(ctx, t)
	default:
		err = fmt.Errorf("unknown check type %q", t.Check.Type)
	}
	res.Duration = time.Since(start)
	if err != nil {
		res.Err = err.Error()
	} else {
		res.OK = true
	}
	return res
}

func (p *NetProber) probeTCP(ctx context.Context, t Target) error {
	addr := netip.AddrPortFrom(t.Addr, uint16(t.Check.Port)).String()
	c, err := p.dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return cleanNetErr(err)
	}
	return c.Close()
}

func (p *NetProber) probeHTTP(ctx context.Context, t Target) (int, error) {
	c := &t.Check
	hostport := netip.AddrPortFrom(t.Addr, uint16(c.Port)).String()
	url := c.Type + "://" + hostport + c.Path
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, fmt.Errorf("building request for %s: %w", url, err)
	}
	req.Header.Set("User-Agent", "ringfront-health/1")
	tr := p.plain
	if c.Type == "https" {
		tr = p.verify
		if c.InsecureSkipVerify {
			tr = p.noVerify
		}
	}
	if c.Host != "" {
		req.Host = c.Host
		if c.Type == "https" {
			// The server name must follow the Host header; clone the
			// transport's TLS config for this request only.
			tc := tr.TLSClientConfig.Clone()
			tc.ServerName = hostOnly(c.Host)
			tr = tr.Clone()
			tr.TLSClientConfig = tc
			defer tr.CloseIdleConnections()
		}
	}
	resp, err := tr.RoundTrip(req)
	if err != nil {
		return 0, cleanNetErr(err)
	}
	defer resp.Body.Close()
	if !c.accepts(resp.StatusCode) {
		io.Copy(io.Discard, io.LimitReader(resp.Body, bodyLimit))
		return resp.StatusCode, fmt.Errorf("status %d not in %v", resp.StatusCode, c.Expect)
	}
	if c.Body == "" {
		io.Copy(io.Discard, io.LimitReader(resp.Body, bodyLimit))
		return resp.StatusCode, nil
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, bodyLimit))
	if err != nil {
		return resp.StatusCode, fmt.Errorf("reading body: %w", cleanNetErr(err))
	}
	if !strings.Contains(string(body), c.Body) {
		return resp.StatusCode, fmt.Errorf("body does not contain %q", c.Body)
	}
	return resp.StatusCode, nil
}

func hostOnly(h string) string {
	if host, _, err := net.SplitHostPort(h); err == nil {
		return host
	}
	return h
}

// cleanNetErr shortens the error texts that end up in status tables.
func cleanNetErr(err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return errors.New("timeout")
	}
	var ne *net.OpError
	if errors.As(err, &ne) && ne.Err != nil {
		return fmt.Errorf("%s: %w", ne.Op, ne.Err)
	}
	return err
}

// String renders a result for logs and status tables.
func (r Result) String() string {
	if r.At.IsZero() {
		return "never checked"
	}
	s := "ok"
	if !r.OK {
		s = "fail: " + r.Err
	}
	if r.Status != 0 && r.OK {
		s += " (" + strconv.Itoa(r.Status) + ")"
	}
	if r.Message != "" {
		s += ": " + r.Message
	}
	return s
}
