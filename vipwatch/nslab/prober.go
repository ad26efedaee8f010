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

// Prober sends one HTTP request on a fresh TCP connection to an
// address every period from inside a namespace, and records each
// answer. Use StartProber; its methods are safe for concurrent use.
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
	ctx, cancel := context.WithCancel(ctx)
	p := &Prober{answers: map[string]int{}, start: time.Now(), stop: cancel, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		tick := time.NewTicker(period)
		defer tick.Stop()
		for range limit {
			var node string
			err := l.Do(ns, func() error {
				var err error
				node, err = probeHTTP(addr, timeout)
				return err
			})
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
