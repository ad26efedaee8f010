package nslab

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// Prober sends one request to an address every period from inside a
// namespace, and records each answer: an HTTP request on a fresh TCP
// connection (StartProber) or a UDP datagram to the responder's echo
// port (StartUDPProber). Its methods are safe for concurrent use.
type Prober struct {
	mu       sync.Mutex // guards the fields below
	sent     int
	failures []string       // "t=1.234s: why", in order
	answers  map[string]int // answering node -> count
	order    []string       // nodes in the order they first answered
	start    time.Time

	stop func()
	done chan struct{}
}

// StartProber probes http://addr/ from namespace ns every period, with
// a per-probe timeout, until Stop or ctx is done. A probe fails if no
// connection, no complete answer or no node name comes back in time.
// At most limit probes are sent.
func (l *Lab) StartProber(ctx context.Context, ns string, addr netip.Addr, period, timeout time.Duration, limit int) *Prober {
	return startProber(ctx, period, limit, func(int) (string, error) {
		var node string
		err := l.Do(ns, func() error {
			var err error
			node, err = probeHTTP(addr, timeout)
			return err
		})
		return node, err
	}, nil)
}

// StartUDPProber is StartProber with a datagram to the responder's
// echo port per probe, all from one socket: a probe fails if the
// matching answer does not come back within timeout. Unlike an HTTP
// request it has no connection that a move of the VIP can cut in the
// middle, so it measures exactly whether the VIP answered throughout.
func (l *Lab) StartUDPProber(ctx context.Context, ns string, addr netip.Addr, period, timeout time.Duration, limit int) (*Prober, error) {
	// Not a connected socket: the responder listens on the wildcard
	// address, so its answers come from the machine's primary address,
	// not from the VIP.
	var conn net.PacketConn
	err := l.Do(ns, func() error {
		var err error
		conn, err = net.ListenPacket("udp", ":0")
		return err
	})
	to := net.UDPAddrFromAddrPort(netip.AddrPortFrom(addr, EchoPort))
	if err != nil {
		return nil, fmt.Errorf("opening the UDP probe socket in %s: %w", ns, err)
	}
	buf := make([]byte, 1500)
	probe := func(seq int) (string, error) {
		req := fmt.Sprintf("probe %d", seq)
		if _, err := conn.WriteTo([]byte(req), to); err != nil {
			return "", fmt.Errorf("sending: %w", err)
		}
		conn.SetReadDeadline(time.Now().Add(timeout))
		for {
			n, _, err := conn.ReadFrom(buf)
			if err != nil {
				return "", fmt.Errorf("waiting for the answer to %q: %w", req, err)
			}
			node, got, _ := strings.Cut(string(buf[:n]), " ")
			if got == req {
				return node, nil
			}
			// A late answer to an earlier probe: keep waiting.
		}
	}
	return startProber(ctx, period, limit, probe, func() { conn.Close() }), nil
}

// startProber runs probe every period, at most limit times, until ctx
// is done or Stop; then it runs closeFn (if set).
func startProber(ctx context.Context, period time.Duration, limit int, probe func(seq int) (string, error), closeFn func()) *Prober {
	ctx, cancel := context.WithCancel(ctx)
	p := &Prober{answers: map[string]int{}, start: time.Now(), stop: cancel, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		if closeFn != nil {
			defer closeFn()
		}
		tick := time.NewTicker(period)
		defer tick.Stop()
		for seq := range limit {
			node, err := probe(seq)
			p.record(node, err)
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return p
}

func probeHTTP(addr netip.Addr, timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	conn, err := net.DialTimeout("tcp", netip.AddrPortFrom(addr, HTTPPort).String(), timeout)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	conn.SetDeadline(deadline)
	if _, err := fmt.Fprintf(conn, "GET / HTTP/1.0\r\nHost: %s\r\n\r\n", addr); err != nil {
		return "", fmt.Errorf("sending request: %w", err)
	}
	r := bufio.NewReader(conn)
	status, err := r.ReadString('\n')
	if err != nil {
		return "", fmt.Errorf("reading status: %w", err)
	}
	if !strings.Contains(status, " 200 ") {
		return "", fmt.Errorf("status %q", strings.TrimSpace(status))
	}
	body := ""
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return "", fmt.Errorf("reading answer: %w", err)
		}
		if line == "\r\n" {
			break
		}
	}
	line, err := r.ReadString('\n')
	if err != nil {
		return "", fmt.Errorf("reading body: %w", err)
	}
	body = strings.TrimSpace(line)
	if body == "" {
		return "", fmt.Errorf("empty body")
	}
	return body, nil
}

func (p *Prober) record(node string, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.sent++
	if err != nil {
		p.failures = append(p.failures, fmt.Sprintf("t=%.3fs: %v", time.Since(p.start).Seconds(), err))
		return
	}
	if p.answers[node] == 0 {
		p.order = append(p.order, node)
	}
	p.answers[node]++
}

// Stop ends the probing and waits for the last probe.
func (p *Prober) Stop() {
	p.stop()
	<-p.done
}

// Result reports the probes sent, the failures (when and why), and the
// answering nodes in the order they first answered.
func (p *Prober) Result() (sent int, failures []string, order []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.sent, append([]string(nil), p.failures...), append([]string(nil), p.order...)
}

// Answers reports how many probes node answered.
func (p *Prober) Answers(node string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.answers[node]
}
