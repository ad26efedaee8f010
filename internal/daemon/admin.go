package daemon

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/ringfront/ringfront/internal/config"
)

// AdminConfig is the `admin:` section of every daemon's config.
type AdminConfig struct {
	// Listen is the admin HTTP address; loopback by default.
	Listen string `mapstructure:"listen"`
	// TokenFile holds a bearer token required for /v1/ endpoints; empty
	// means no token (acceptable only on loopback).
	TokenFile string `mapstructure:"token_file"`
	// Token is read from TokenFile by Validate.
	Token []byte `mapstructure:"-" secret:"true"`
}

// Validate fills in the daemon's default listen address, checks it,
// and reads the token, so that a daemon's check-config refuses a token
// file its serve could not use. Errors are *config.FieldError with keys
// relative to the section (config.Join("admin", err) places them).
func (c *AdminConfig) Validate(defaultListen string) error {
	if c.Listen == "" {
		c.Listen = defaultListen
	}
	if why := checkHostPort(c.Listen); why != "" {
		return config.Errorf("listen", c.Listen, "%s", why)
	}
	c.Token = nil
	if c.TokenFile != "" {
		tok, err := config.Secret("token_file", c.TokenFile)
		if err != nil {
			return err
		}
		c.Token = tok
	}
	return nil
}

// Admin is the admin HTTP listener: /healthz, /readyz and /metrics are
// open; everything under /v1/ needs the bearer token when one is set.
type Admin struct {
	mux   *http.ServeMux
	reg   *prometheus.Registry
	token []byte
	ready atomic.Bool
	why   atomic.Pointer[string] // why not ready, when set
	srv   *http.Server
	ln    net.Listener
}

// NewAdmin returns an admin server with its own metrics registry (with
// the Go and process collectors). token may be nil.
func NewAdmin(token []byte) *Admin {
	a := &Admin{mux: http.NewServeMux(), reg: prometheus.NewRegistry(), token: token}
	a.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	a.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok\n"))
	})
	a.mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if !a.ready.Load() {
			why := "not ready"
			if p := a.why.Load(); p != nil && *p != "" {
				why = "not ready: " + *p
			}
			http.Error(w, why, http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ready\n"))
	})
	a.mux.Handle("GET /metrics", promhttp.HandlerFor(a.reg, promhttp.HandlerOpts{Registry: a.reg}))
	// Profiles for the operator chasing a CPU or memory problem; behind
	// the admin token like the API.
	a.mux.Handle("GET /debug/pprof/", a.authorize(http.HandlerFunc(pprof.Index)))
	a.mux.Handle("GET /debug/pprof/profile", a.authorize(http.HandlerFunc(pprof.Profile)))
	a.mux.Handle("GET /debug/pprof/trace", a.authorize(http.HandlerFunc(pprof.Trace)))
	return a
}

// Registry is where the daemon registers its metrics.
func (a *Admin) Registry() *prometheus.Registry { return a.reg }

// SetReady sets what /readyz answers.
func (a *Admin) SetReady(ready bool) { a.SetReadiness(ready, "") }

// SetReadiness sets what /readyz answers, and when not ready, why (said
// in the answer's body).
func (a *Admin) SetReadiness(ready bool, why string) {
	a.why.Store(&why)
	a.ready.Store(ready)
}

// Handle registers an API handler; pattern must be under /v1/. The
// handler runs only for requests with the right bearer token, if one is
// configured.
func (a *Admin) Handle(pattern string, h http.HandlerFunc) {
	a.mux.Handle(pattern, a.authorize(h))
}

func (a *Admin) authorize(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(a.token) > 0 {
			got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
			if !ok || subtle.ConstantTimeCompare([]byte(got), a.token) != 1 {
				WriteError(w, http.StatusUnauthorized, errors.New("missing or wrong admin token"))
				return
			}
		}
		h.ServeHTTP(w, r)
	})
}

// Listen binds the admin address. Use Addr for the bound address.
func (a *Admin) Listen(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("admin listener on %s: %w", addr, err)
	}
	a.ln = ln
	a.srv = AdminBounds.Server(LimitBody(a.mux, AdminMaxBody), nil)
	return nil
}

// Addr is the bound address, after Listen.
func (a *Admin) Addr() net.Addr { return a.ln.Addr() }

// Serve serves until ctx is done, then shuts down within a few seconds.
func (a *Admin) Serve(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- a.srv.Serve(a.ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("admin listener: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*time.Second)
	defer cancel()
	a.srv.Shutdown(sctx)
	<-errc
	return nil
}

// HandleReload serves POST /v1/reload: reload runs as on SIGHUP (see
// RunReload) and the answer is {"result": "reloaded"}, or 422 with the
// error when the new config is refused and the old one stays in force.
func (a *Admin) HandleReload(log *slog.Logger, n *Notifier, reload Reloader) {
	a.Handle("POST /v1/reload", func(w http.ResponseWriter, r *http.Request) {
		if err := RunReload(r.Context(), log, n, reload, "admin API"); err != nil {
			WriteError(w, http.StatusUnprocessableEntity, err)
			return
		}
		WriteJSON(w, http.StatusOK, map[string]string{"result": "reloaded"})
	})
}

// WriteJSON writes v as indented JSON with the given status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// WriteError writes {"error": "..."} with the given status.
func WriteError(w http.ResponseWriter, status int, err error) {
	WriteJSON(w, status, map[string]string{"error": err.Error()})
}

// AdminRequest calls a daemon's admin API at addr (host:port) with the
// given method and path, and decodes a JSON answer into out (if not
// nil). It is what the `status` commands use. A non-2xx answer becomes
// an error carrying the server's error text.
func AdminRequest(ctx context.Context, method, addr string, token []byte, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, "http://"+addr+path, nil)
	if err != nil {
		return fmt.Errorf("building admin request: %w", err)
	}
	if len(token) > 0 {
		req.Header.Set("Authorization", "Bearer "+string(token))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("calling admin API %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error string `json:"error"`
		}
		json.NewDecoder(io.LimitReader(resp.Body, 1<<16)).Decode(&e)
		if e.Error == "" {
			e.Error = resp.Status
		}
		return fmt.Errorf("admin API %s %s: %s", method, path, e.Error)
	}
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("decoding admin API answer for %s: %w", path, err)
	}
	return nil
}
