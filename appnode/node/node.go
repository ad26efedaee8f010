package node

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/ringfront/ringfront/appnode/gossip"
	"github.com/ringfront/ringfront/appnode/server"
	"github.com/ringfront/ringfront/appnode/store"
	"github.com/ringfront/ringfront/appnode/transport"
	"github.com/ringfront/ringfront/internal/certs"
	"github.com/ringfront/ringfront/internal/config"
	"github.com/ringfront/ringfront/internal/daemon"
)

// readyInterval is how often /readyz is brought up to date with the
// store's health: about as often as a load balancer probes it.
const readyInterval = time.Second

// Loader reads the configuration again, for a reload.
type Loader func() (Config, error)

// Node is a running appnode member.
type Node struct {
	log    *slog.Logger
	notify *daemon.Notifier
	load   Loader
	store  *store.Store
	srv    *server.Server
	admin  *daemon.Admin
	gossip *gossip.Detector
	cert   *certs.Pair // the API's certificate; nil: plain HTTP
	redir  *redirector // tls.redirect_listen; nil: none

	mu  sync.Mutex // guards cfg
	cfg Config

	backupMu sync.Mutex // held while a backup runs
}

// Open opens the store and binds the API and admin listeners, so that a
// bad address or a locked database fails before anything is announced.
func Open(cfg Config, load Loader, log *slog.Logger) (*Node, error) {
	log = log.With("node", cfg.Node)
	secret, adminToken := cfg.ClusterSecret, cfg.Admin.Token
	if len(secret) == 0 {
		return nil, fmt.Errorf("cluster_secret_file: the secret was not read (validate the config first)")
	}
	rg, err := cfg.Ring()
	if err != nil {
		return nil, err
	}
	now := wallClock() // nil: time.Now
	st, err := store.Open(cfg.DataDir, store.Options{MinFree: cfg.MinFreeMB << 20, Log: log.With("subsystem", "store"), Now: now})
	if err != nil {
		return nil, err
	}
	// The detector learns the others' gossip addresses by asking them
	// (srv.GossipAddrOf); srv exists before the detector's Run starts.
	var srv *server.Server
	det, err := gossip.New(gossip.Config{
		Name: cfg.Advertise, Bind: cfg.Gossip.Bind, Advertise: cfg.Gossip.Advertise, Peers: cfg.Members,
		Learn: func(ctx context.Context, m string) (string, error) { return srv.Cluster().GossipAddrOf(ctx, m) },
		// A member back from the dead was cut off from this one: each
		// may have missed writes the other took.
		OnReturn: func(m string) { srv.Syncer().KickCatchUp(m) },
		Secret:   secret, ProbeInterval: cfg.Gossip.ProbeInterval, RejoinInterval: cfg.Gossip.RejoinInterval,
		IsolatedAfter: cfg.Gossip.IsolatedAfter, Log: log,
	})
	if err != nil {
		st.Close()
		return nil, err
	}
	memberTLS, err := transport.NewMemberTLS(secret, cfg.Advertise, log, nil)
	if err != nil {
		det.Stop()
		st.Close()
		return nil, err
	}
	var cert *certs.Pair
	var apiCert func(*tls.ClientHelloInfo) (*tls.Certificate, error)
	if cfg.TLS.On() {
		if cert, err = certs.New(cfg.TLS.files(), log.With("subsystem", "tls"), nil); err != nil {
			det.Stop()
			st.Close()
			return nil, err
		}
		apiCert = cert.GetCertificate
	}
	admin := daemon.NewAdmin(adminToken)
	admin.Registry().MustRegister(daemon.BuildInfo("appnode"))
	admin.Registry().MustRegister(det.Collector())
	srv, err = server.New(server.Options{
		Self: cfg.Advertise, Ring: rg, Routing: server.Routing(cfg.Routing), Store: st,
		Secret: secret, Log: log, Registry: admin.Registry(), View: det, WriteAcks: cfg.WriteAcks, ReadRepair: cfg.ReadRepair,
		MemberTimeout: cfg.MemberTimeout, GossipAddr: det.Addr(), CatchUp: det.SetCatchingUp, StartCatchingUp: true,
		Now:       now,
		Links:     cfg.ForwardOver == "link",
		MemberTLS: memberTLS, APICert: apiCert,
		AntiEntropyInterval: cfg.AntiEntropyInterval, AntiEntropyRate: cfg.AntiEntropyRate, RebalanceRate: cfg.RebalanceRate,
		Bounds: cfg.HTTP.bounds(),
	})
	if err != nil {
		det.Stop()
		st.Close()
		return nil, err
	}
	if err := srv.Tune(cfg.tuning()); err != nil {
		det.Stop()
		st.Close()
		return nil, err
	}
	n := &Node{log: log, notify: daemon.NewNotifier(log), load: load, store: st, srv: srv, admin: admin, gossip: det, cfg: cfg,
		cert: cert}
	admin.Handle("GET /v1/status", n.status)
	admin.Handle("POST /v1/backup", n.backup)
	if err := srv.Listen(cfg.Listen); err != nil {
		det.Stop()
		st.Close()
		return nil, err
	}
	if err := admin.Listen(cfg.Admin.Listen); err != nil {
		det.Stop()
		st.Close()
		return nil, err
	}
	if cfg.TLS.RedirectListen != "" {
		if n.redir, err = listenRedirect(cfg.TLS.RedirectListen, cfg.Listen, log); err != nil {
			det.Stop()
			st.Close()
			return nil, err
		}
	}
	return n, nil
}

// Server is the node's API server.
func (n *Node) Server() *server.Server { return n.srv }

// Admin is the node's admin listener.
func (n *Node) Admin() *daemon.Admin { return n.admin }

// Run serves until ctx is done, then stops gracefully and closes the
// store. The admin listener, reloads (SIGHUP and POST /v1/reload), the
// systemd watchdog and STOPPING=1 are daemon.Service's, as in every
// ringfront daemon.
func (n *Node) Run(ctx context.Context) error {
	defer func() {
		if err := n.store.Close(); err != nil {
			n.log.Error("closing store", "op", "stop", "err", err)
		}
	}()
	svc := daemon.Service{Log: n.log, Admin: n.admin, Notifier: n.notify, Alive: func() bool { return !n.store.Failed() },
		Reload: n.Reload}
	return svc.Run(ctx, n.serve)
}

// serve runs the member until ctx is done: the failure detector, then
// (once it knows who answered the first joins) the API and the
// member's background work, and /readyz kept up to date.
func (n *Node) serve(ctx context.Context) error {
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return n.gossip.Run(gctx) })
	// Serve only once the failure detector knows who answered the first
	// round of joins; until then every other member would count as dead.
	select {
	case <-n.gossip.Joined():
	case <-gctx.Done():
	}
	g.Go(func() error { return n.srv.Serve(gctx) })
	if n.redir != nil {
		g.Go(func() error { return n.redir.serve(gctx) })
	}
	// After Serve: members starting together ask each other for the
	// previous ring.
	g.Go(func() error { return n.srv.RunBackground(gctx) })
	g.Go(func() error {
		// A failed store refuses every request, and a member that hears
		// from none of its peers serves from its own store alone: say
		// so on /readyz, so load balancers and the lab stop sending
		// here and the operator sees why.
		t := time.NewTicker(readyInterval)
		defer t.Stop()
		for {
			select {
			case <-gctx.Done():
				return nil
			case <-t.C:
				n.admin.SetReadiness(n.readiness())
			}
		}
	})
	n.admin.SetReadiness(n.readiness())
	n.notify.Ready("serving")
	n.log.Info("serving", "op", "start", "listen", n.srv.Addr().String(), "admin", n.admin.Addr().String(),
		"ring", n.srv.Ring().String(), "routing", n.srv.Routing())
	<-gctx.Done()
	n.admin.SetReady(false)
	n.log.Info("stopping", "op", "stop")
	return g.Wait()
}

// readiness is what /readyz answers: ready, or why not.
func (n *Node) readiness() (bool, string) {
	if n.store.Failed() {
		return false, "store failed after a disk error; restart the member"
	}
	if iso, why := n.gossip.Isolated(); iso {
		return false, "this member " + why
	}
	return true, ""
}

// Reload re-reads the configuration and applies what can change while
// running: the membership and ring settings, and the routing mode. A
// config that is invalid or changes what cannot change (addresses,
// data_dir) is refused and the old one stays in force.
func (n *Node) Reload(ctx context.Context) error {
	cfg, err := n.load()
	if err != nil {
		return err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	old := n.cfg
	for _, f := range []struct{ key, was, now string }{
		{"listen", old.Listen, cfg.Listen},
		{"advertise", old.Advertise, cfg.Advertise},
		{"data_dir", old.DataDir, cfg.DataDir},
		{"admin.listen", old.Admin.Listen, cfg.Admin.Listen},
		{"cluster_secret_file", old.ClusterSecretFile, cfg.ClusterSecretFile},
		{"gossip.bind", old.Gossip.Bind, cfg.Gossip.Bind},
		{"gossip.advertise", old.Gossip.Advertise, cfg.Gossip.Advertise},
		{"tls.redirect_listen", old.TLS.RedirectListen, cfg.TLS.RedirectListen},
	} {
		if f.was != f.now {
			return config.Errorf(f.key, f.now, "cannot change on reload (was %q); restart instead", f.was)
		}
	}
	if old.TLS.On() != cfg.TLS.On() {
		return config.Errorf("tls.cert_file", cfg.TLS.CertFile, "cannot be set or removed on reload (was %q); restart instead", old.TLS.CertFile)
	}
	if cfg.HTTP != old.HTTP {
		return config.Errorf("http", fmt.Sprintf("%+v", cfg.HTTP), "cannot change on reload (was %+v); restart instead", old.HTTP)
	}
	rg, err := cfg.Ring()
	if err != nil {
		return err
	}
	if n.cert != nil {
		// First: a bad certificate refuses the whole reload, and the
		// current one stays.
		if err := n.cert.Reload(cfg.TLS.files()); err != nil {
			return err
		}
	}
	if err := n.srv.SetRing(rg); err != nil {
		return err
	}
	if err := n.srv.Tune(cfg.tuning()); err != nil {
		return err
	}
	n.gossip.SetPeers(cfg.Members)
	n.cfg = cfg
	n.log.Info("ring", "op", "reload", "ring", rg.String(), "routing", cfg.Routing)
	return nil
}

// Status is what `appnode status` prints.
type Status struct {
	Node string `json:"node"`
	server.Status
	// Liveness is every member as the failure detector sees it.
	Liveness []gossip.State `json:"liveness"`
	// MembersAlive counts the members seen alive, this one included,
	// of Members configured.
	MembersAlive int `json:"members_alive"`
	Members      int `json:"members"`
	// Isolated, when set, says that this member hears from none of its
	// peers, and why.
	Isolated string `json:"isolated,omitempty"`
}

func (n *Node) status(w http.ResponseWriter, r *http.Request) {
	n.mu.Lock()
	name := n.cfg.Node
	n.mu.Unlock()
	st := Status{Node: name, Status: n.srv.Status(), Liveness: n.gossip.States()}
	st.MembersAlive, st.Members = n.gossip.AliveCount()
	if iso, why := n.gossip.Isolated(); iso {
		st.Isolated = why
	}
	daemon.WriteJSON(w, http.StatusOK, st)
}
