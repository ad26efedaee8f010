package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/net/netutil"

	"github.com/ringfront/ringfront/dnslb/authority"
	"github.com/ringfront/ringfront/dnslb/config"
	"github.com/ringfront/ringfront/dnslb/cookie"
	"github.com/ringfront/ringfront/dnslb/rrl"
	"github.com/ringfront/ringfront/dnslb/state"
	"github.com/ringfront/ringfront/internal/daemon"
	"github.com/ringfront/ringfront/internal/health"
)

// Options configure a Server.
type Options struct {
	Logger *slog.Logger
	// Load re-reads the configuration for a reload; nil disables reloads.
	Load func() (*config.Config, error)
	// Prober runs health probes; nil means real network probes.
	Prober health.Prober
	// Notifier tells systemd about readiness; nil means none.
	Notifier *daemon.Notifier
	// AdminToken protects the admin API's /v1/ endpoints; nil means none.
	AdminToken []byte
}

// Server is one dnslb instance. Open it, then Run it (or Start it and
// Wait, for a test that needs the bound addresses while it serves).
type Server struct {
	log      *slog.Logger
	load     func() (*config.Config, error)
	notifier *daemon.Notifier
	mon      *health.Monitor
	sub      *health.Subscription
	metrics  *metrics
	admin    *daemon.Admin

	snap      atomic.Pointer[authority.Snapshot]
	rebuildCh chan struct{} // a token asks the rebuild loop to rebuild
	rebuildMu sync.Mutex    // serialises rebuilds, so the newest state is stored last
	reloadMu  sync.Mutex    // one reload at a time

	mu      sync.Mutex // guards cfg and drained
	cfg     *config.Config
	drained map[string]state.Drain // by target ID: drained by an operator

	drainMu sync.Mutex  // one change of drains (and its state file write) at a time
	state   *state.File // where drains are kept across restarts

	// guarded by rebuildMu:
	versions map[string]*zoneVersions // by origin: serial and journal
	serials  map[string]uint32        // by origin: the current serial
	bumpNext bool                     // the next rebuild moves every serial (reload)
	runCtx   context.Context          // lives as long as the server, for notifiers

	tsig    tsigKeys                    // the keys transfers are verified with
	rrl     atomic.Pointer[rrl.Limiter] // nil: no limit
	cookies *cookie.Jar

	notifyMu  sync.Mutex // guards notifiers
	notifiers map[string]*secondaryNotifier

	xfrMu      sync.Mutex        // guards xfrSerials
	xfrSerials map[string]uint32 // by zone origin + "|" + secondary address: the serial it last transferred

	udp       []*udpSocket
	tcp       []*dns.Server
	tcpLns    []net.Listener
	tcpStats  *stats
	done      chan struct{}
	err       error
	lastProbe atomic.Int64 // unix nanoseconds of the latest probe result
}

// Open returns a server for cfg (already validated). It binds nothing
// yet: Start does.
func Open(cfg *config.Config, opts Options) (*Server, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Notifier == nil {
		opts.Notifier = daemon.NewNotifier(opts.Logger)
	}
	s := &Server{
		log:        opts.Logger.With("component", "dnslb"),
		load:       opts.Load,
		notifier:   opts.Notifier,
		cfg:        cfg,
		drained:    map[string]state.Drain{},
		state:      state.Open(cfg.StateDir),
		versions:   map[string]*zoneVersions{},
		serials:    map[string]uint32{},
		notifiers:  map[string]*secondaryNotifier{},
		xfrSerials: map[string]uint32{},
		rebuildCh:  make(chan struct{}, 1),
		done:       make(chan struct{}),
	}
	s.tsig.set(cfg)
	s.rrl.Store(rrl.New(cfg.RRL))
	var err error
	if s.cookies, err = cookie.New(cfg.CookieSecret); err != nil {
		return nil, fmt.Errorf("making the DNS cookie secret: %w", err)
	}
	s.metrics = newMetrics(s.metricsView)
	s.metrics.known(cfg)
	s.mon = health.NewMonitor(health.Options{
		Prober: opts.Prober,
		Logger: s.log.With("subsystem", "health"),
		OnProbe: func(t health.Target, r health.Result) {
			s.lastProbe.Store(time.Now().UnixNano())
			s.metrics.onProbe(t, r)
		},
	})
	s.admin = daemon.NewAdmin(opts.AdminToken)
	s.admin.Registry().MustRegister(daemon.BuildInfo("dnslb"))
	s.metrics.register(s.admin.Registry())
	s.routes()
	return s, nil
}

// targets lists the health targets of cfg.
func targets(cfg *config.Config) []health.Target {
	var out []health.Target
	for _, z := range cfg.Zones {
		for _, svc := range z.Services {
			for _, a := range svc.Addrs {
				out = append(out, health.Target{ID: config.TargetID(svc.Name, a), Addr: a, Check: svc.Check})
			}
		}
	}
	return out
}

func ids(ts []health.Target) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.ID
	}
	return out
}

// Start runs the first round of health checks, then binds the listeners
// and serves in the background until ctx is done; Wait returns when
// everything has stopped. No query is answered before every target's
// health is known (or startup_timeout has passed, after which targets not
// yet known count as down).
func (s *Server) Start(ctx context.Context) error {
	s.mu.Lock()
	cfg := s.cfg
	s.mu.Unlock()
	if err := s.loadDrains(cfg); err != nil {
		return err
	}
	if err := s.mon.Set(targets(cfg)); err != nil {
		return err
	}
	s.sub = s.mon.Subscribe()
	runCtx, stopRun := context.WithCancel(context.WithoutCancel(ctx))
	s.rebuildMu.Lock()
	s.runCtx = runCtx
	s.rebuildMu.Unlock()
	var bg sync.WaitGroup
	bg.Go(func() { s.mon.Run(runCtx) })

	wctx, cancel := context.WithTimeout(ctx, cfg.StartupTimeout)
	err := s.mon.WaitKnown(wctx, nil)
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			stopRun()
			bg.Wait()
			return ctx.Err()
		}
		s.log.Warn("first health round incomplete; targets not yet checked count as down", "op", "start", "err", err)
	}
	s.rebuild()
	s.logWarnings(cfg, "start")

	if err := s.listen(cfg); err != nil {
		stopRun()
		bg.Wait()
		return err
	}
	if err := s.admin.Listen(cfg.Admin.Listen); err != nil {
		s.closeListeners()
		stopRun()
		bg.Wait()
		return err
	}
	raiseProcs(len(s.udp))
	var serving sync.WaitGroup
	for _, c := range s.udp {
		st := s.metrics.newStats()
		serving.Go(func() { s.serveUDP(c, st) })
	}
	for _, srv := range s.tcp {
		serving.Go(func() {
			if err := srv.ActivateAndServe(); err != nil {
				s.log.Error("TCP listener stopped", "op", "serve", "err", err)
			}
		})
	}
	// A failed admin listener stops the server: Wait returns its error.
	ctx, fail := context.WithCancel(ctx)
	adminCtx, stopAdmin := context.WithCancel(context.WithoutCancel(ctx))
	bg.Go(func() {
		if err := s.admin.Serve(adminCtx); err != nil {
			s.err = err
			fail()
		}
	})
	bg.Go(func() { s.rebuildLoop(runCtx) })
	bg.Go(func() { s.notifier.Watchdog(runCtx, s.alive) })
	if s.load != nil {
		bg.Go(func() {
			daemon.HandleReloads(runCtx, s.log, s.notifier, func(ctx context.Context) error { return s.Reload(ctx, "SIGHUP") })
		})
	}
	s.admin.SetReady(true)
	s.notifier.Ready("serving")
	s.log.Info("serving", "op", "start", "udp", s.UDPAddrs(), "tcp", s.TCPAddrs(), "admin", s.admin.Addr().String())

	go func() {
		<-ctx.Done()
		s.admin.SetReady(false)
		s.notifier.Stopping()
		if d := cfg.LameDuck; d > 0 {
			s.log.Info("lame duck: still answering before stopping", "op", "stop", "seconds", d.Seconds())
			time.Sleep(d)
		}
		s.closeListeners()
		serving.Wait()
		stopAdmin()
		stopRun()
		bg.Wait()
		s.sub.Close()
		fail()
		s.log.Info("stopped", "op", "stop")
		close(s.done)
	}()
	return nil
}

// Wait blocks until the server has stopped after its context ended. Its
// error is the admin listener's, when that failed and stopped it.
func (s *Server) Wait() error {
	<-s.done
	return s.err
}

// Run starts the server and serves until ctx is done.
func (s *Server) Run(ctx context.Context) error {
	if err := s.Start(ctx); err != nil {
		return err
	}
	return s.Wait()
}

// alive is the watchdog's test: health probes are still being run.
func (s *Server) alive() bool {
	s.mu.Lock()
	cfg := s.cfg
	s.mu.Unlock()
	longest := time.Duration(0)
	for _, t := range targets(cfg) {
		longest = max(longest, t.Check.Interval)
	}
	if longest == 0 {
		return true
	}
	last := time.Unix(0, s.lastProbe.Load())
	return time.Since(last) < 3*longest+10*time.Second
}

// cpus is the CPUs this process may use, as the Go runtime first saw
// them (cgroup limits included); raiseProcs changes GOMAXPROCS later.
var cpus = runtime.GOMAXPROCS(0)

// listen binds every listen address on UDP (several SO_REUSEPORT
// sockets) and TCP, on the same port even when the port is 0.
func (s *Server) listen(cfg *config.Config) error {
	n := cfg.Sockets
	if n == 0 {
		n = cpus
	}
	s.tcpStats = s.metrics.newStats()
	for _, addr := range cfg.Listen {
		var err error
		for attempt := 0; attempt < 10; attempt++ {
			err = s.listenOne(cfg, addr, n)
			if err == nil || !errors.Is(err, syscall.EADDRINUSE) || !isPortZero(addr) {
				break
			}
		}
		if err != nil {
			s.closeListeners()
			return err
		}
	}
	return nil
}

func isPortZero(addr string) bool {
	_, p, _ := net.SplitHostPort(addr)
	return p == "0"
}

func (s *Server) listenOne(cfg *config.Config, addr string, sockets int) error {
	var conns []*udpSocket
	first, err := listenUDP(addr)
	if err != nil {
		return fmt.Errorf("listening on %s/udp: %w", addr, err)
	}
	conns = append(conns, first)
	bound := first.addr()
	for len(conns) < sockets {
		c, err := listenUDP(bound)
		if err != nil {
			for _, c := range conns {
				c.close()
			}
			return fmt.Errorf("listening on %s/udp: %w", bound, err)
		}
		conns = append(conns, c)
	}
	ln, err := net.Listen("tcp", bound)
	if err != nil {
		for _, c := range conns {
			c.close()
		}
		return fmt.Errorf("listening on %s/tcp: %w", bound, err)
	}
	s.udp = append(s.udp, conns...)
	s.tcpLns = append(s.tcpLns, ln)
	srv := &dns.Server{
		Listener: newTCPListener(netutil.LimitListener(ln, cfg.TCP.MaxConnections), cfg.TCP.MaxConnectionsPerClient,
			cfg.TCP.MaxLifetime, func() { s.tcpStats.drops[dropTCPLimit].Add(1) }),
		Handler:       dns.HandlerFunc(s.serveTCP),
		ReadTimeout:   cfg.TCP.IdleTimeout,
		IdleTimeout:   func() time.Duration { return cfg.TCP.IdleTimeout },
		MaxTCPQueries: cfg.TCP.MaxQueries,
		MsgAcceptFunc: acceptQueries,
		TsigProvider:  &s.tsig,
	}
	if cfg.TCP.MaxQueries == 0 {
		srv.MaxTCPQueries = -1
	}
	s.tcp = append(s.tcp, srv)
	return nil
}

// acceptQueries leaves every judgement to Respond, except that responses
// are ignored (never answer an answer).
func acceptQueries(dh dns.Header) dns.MsgAcceptAction {
	if dh.Bits&(1<<15) != 0 {
		return dns.MsgIgnore
	}
	return dns.MsgAccept
}

func (s *Server) closeListeners() {
	for _, c := range s.udp {
		c.close()
	}
	for _, srv := range s.tcp {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		if err := srv.ShutdownContext(ctx); err != nil {
			s.log.Debug("TCP shutdown", "err", err)
		}
		cancel()
	}
	for _, ln := range s.tcpLns {
		ln.Close()
	}
}

// UDPAddrs lists the bound UDP addresses (one per listen address).
func (s *Server) UDPAddrs() []string {
	var out []string
	for _, c := range s.udp {
		a := c.addr()
		if !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out
}

// TCPAddrs lists the bound TCP addresses.
func (s *Server) TCPAddrs() []string {
	var out []string
	for _, ln := range s.tcpLns {
		out = append(out, ln.Addr().String())
	}
	return out
}

// AdminAddr is the admin listener's bound address.
func (s *Server) AdminAddr() string { return s.admin.Addr().String() }

// answerUDP answers one UDP query from client, or returns nil to drop
// it. Answers go through response rate limiting unless the client
// proved its address with a valid DNS cookie.
func (s *Server) answerUDP(q, out []byte, client netip.Addr, st *stats) []byte {
	snap := s.snap.Load()
	resp, info, ok := snap.Fast(q, out)
	switch {
	case ok && info.Cookie == nil:
		st.count(0, int(info.Qtype), int(info.Rcode))
		st.cookies[cookieNone].Add(1)
		return s.apply(s.rrl.Load().Check(client), resp, st)
	case ok:
		data, kind := s.cookieAnswer(info.Cookie, client)
		verdict := rrl.Send
		if kind != cookieValid {
			verdict = s.rrl.Load().Check(client)
		}
		if verdict == rrl.Send {
			st.count(0, int(info.Qtype), int(info.Rcode))
			st.cookies[kind].Add(1)
			return authority.AppendCookie(resp, data)
		}
		// Over the limit with a cookie that is not valid: the full path
		// answers BADCOOKIE, under the verdict already taken.
		return s.answerSlow(snap, q, out, client, st, &verdict)
	}
	return s.answerSlow(snap, q, out, client, st, nil)
}

// answerSlow answers a query the fast path left: it unpacks it, builds
// the answer with Respond, adds the DNS cookie and applies rate
// limiting (or the verdict given).
func (s *Server) answerSlow(snap *authority.Snapshot, q, out []byte, client netip.Addr, st *stats, decided *rrl.Verdict) []byte {
	req := new(dns.Msg)
	if err := req.Unpack(q); err != nil {
		st.drops[dropMalformed].Add(1)
		return nil
	}
	resp := snap.Respond(req, authority.UDP, -1)
	if resp == nil {
		st.drops[dropResponse].Add(1)
		return nil
	}
	kind := s.applyCookie(req, resp, client)
	st.cookies[kind].Add(1)
	verdict := rrl.Send
	switch {
	case decided != nil:
		verdict = *decided
	case kind != cookieValid:
		verdict = s.rrl.Load().Check(client)
	}
	if verdict != rrl.Send && (kind == cookieClient || kind == cookieInvalid) {
		// Over the limit, but the client speaks cookies: answer
		// BADCOOKIE with a fresh server cookie instead (RFC 7873
		// 5.2.3), so a real client retries at once, exempt, while a
		// spoofed flood gains nothing (the answer is small).
		resp.Answer, resp.Ns = nil, nil
		resp.Extra = []dns.RR{resp.IsEdns0()}
		resp.Rcode = dns.RcodeBadCookie
		verdict = rrl.Send
		st.drops[dropRateLimited].Add(1)
	}
	wire, err := resp.PackBuffer(out[:cap(out)])
	if err != nil {
		s.log.Error("packing an answer", "op", "answer", "err", err, "question", req.Question)
		st.drops[dropMalformed].Add(1)
		return nil
	}
	st.count(0, qtypeOf(req), resp.Rcode)
	return s.apply(verdict, wire, st)
}

func qtypeOf(m *dns.Msg) int {
	if len(m.Question) == 0 {
		return 0
	}
	return int(m.Question[0].Qtype)
}

func (s *Server) serveTCP(w dns.ResponseWriter, req *dns.Msg) {
	start := time.Now()
	if len(req.Question) == 1 && !req.Response && req.Opcode == dns.OpcodeQuery &&
		(req.Question[0].Qtype == dns.TypeAXFR || req.Question[0].Qtype == dns.TypeIXFR) {
		s.transfer(w, req)
		s.tcpStats.count(1, int(req.Question[0].Qtype), dns.RcodeSuccess)
		return
	}
	resp := s.snap.Load().Respond(req, authority.TCP, -1)
	if resp == nil {
		s.tcpStats.drops[dropResponse].Add(1)
		return
	}
	if ap, err := netip.ParseAddrPort(w.RemoteAddr().String()); err == nil {
		s.tcpStats.cookies[s.applyCookie(req, resp, ap.Addr().Unmap())].Add(1)
	}
	if err := w.WriteMsg(resp); err != nil {
		s.tcpStats.drops[dropWrite].Add(1)
		return
	}
	s.tcpStats.count(1, qtypeOf(req), resp.Rcode)
	s.tcpStats.observe(time.Since(start))
}

// drainedSet is the set of drained target IDs.
func drainedSet(d map[string]state.Drain) map[string]bool {
	out := make(map[string]bool, len(d))
	for id := range d {
		out[id] = true
	}
	return out
}

// loadDrains reads the drains kept in the state directory, before the
// first answer. Drains of targets cfg no longer has are dropped, with a
// warning.
func (s *Server) loadDrains(cfg *config.Config) error {
	if s.state.Path() == "" {
		s.log.Warn("no state directory (state_dir, or systemd's StateDirectory=): drains will not survive a restart", "op", "start")
		return nil
	}
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return fmt.Errorf("creating state_dir %s: %w", cfg.StateDir, err)
	}
	drains, err := s.state.Load(func(service, address string) (string, error) {
		a, err := netip.ParseAddr(address)
		if err != nil || service == "" {
			return "", fmt.Errorf("service %q address %q is not a target", service, address)
		}
		return config.TargetID(service, a.Unmap()), nil
	})
	if err != nil {
		return err
	}
	known := ids(targets(cfg))
	for id, d := range drains {
		if !slices.Contains(known, id) {
			s.log.Warn("dropping the drain of a target no longer configured", "op", "start", "service", d.Service, "ip", d.Address, "by", d.By)
			delete(drains, id)
			continue
		}
		s.log.Info("target drained", "op", "start", "service", d.Service, "ip", d.Address, "by", d.By, "since", d.Since, "reason", d.Reason)
	}
	s.mu.Lock()
	s.drained = drains
	s.mu.Unlock()
	return s.state.Save(drains)
}

// healthView is the answers' view of target health: monitor states plus
// operator drains.
type healthView struct {
	states  map[string]health.State
	drained map[string]bool
}

func (h healthView) Target(service string, a netip.Addr) authority.TargetState {
	id := config.TargetID(service, a)
	return authority.TargetState{Up: h.states[id] == health.Up, Drained: h.drained[id]}
}

// rebuild makes a new snapshot from the current config, health and
// drains, and swaps it in.
func (s *Server) rebuild() {
	s.rebuildMu.Lock()
	defer s.rebuildMu.Unlock()
	s.mu.Lock()
	cfg := s.cfg
	view := healthView{states: map[string]health.State{}, drained: drainedSet(s.drained)}
	s.mu.Unlock()
	for _, st := range s.mon.Snapshot() {
		view.states[st.ID] = st.State
	}
	prev := s.snap.Load()
	snap := authority.Build(cfg, view, prev, s.serials)
	changed := s.versionZones(cfg, snap, s.bumpNext)
	s.bumpNext = false
	if len(changed) > 0 || prev == nil {
		snap = authority.Build(cfg, view, prev, s.serials)
	}
	s.snap.Store(snap)
	s.metrics.rebuilds.Inc()
	if s.runCtx != nil {
		for _, origin := range changed {
			s.notifySecondaries(s.runCtx, origin, s.serials[origin])
		}
	}
}

func (s *Server) requestRebuild() {
	select {
	case s.rebuildCh <- struct{}{}:
	default:
	}
}

// rebuildLoop rebuilds the answers after every health change or drain.
func (s *Server) rebuildLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.sub.Ready():
			s.metrics.onChanges(s.sub.Drain())
		case <-s.rebuildCh:
		}
		s.rebuild()
	}
}

// metricsView feeds the metrics collector.
func (s *Server) metricsView() metricsView {
	s.mu.Lock()
	v := metricsView{drained: drainedSet(s.drained)}
	cfg := s.cfg
	s.mu.Unlock()
	v.targets = s.mon.Snapshot()
	if snap := s.snap.Load(); snap != nil {
		v.families = snap.Families()
		v.serials = snap.Serials()
	}
	s.xfrMu.Lock()
	for _, z := range cfg.Zones {
		for _, sec := range z.Secondaries {
			addr := sec.AddrPort.String()
			v.secondaries = append(v.secondaries, secondarySerial{zone: z.Origin, secondary: addr, serial: s.xfrSerials[z.Origin+"|"+addr]})
		}
	}
	s.xfrMu.Unlock()
	return v
}

// Reload re-reads the configuration and swaps it in atomically. New
// targets are checked before the new answers are used; targets in both
// configs keep their health state. An invalid configuration is rejected
// and the old one keeps serving.
func (s *Server) Reload(ctx context.Context, cause string) error {
	if s.load == nil {
		return errors.New("reloading is not configured")
	}
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	cfg, err := s.load()
	if err != nil {
		s.metrics.reloads.WithLabelValues("rejected").Inc()
		return fmt.Errorf("loading new config: %w", err)
	}
	s.mu.Lock()
	old := s.cfg
	s.mu.Unlock()
	if !slices.Equal(old.Listen, cfg.Listen) || old.Admin.Listen != cfg.Admin.Listen || old.Admin.TokenFile != cfg.Admin.TokenFile || old.Sockets != cfg.Sockets || old.TCP != cfg.TCP || old.StateDir != cfg.StateDir {
		s.log.Warn("listen, admin, sockets, tcp and state_dir settings change only on restart; keeping the old ones", "op", "reload")
		cfg.Listen, cfg.Admin, cfg.Sockets, cfg.TCP, cfg.StateDir = old.Listen, old.Admin, old.Sockets, old.TCP, old.StateDir
	}

	newTargets := targets(cfg)
	union := targets(old)
	for _, t := range newTargets {
		if i := slices.IndexFunc(union, func(u health.Target) bool { return u.ID == t.ID }); i >= 0 {
			union[i] = t
		} else {
			union = append(union, t)
		}
	}
	if err := s.mon.Set(union); err != nil {
		s.metrics.reloads.WithLabelValues("rejected").Inc()
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, cfg.StartupTimeout)
	if err := s.mon.WaitKnown(wctx, ids(newTargets)); err != nil {
		s.log.Warn("new targets not all checked yet; they count as down", "op", "reload", "err", err)
	}
	cancel()
	s.tsig.set(cfg)
	if cfg.RRL != old.RRL {
		s.rrl.Store(rrl.New(cfg.RRL))
	}
	s.drainMu.Lock()
	s.mu.Lock()
	s.cfg = cfg
	kept := maps.Clone(s.drained)
	maps.DeleteFunc(kept, func(id string, _ state.Drain) bool { return !slices.Contains(ids(newTargets), id) })
	changed := len(kept) != len(s.drained)
	s.drained = kept
	s.mu.Unlock()
	if changed {
		// Drains of targets no longer configured go from the file too.
		if err := s.state.Save(kept); err != nil {
			s.log.Error("dropping drains of removed targets from the state file", "op", "reload", "err", err)
		}
	}
	s.drainMu.Unlock()
	s.mon.Set(newTargets)
	s.rebuildMu.Lock()
	s.bumpNext = true // a reload moves every serial, as secondaries expect
	s.rebuildMu.Unlock()
	s.rebuild()
	s.metrics.reloads.WithLabelValues("ok").Inc()
	s.metrics.known(cfg)
	s.logWarnings(cfg, "reload")
	s.log.Info("new config in force", "op", "reload", "cause", cause, "zones", len(cfg.Zones), "targets", len(newTargets))
	return nil
}

// logWarnings logs what the config loaded with a warning: zone-file
// records that services override.
func (s *Server) logWarnings(cfg *config.Config, op string) {
	for _, z := range cfg.Zones {
		for _, w := range z.Warnings {
			s.log.Warn(w, "op", op, "zone", z.Origin)
		}
	}
}

// udpSize is the configured largest UDP answer.
func (s *Server) udpSize() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cfg.UDPSize
}

// Snapshot returns the answers currently served.
func (s *Server) Snapshot() *authority.Snapshot { return s.snap.Load() }
