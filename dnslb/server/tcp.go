package server

import (
	"net"
	"net/netip"
	"sync"
	"time"
)

// tcpListener bounds DNS-over-TCP connections from each client address
// and the lifetime of every connection. (The total is bounded by
// netutil.LimitListener around it.)
type tcpListener struct {
	net.Listener
	perClient int
	lifetime  time.Duration
	onReject  func()

	mu   sync.Mutex // guards open
	open map[netip.Addr]int
}

func newTCPListener(ln net.Listener, perClient int, lifetime time.Duration, onReject func()) *tcpListener {
	return &tcpListener{Listener: ln, perClient: perClient, lifetime: lifetime, onReject: onReject, open: map[netip.Addr]int{}}
}

// Accept returns the next connection within its client's limit; over
// the limit, connections are closed at once.
func (l *tcpListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ap, err := netip.ParseAddrPort(c.RemoteAddr().String())
		if err != nil {
			return c, nil
		}
		ip := ap.Addr().Unmap()
		l.mu.Lock()
		if l.open[ip] >= l.perClient {
			l.mu.Unlock()
			c.Close()
			if l.onReject != nil {
				l.onReject()
			}
			continue
		}
		l.open[ip]++
		l.mu.Unlock()
		return &tcpConn{Conn: c, l: l, ip: ip, deadline: time.Now().Add(l.lifetime)}, nil
	}
}

// tcpConn caps every deadline the server sets at the connection's end of
// life, and gives its slot back on Close.
type tcpConn struct {
	net.Conn
	l        *tcpListener
	ip       netip.Addr
	deadline time.Time
	once     sync.Once
}

func (c *tcpConn) cap(t time.Time) time.Time {
	if t.IsZero() || t.After(c.deadline) {
		return c.deadline
	}
	return t
}

func (c *tcpConn) SetDeadline(t time.Time) error      { return c.Conn.SetDeadline(c.cap(t)) }
func (c *tcpConn) SetReadDeadline(t time.Time) error  { return c.Conn.SetReadDeadline(c.cap(t)) }
func (c *tcpConn) SetWriteDeadline(t time.Time) error { return c.Conn.SetWriteDeadline(c.cap(t)) }

func (c *tcpConn) Close() error {
	c.once.Do(func() {
		c.l.mu.Lock()
		if c.l.open[c.ip]--; c.l.open[c.ip] <= 0 {
			delete(c.l.open, c.ip)
		}
		c.l.mu.Unlock()
	})
	return c.Conn.Close()
}
