package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/ringfront/ringfront/internal/certs"
	"github.com/ringfront/ringfront/internal/config"
)

// TLSConfig serves the API over HTTPS.
type TLSConfig struct {
	// CertFile is the certificate chain (PEM) the API serves; it must
	// name every address clients reach this member at (the VIP's name,
	// and the advertised address: smart clients and redirects come to
	// it directly). Empty: the API is plain HTTP.
	CertFile string `mapstructure:"cert_file"`
	// KeyFile is its private key (PEM), read as a secret: a systemd
	// credential, or a file of mode 600 or 640.
	KeyFile string `mapstructure:"key_file"`
	// RedirectListen, when set, is a plain HTTP listener that answers
	// every request with a 308 to the same URL over HTTPS.
	RedirectListen string `mapstructure:"redirect_listen"`
}

// On reports whether the API is served over TLS.
func (t TLSConfig) On() bool { return t.CertFile != "" }

func (t TLSConfig) files() certs.Files {
	return certs.Files{Cert: t.CertFile, Key: t.KeyFile, CertKey: "tls.cert_file", KeyKey: "tls.key_file"}
}

// validateTLS checks the tls keys and reads the certificate and key as
// serve would, so check-config refuses what serve would.
func (c *Config) validateTLS() error {
	t := c.TLS
	switch {
	case t.CertFile == "" && t.KeyFile == "" && t.RedirectListen == "":
		return nil
	case t.CertFile == "":
		return config.Errorf("tls.cert_file", "", "is required with tls.key_file or tls.redirect_listen")
	case t.KeyFile == "":
		return config.Missing("tls.key_file")
	}
	if _, err := certs.Load(t.files(), time.Now()); err != nil {
		return err
	}
	if t.RedirectListen == "" {
		return nil
	}
	if _, err := hostPort(t.RedirectListen, 0); err != nil {
		return config.Errorf("tls.redirect_listen", t.RedirectListen, "%v", err)
	}
	for _, l := range []struct{ key, addr string }{{"listen", c.Listen}, {"admin.listen", c.Admin.Listen}, {"gossip.bind", c.Gossip.Bind}} {
		if l.addr != "" && sameSocket(t.RedirectListen, l.addr) {
			return config.Errorf("tls.redirect_listen", t.RedirectListen, "is also %s (%s): give it a port of its own", l.key, l.addr)
		}
	}
	return nil
}

// redirector answers every request on tls.redirect_listen with a 308
// to the same host and path on the API's HTTPS port.
type redirector struct {
	ln      net.Listener
	apiPort string
	srv     *http.Server
}

func listenRedirect(addr, apiListen string, log *slog.Logger) (*redirector, error) {
	_, port, err := net.SplitHostPort(apiListen)
	if err != nil {
		return nil, fmt.Errorf("tls.redirect_listen: the API port of %q: %w", apiListen, err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("tls.redirect_listen on %s: %w", addr, err)
	}
	rd := &redirector{ln: ln, apiPort: port}
	rd.srv = &http.Server{
		Handler:           rd,
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       30 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.With("subsystem", "redirect").Handler(), slog.LevelWarn),
	}
	return rd, nil
}

func (rd *redirector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if host == "" {
		host, _, _ = net.SplitHostPort(r.Context().Value(http.LocalAddrContextKey).(net.Addr).String())
	}
	// The default port goes unsaid, as a browser would write it.
	target := "https://" + strings.TrimSuffix(net.JoinHostPort(host, rd.apiPort), ":443")
	http.Redirect(w, r, target+r.URL.RequestURI(), http.StatusPermanentRedirect)
}

// serve serves until ctx is done.
func (rd *redirector) serve(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- rd.srv.Serve(rd.ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("tls.redirect_listen: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
	defer cancel()
	rd.srv.Shutdown(sctx)
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("tls.redirect_listen: %w", err)
	}
	return nil
}
