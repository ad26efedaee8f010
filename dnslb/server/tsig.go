package server

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"hash"
	"strings"
	"sync/atomic"

	"github.com/miekg/dns"

	"github.com/ringfront/ringfront/dnslb/config"
)

// tsigKeys is a dns.TsigProvider over the configured keys that a reload
// can replace while TCP connections are being served.
type tsigKeys struct {
	keys atomic.Pointer[map[string]config.TSIGKey] // by lower-case name
}

func (p *tsigKeys) set(cfg *config.Config) {
	m := make(map[string]config.TSIGKey, len(cfg.TSIGKeys))
	for _, k := range cfg.TSIGKeys {
		m[k.Name] = k
	}
	p.keys.Store(&m)
}

// Generate implements dns.TsigProvider.
func (p *tsigKeys) Generate(msg []byte, t *dns.TSIG) ([]byte, error) {
	m := p.keys.Load()
	if m == nil {
		return nil, dns.ErrSecret
	}
	k, ok := (*m)[strings.ToLower(t.Hdr.Name)]
	if !ok {
		return nil, dns.ErrSecret
	}
	// The algorithm is the key's, not whatever the message claims.
	if dns.CanonicalName(t.Algorithm) != k.AlgorithmName() {
		return nil, dns.ErrKeyAlg
	}
	secret, err := base64.StdEncoding.DecodeString(k.Secret)
	if err != nil {
		return nil, dns.ErrSecret
	}
	var h hash.Hash
	switch k.AlgorithmName() {
	case dns.HmacSHA256:
		h = hmac.New(sha256.New, secret)
	case dns.HmacSHA384:
		h = hmac.New(sha512.New384, secret)
	case dns.HmacSHA512:
		h = hmac.New(sha512.New, secret)
	default:
		return nil, dns.ErrKeyAlg
	}
	h.Write(msg)
	return h.Sum(nil), nil
}

// Verify implements dns.TsigProvider.
func (p *tsigKeys) Verify(msg []byte, t *dns.TSIG) error {
	want, err := p.Generate(msg, t)
	if err != nil {
		return err
	}
	got, err := hex.DecodeString(t.MAC)
	if err != nil || !hmac.Equal(want, got) {
		return dns.ErrSig
	}
	return nil
}

func (p *tsigKeys) lookup(name string) (config.TSIGKey, bool) {
	m := p.keys.Load()
	if m == nil || name == "" {
		return config.TSIGKey{}, false
	}
	k, ok := (*m)[name]
	return k, ok
}
