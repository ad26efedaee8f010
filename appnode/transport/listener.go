package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"
)

// handshakeTimeout bounds a connection's first byte and TLS handshake,
// as the API's ReadHeaderTimeout bounds its request headers.
const handshakeTimeout = 5 * time.Second

// recordTypeHandshake is the first byte of a TLS connection (a
// handshake record); no HTTP request starts with it.
const recordTypeHandshake = 0x16

// errAPIPlain refuses a TLS client hello for anything but members on a
// listener whose API is plain HTTP.
var errAPIPlain = errors.New("this listener serves its API over plain HTTP: TLS is for members only")

// Listener is the API port's listener: it carries the API, over TLS
// when it has a certificate (else plain HTTP), and member traffic, over
// TLS always (MemberTLS). When the API is plain HTTP a connection is
// told apart by its first byte. The TLS handshake is made here, before
// Accept returns the connection, so that a member refused for another
// cluster secret is logged with its address. It is safe for concurrent
// use.
type Listener struct {
	inner  net.Listener
	member *MemberTLS // nil: no member TLS
	api    *tls.Config
	log    *slog.Logger

	conns     chan net.Conn
	done      chan struct{}
	closeOnce sync.Once
	startOnce sync.Once
	mu        sync.Mutex // guards err
	err       error      // why the inner listener stopped
}

// NewListener returns a listener on inner for the API and member
// traffic. apiCert gives the API's certificate (certs.Pair's
// GetCertificate); nil means the API is plain HTTP. member may be nil
// (no member TLS: only the API's TLS, if any).
func NewListener(inner net.Listener, member *MemberTLS, apiCert func(*tls.ClientHelloInfo) (*tls.Certificate, error), log *slog.Logger) *Listener {
	if log == nil {
		log = slog.Default()
	}
	l := &Listener{inner: inner, member: member, log: log.With("subsystem", "transport"),
		conns: make(chan net.Conn), done: make(chan struct{})}
	if apiCert != nil {
		l.api = &tls.Config{
			MinVersion:     tls.VersionTLS12,
			GetCertificate: apiCert,
			NextProtos:     []string{"h2", "http/1.1"},
		}
	}
	return l
}

// Accept returns the next connection, its TLS handshake (if any) done.
func (l *Listener) Accept() (net.Conn, error) {
	l.startOnce.Do(func() { go l.acceptLoop() })
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		l.mu.Lock()
		defer l.mu.Unlock()
		return nil, l.err
	}
}

// Close closes the listener; connections in their handshake are closed
// when it ends.
func (l *Listener) Close() error {
	err := l.inner.Close()
	l.stop(net.ErrClosed)
	return err
}

func (l *Listener) stop(err error) {
	l.closeOnce.Do(func() {
		l.mu.Lock()
		l.err = err
		l.mu.Unlock()
		close(l.done)
	})
}

// Addr is the listener's address.
func (l *Listener) Addr() net.Addr { return l.inner.Addr() }

// TLS reports whether the API is served over TLS.
func (l *Listener) TLS() bool { return l.api != nil }

func (l *Listener) acceptLoop() {
	var delay time.Duration
	for {
		c, err := l.inner.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				l.stop(err)
				return
			}
			// Out of file descriptors and the like: wait, as
			// net/http's Serve does, rather than spin.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			l.log.Warn("accepting a connection", "op", "accept", "err", err, "retry_in", delay.Seconds())
			select {
			case <-time.After(delay):
			case <-l.done:
				return
			}
			continue
		}
		delay = 0
		go l.handshake(c)
	}
}

// handshake sorts a new connection out and hands it to Accept.
func (l *Listener) handshake(raw net.Conn) {
	raw.SetDeadline(time.Now().Add(handshakeTimeout))
	conn := raw
	if l.api == nil {
		var first [1]byte
		if _, err := io.ReadFull(raw, first[:]); err != nil {
			raw.Close()
			return
		}
		conn = &sniffed{Conn: raw, first: first[0], unread: true}
		if first[0] != recordTypeHandshake || l.member == nil {
			raw.SetDeadline(time.Time{})
			l.deliver(conn)
			return
		}
	}
	var sni string
	tc := tls.Server(conn, &tls.Config{GetConfigForClient: func(hi *tls.ClientHelloInfo) (*tls.Config, error) {
		sni = hi.ServerName
		if sni == MemberServerName && l.member != nil {
			return l.member.ServerConfig(), nil
		}
		if l.api == nil {
			return nil, errAPIPlain
		}
		return l.api, nil
	}})
	ctx, cancel := context.WithTimeout(context.Background(), handshakeTimeout)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		var re tls.RecordHeaderError
		switch {
		case errors.As(err, &re) && re.Conn != nil:
			// Plain HTTP to the TLS API: say so, as net/http would.
			io.WriteString(re.Conn, "HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n")
		case sni == MemberServerName && l.member != nil:
			if err = l.member.HandshakeFailed(raw.RemoteAddr().String(), err); !errors.Is(err, ErrClusterMismatch) {
				l.log.Warn("member TLS handshake failed", "op", "tls", "peer", raw.RemoteAddr().String(), "err", err)
			}
		default:
			l.log.Debug("TLS handshake failed", "op", "tls", "peer", raw.RemoteAddr().String(), "err", err)
		}
		raw.Close()
		return
	}
	raw.SetDeadline(time.Time{})
	l.deliver(tc)
}

func (l *Listener) deliver(c net.Conn) {
	select {
	case l.conns <- c:
	case <-l.done:
		c.Close()
	}
}

// sniffed is a connection whose first byte was read to tell TLS from
// plain HTTP; it reads that byte again first.
type sniffed struct {
	net.Conn
	first  byte
	unread bool
}

// CloseWrite half-closes the connection, as net.TCPConn does.
func (s *sniffed) CloseWrite() error {
	if cw, ok := s.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

func (s *sniffed) Read(b []byte) (int, error) {
	if s.unread && len(b) > 0 {
		b[0], s.unread = s.first, false
		if len(b) == 1 {
			return 1, nil
		}
		n, err := s.Conn.Read(b[1:])
		if n > 0 {
			err = nil // the rest comes with the next Read
		}
		return n + 1, err
	}
	return s.Conn.Read(b)
}
