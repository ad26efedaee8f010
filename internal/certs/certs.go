package certs

import (
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/ringfront/ringfront/internal/config"
)

// Files names a certificate and key pair and the config keys (or flags)
// that name them, for errors an operator can act on.
type Files struct {
	Cert, Key       string // paths
	CertKey, KeyKey string // such as tls.cert_file and tls.key_file
}

// Load reads and checks a certificate chain (PEM) and its private key
// (PEM, read as a secret): the key must match the certificate, and the
// certificate must be valid now. Errors are *config.FieldError naming
// the key of the file at fault.
func Load(f Files, now time.Time) (*tls.Certificate, error) {
	certPEM, err := os.ReadFile(config.CredentialPath(f.Cert))
	if err != nil {
		return nil, config.Errorf(f.CertKey, f.Cert, "cannot be read: %v", err)
	}
	keyPEM, err := config.Secret(f.KeyKey, f.Key)
	if err != nil {
		return nil, err
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, config.Errorf(f.CertKey, f.Cert, "and %s (%s) are not a certificate and its key: %v", f.KeyKey, f.Key, err)
	}
	leaf := cert.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, config.Errorf(f.CertKey, f.Cert, "holds a certificate that cannot be parsed: %v", err)
		}
		cert.Leaf = leaf
	}
	switch {
	case now.After(leaf.NotAfter):
		return nil, config.Errorf(f.CertKey, f.Cert, "holds a certificate that expired on %s", leaf.NotAfter.UTC().Format(time.RFC3339))
	case now.Before(leaf.NotBefore):
		return nil, config.Errorf(f.CertKey, f.Cert, "holds a certificate that is not valid before %s", leaf.NotBefore.UTC().Format(time.RFC3339))
	}
	return &cert, nil
}

// checkEvery bounds how often GetCertificate looks at the files.
const checkEvery = time.Second

// Pair is a certificate and key served from files; see the package doc.
// It is safe for concurrent use.
type Pair struct {
	log *slog.Logger
	now func() time.Time

	mu      sync.Mutex // guards the rest
	files   Files
	cert    *tls.Certificate
	seen    [2]fileStamp // the files as last read, or tried
	checked time.Time    // when the files were last looked at
}

// fileStamp tells a changed file: a new file (rename into place) or a
// rewrite changes its modification time, size or inode.
type fileStamp struct {
	mod  time.Time
	size int64
	ino  uint64
}

func stampOf(path string) fileStamp {
	fi, err := os.Stat(config.CredentialPath(path))
	if err != nil {
		return fileStamp{}
	}
	st := fileStamp{mod: fi.ModTime(), size: fi.Size()}
	if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
		st.ino = sys.Ino
	}
	return st
}

// New loads f (see Load). now is the clock certificates are checked
// against (nil: time.Now); log hears about certificates replaced, or
// refused, when the files change.
func New(f Files, log *slog.Logger, now func() time.Time) (*Pair, error) {
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.Default()
	}
	p := &Pair{log: log, now: now}
	if err := p.Reload(f); err != nil {
		return nil, err
	}
	return p, nil
}

// Reload reads f (the same files again, or others) and serves them from
// the next handshake on. When they are bad it returns why and the
// current certificate stays.
func (p *Pair) Reload(f Files) error {
	stamps := [2]fileStamp{stampOf(f.Cert), stampOf(f.Key)}
	cert, err := Load(f, p.now())
	p.mu.Lock()
	defer p.mu.Unlock()
	p.checked = p.now()
	if err != nil {
		if p.cert != nil && f == p.files {
			p.seen = stamps // not tried again until the files change again
		}
		return err
	}
	p.files, p.cert, p.seen = f, cert, stamps
	return nil
}

// Certificate is the certificate served now.
func (p *Pair) Certificate() *tls.Certificate {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cert
}

// GetCertificate is for tls.Config.GetCertificate: the current
// certificate, after reading the files again if they changed.
func (p *Pair) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	p.mu.Lock()
	now := p.now()
	if d := now.Sub(p.checked); d >= 0 && d < checkEvery {
		defer p.mu.Unlock()
		return p.cert, nil
	}
	p.checked = now
	f := p.files
	changed := [2]fileStamp{stampOf(f.Cert), stampOf(f.Key)} != p.seen
	p.mu.Unlock()
	if changed {
		if err := p.Reload(f); err != nil {
			p.log.Error("certificate files changed but cannot be used; serving the previous certificate", "op", "tls", "err", err)
		} else {
			p.log.Info("certificate files changed: serving the new certificate", "op", "tls", "cert", f.Cert,
				"not_after", p.Certificate().Leaf.NotAfter.UTC().Format(time.RFC3339))
		}
	}
	return p.Certificate(), nil
}
