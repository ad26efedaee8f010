package transport

// Member TLS: every connection between members is TLS 1.3, mutually
// authenticated with certificates that need no file of their own.
//
// Every member derives the same Ed25519 key from the cluster secret
// (HKDF-SHA256, info memberCAInfo) and from it the same self-signed CA
// certificate (every field fixed, and Ed25519 signatures are
// deterministic). At start each member makes a new key and issues itself
// a leaf certificate for MemberServerName signed by that CA, valid from
// a day ago for leafLifetime and issued again every leafRenew, so a
// member that runs for months never serves an expired one. Members
// dial each other with ServerName MemberServerName, trusting only the
// derived CA, and present their leaf as client certificate; the API
// listener answers that name with the member's leaf and requires a
// client certificate from the same CA. A member with another cluster
// secret has another CA: the handshake fails both ways, and each side
// logs a line naming the other and saying that the secrets differ.
//
// The HMAC credentials of links and signed requests (sign.go, link.go)
// stay as they were: TLS adds privacy and authenticates the connection;
// they keep authenticating each request, whatever carries it.

import (
	"context"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"sync"
	"time"
)

// MemberServerName is the TLS server name of member connections: a name
// in .invalid (RFC 6761), so no public certificate can ever carry it.
const MemberServerName = "member.ringfront.invalid"

const (
	// memberCAInfo is the HKDF info string of the member CA key; a new
	// version of the derivation gets a new string.
	memberCAInfo = "ringfront appnode member CA v1"
	// leafLifetime bounds how long a stolen member key is any use;
	// leafRenew is how often a running member issues itself a new leaf,
	// and leafBackdate how far behind a peer's clock may be.
	leafLifetime = 7 * 24 * time.Hour
	leafRenew    = 24 * time.Hour
	leafBackdate = 24 * time.Hour
	// refusalLogEvery bounds the log lines about one peer's refused
	// handshakes: a member with another secret retries all the time.
	refusalLogEvery = 10 * time.Second
)

// ErrClusterMismatch is in the error of a member handshake that failed
// because the two members have different cluster secrets.
var ErrClusterMismatch = errors.New("the member's certificate is not from this cluster's CA: the cluster secret differs")

// MemberTLS holds a member's TLS credentials for member traffic: the CA
// derived from the cluster secret and the member's own leaf. It is safe
// for concurrent use.
type MemberTLS struct {
	self   string
	log    *slog.Logger
	now    func() time.Time
	caKey  ed25519.PrivateKey
	ca     *x509.Certificate
	pool   *x509.CertPool
	server *tls.Config
	client *tls.Config

	mu     sync.Mutex // guards leaf, issued and logged
	leaf   *tls.Certificate
	issued time.Time
	logged map[string]time.Time // peer: when a refusal was last logged
}

// NewMemberTLS derives the member CA from secret and issues this
// member's leaf; self names the member in its certificate. now is the
// clock (nil: time.Now).
func NewMemberTLS(secret []byte, self string, log *slog.Logger, now func() time.Time) (*MemberTLS, error) {
	if len(secret) == 0 {
		return nil, errors.New("deriving the member CA: empty cluster secret")
	}
	if log == nil {
		log = slog.Default()
	}
	if now == nil {
		now = time.Now
	}
	seed, err := hkdf.Key(sha256.New, secret, nil, memberCAInfo, ed25519.SeedSize)
	if err != nil {
		return nil, fmt.Errorf("deriving the member CA key: %w", err)
	}
	key := ed25519.NewKeyFromSeed(seed)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "ringfront appnode member CA"},
		NotBefore:             time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC),
		NotAfter:              time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC),
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("making the member CA certificate: %w", err)
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("making the member CA certificate: %w", err)
	}
	m := &MemberTLS{self: self, log: log.With("subsystem", "transport"), now: now, caKey: key, ca: ca, pool: x509.NewCertPool()}
	m.pool.AddCert(ca)
	if _, err := m.certificate(); err != nil {
		return nil, err
	}
	get := func() (*tls.Certificate, error) { return m.certificate() }
	m.server = &tls.Config{
		MinVersion:     tls.VersionTLS13,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return get() },
		ClientAuth:     tls.RequireAndVerifyClientCert,
		ClientCAs:      m.pool,
		// A link is an HTTP/1.1 upgrade: no HTTP/2 between members.
		NextProtos: []string{"http/1.1"},
		Time:       now,
	}
	m.client = &tls.Config{
		MinVersion:           tls.VersionTLS13,
		ServerName:           MemberServerName,
		RootCAs:              m.pool,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return get() },
		NextProtos:           []string{"http/1.1"},
		Time:                 now,
	}
	return m, nil
}

// certificate returns this member's leaf, issuing a new one when the
// current one is leafRenew old.
func (m *MemberTLS) certificate() (*tls.Certificate, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	if m.leaf != nil && now.Sub(m.issued) < leafRenew && !now.Before(m.issued) {
		return m.leaf, nil
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("making a member key: %w", err)
	}
	sn, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	tmpl := &x509.Certificate{
		SerialNumber: sn,
		Subject:      pkix.Name{CommonName: m.self},
		DNSNames:     []string{MemberServerName},
		NotBefore:    now.Add(-leafBackdate),
		NotAfter:     now.Add(leafLifetime),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, m.ca, pub, m.caKey)
	if err != nil {
		return nil, fmt.Errorf("issuing the member certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("issuing the member certificate: %w", err)
	}
	m.leaf = &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: priv, Leaf: leaf}
	m.issued = now
	return m.leaf, nil
}

// ServerConfig is the TLS configuration of the member side of the API
// listener (ServerName MemberServerName).
func (m *MemberTLS) ServerConfig() *tls.Config { return m.server }

// ClientConfig is the TLS configuration members dial each other with.
func (m *MemberTLS) ClientConfig() *tls.Config { return m.client }

// Dial opens a TLS connection to the member at addr. A handshake that
// fails because addr has another cluster secret is logged (naming addr)
// and its error wraps ErrClusterMismatch.
func (m *MemberTLS) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	d := net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}
	raw, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	if tc, ok := raw.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	c := tls.Client(raw, m.client)
	if err := c.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, fmt.Errorf("TLS handshake with member %s: %w", addr, m.HandshakeFailed(addr, err))
	}
	return c, nil
}

// HandshakeFailed tells a failed member handshake with peer: when it
// failed because the two have different cluster secrets it logs so
// (at most once every refusalLogEvery for one peer) and returns an
// error wrapping ErrClusterMismatch; else it returns err.
func (m *MemberTLS) HandshakeFailed(peer string, err error) error {
	var unknown x509.UnknownAuthorityError
	var op *net.OpError
	var why string
	switch {
	case errors.As(err, &unknown):
		why = "its certificate is not signed by this cluster's member CA"
	case errors.As(err, &op) && op.Op == "remote error" && refusedCertificate(op.Err):
		why = "it refused this member's certificate"
	default:
		return err
	}
	if m.shouldLog(peer) {
		m.log.Error("refused a member connection: the cluster secret differs (check cluster_secret_file on both)",
			"op", "tls", "peer", peer, "why", why)
	}
	return fmt.Errorf("%w (%s): %v", ErrClusterMismatch, why, err)
}

// refusedCertificate reports the alerts a TLS peer sends when it does
// not trust the certificate it got: crypto/tls hands a received alert
// over only as an error of an unexported type, in a *net.OpError.
func refusedCertificate(alert error) bool {
	for _, a := range []tls.AlertError{42, 48} { // bad_certificate, unknown_ca
		if alert.Error() == a.Error() {
			return true
		}
	}
	return false
}

func (m *MemberTLS) shouldLog(peer string) bool {
	if host, _, err := net.SplitHostPort(peer); err == nil {
		peer = host // a dialling peer's port changes with every try
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	if last, ok := m.logged[peer]; ok && now.Sub(last) < refusalLogEvery {
		return false
	}
	if m.logged == nil || len(m.logged) > 1024 {
		m.logged = make(map[string]time.Time) // bounded: forget the old ones
	}
	m.logged[peer] = now
	return true
}

// MemberConn reports whether r came over a TLS connection from another
// member: ServerName MemberServerName and a verified member certificate.
func MemberConn(r *http.Request) bool {
	return r.TLS != nil && r.TLS.ServerName == MemberServerName && len(r.TLS.VerifiedChains) > 0
}
