package gossip

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/prometheus/client_golang/prometheus"
)

// Defaults for Config.
const (
	// DefaultProbeInterval is memberlist's LAN probe interval: a dead
	// member is noticed within a few of them.
	DefaultProbeInterval = time.Second
	// DefaultRejoinInterval is how often configured members that are not
	// seen alive are contacted again: often enough that a returning
	// member is back within seconds, rarely enough to cost nothing.
	DefaultRejoinInterval = 2 * time.Second
)

// Config configures a Detector.
type Config struct {
	// Name is this member's name: its advertised API address, as the
	// ring names it.
	Name string
	// Bind is the gossip address to bind (UDP and TCP, same port); port
	// 0 picks a free one (see Detector.Port).
	Bind string
	// Advertise is the gossip address others reach this member at;
	// empty means Bind's.
	Advertise string
	// Peers maps every other member's name (API address) to its gossip
	// address.
	Peers map[string]string
	// Secret is the cluster secret; the gossip key is derived from it.
	Secret []byte
	// ProbeInterval and ProbeTimeout tune memberlist; zero means
	// DefaultProbeInterval and a fifth of it.
	ProbeInterval, ProbeTimeout time.Duration
	// RejoinInterval is how often unseen peers are joined again; zero
	// means DefaultRejoinInterval.
	RejoinInterval time.Duration
	// Log is the logger; nil means slog.Default().
	Log *slog.Logger
}

// State is one member's liveness as this member sees it.
type State struct {
	Member string    `json:"member"`
	Alive  bool      `json:"alive"`
	Since  time.Time `json:"since"`
}

// Detector tracks which members are alive. Alive and States are safe
// for concurrent use.
type Detector struct {
	name   string
	log    *slog.Logger
	ml     *memberlist.Memberlist
	rejoin time.Duration

	mu    sync.Mutex // guards peers and state
	peers map[string]string
	state map[string]State

	changes prometheus.Counter
	joined  chan struct{} // closed after the first round of joins
}

// Key derives the 32-byte AES-256 gossip key from the cluster secret,
// so operators manage one secret and the gossip key never equals it.
func Key(secret []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("ringfront appnode gossip key v1"))
	return m.Sum(nil)
}

// New starts memberlist on cfg.Bind. It does not join anyone yet: Run
// does, and keeps doing it.
func New(cfg Config) (*Detector, error) {
	if cfg.Name == "" {
		return nil, errors.New("starting gossip: no member name")
	}
	if len(cfg.Secret) == 0 {
		return nil, errors.New("starting gossip: empty cluster secret")
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.ProbeInterval == 0 {
		cfg.ProbeInterval = DefaultProbeInterval
	}
	if cfg.ProbeTimeout == 0 {
		cfg.ProbeTimeout = cfg.ProbeInterval / 5
	}
	if cfg.RejoinInterval == 0 {
		cfg.RejoinInterval = DefaultRejoinInterval
	}
	host, port, err := splitHostPort(cfg.Bind)
	if err != nil {
		return nil, fmt.Errorf("gossip bind %q: %w", cfg.Bind, err)
	}
	d := &Detector{
		name:   cfg.Name,
		log:    cfg.Log.With("component", "gossip"),
		rejoin: cfg.RejoinInterval,
		state:  map[string]State{},
		joined: make(chan struct{}),
		changes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "appnode_liveness_changes_total",
			Help: "Times another member was seen to die or come back.",
		}),
	}
	d.SetPeers(cfg.Peers)
	mc := memberlist.DefaultLANConfig()
	mc.Name = cfg.Name
	mc.BindAddr, mc.BindPort = host, port
	if cfg.Advertise != "" {
		ahost, aport, err := splitHostPort(cfg.Advertise)
		if err != nil {
			return nil, fmt.Errorf("gossip advertise %q: %w", cfg.Advertise, err)
		}
		mc.AdvertiseAddr, mc.AdvertisePort = ahost, aport
	}
	mc.SecretKey = Key(cfg.Secret)
	mc.ProbeInterval = cfg.ProbeInterval
	mc.ProbeTimeout = cfg.ProbeTimeout
	// Gossip and push-pull scale with the probe interval, so a faster
	// profile (tests) converges as much faster.
	mc.GossipInterval = cfg.ProbeInterval / 5
	mc.PushPullInterval = 15 * cfg.ProbeInterval
	mc.TCPTimeout = 5 * cfg.ProbeTimeout
	// A member that restarts keeps its name and address, so it may
	// reclaim its name at once.
	mc.DeadNodeReclaimTime = time.Nanosecond
	mc.Events = events{d}
	mc.Logger = log.New(logWriter{d.log}, "", 0)
	ml, err := memberlist.Create(mc)
	if err != nil {
		return nil, fmt.Errorf("starting gossip on %s: %w", cfg.Bind, err)
	}
	d.ml = ml
	return d, nil
}

func splitHostPort(s string) (string, int, error) {
	host, p, err := net.SplitHostPort(s)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("bad port %q", p)
	}
	return host, port, nil
}

// Port is the bound gossip port.
func (d *Detector) Port() int { return int(d.ml.LocalNode().Port) }

// SetPeers replaces the members this one keeps joining (after a
// reload); members no longer listed are forgotten.
func (d *Detector) SetPeers(peers map[string]string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.peers = map[string]string{}
	for name, addr := range peers {
		if name != d.name {
			d.peers[name] = addr
		}
	}
	for name := range d.state {
		if _, ok := d.peers[name]; !ok {
			delete(d.state, name)
		}
	}
}

// Alive reports whether member is alive: this member always is; another
// configured member once memberlist has seen it, until memberlist
// declares it dead. Before the first round of joins (see Joined) no
// other member is; unknown members never are.
func (d *Detector) Alive(member string) bool {
	if member == d.name {
		return true
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	st, ok := d.state[member]
	return ok && st.Alive
}

// States lists every configured member's liveness, this one included,
// sorted by name.
func (d *Detector) States() []State {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := []State{{Member: d.name, Alive: true}}
	for name := range d.peers {
		st, ok := d.state[name]
		if !ok {
			st = State{Member: name}
		}
		out = append(out, st)
	}
	slices.SortFunc(out, func(a, b State) int {
		switch {
		case a.Member < b.Member:
			return -1
		case a.Member > b.Member:
			return 1
		}
		return 0
	})
	return out
}

// set records member's liveness.
func (d *Detector) set(member string, alive bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if member == d.name {
		return
	}
	if _, ok := d.peers[member]; !ok {
		d.log.Warn("gossip from a member that is not configured", "peer", member)
		return
	}
	if st, ok := d.state[member]; ok && st.Alive == alive {
		return
	}
	d.state[member] = State{Member: member, Alive: alive, Since: time.Now()}
	d.changes.Inc()
	if alive {
		d.log.Info("member alive", "op", "liveness", "peer", member)
	} else {
		d.log.Warn("member dead", "op", "liveness", "peer", member)
	}
}

// Run joins the configured members, and again every RejoinInterval
// those not seen alive, until ctx is done; then it shuts memberlist
// down without a leave message (a stopping member is simply dead to the
// others, as when it crashes).
func (d *Detector) Run(ctx context.Context) error {
	defer d.Stop()
	t := time.NewTicker(d.rejoin)
	defer t.Stop()
	d.joinMissing()
	close(d.joined)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		d.joinMissing()
	}
}

// Joined is closed once Run has tried every configured member once:
// from then on, Alive reflects every member that answered. A member
// should not serve before, or it would take every other member for
// dead.
func (d *Detector) Joined() <-chan struct{} { return d.joined }

// Stop shuts memberlist down at once, without leaving: the others find
// this member dead. Safe to call more than once.
func (d *Detector) Stop() {
	if err := d.ml.Shutdown(); err != nil {
		d.log.Warn("stopping gossip", "op", "stop", "err", err)
	}
}

// joinMissing joins every configured member not seen alive.
func (d *Detector) joinMissing() {
	d.mu.Lock()
	var addrs []string
	for name, addr := range d.peers {
		if st, ok := d.state[name]; !ok || !st.Alive {
			addrs = append(addrs, addr)
		}
	}
	d.mu.Unlock()
	if len(addrs) == 0 {
		return
	}
	if _, err := d.ml.Join(addrs); err != nil {
		d.log.Debug("joining members", "op", "join", "err", err)
	}
}

// Collector returns the liveness metrics: appnode_member_alive per
// member and appnode_liveness_changes_total.
func (d *Detector) Collector() prometheus.Collector { return collector{d} }

type collector struct{ d *Detector }

var aliveDesc = prometheus.NewDesc("appnode_member_alive", "1 when the failure detector sees the member alive, 0 when dead.", []string{"member"}, nil)

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- aliveDesc
	c.d.changes.Describe(ch)
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	for _, st := range c.d.States() {
		v := 0.0
		if st.Alive {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(aliveDesc, prometheus.GaugeValue, v, st.Member)
	}
	c.d.changes.Collect(ch)
}

// events feeds memberlist's view into the detector. memberlist calls
// NotifyLeave when a member is declared dead.
type events struct{ d *Detector }

func (e events) NotifyJoin(n *memberlist.Node)   { e.d.set(n.Name, true) }
func (e events) NotifyLeave(n *memberlist.Node)  { e.d.set(n.Name, false) }
func (e events) NotifyUpdate(n *memberlist.Node) {}

// logWriter sends memberlist's log lines to slog at debug level: they
// are chatty, and liveness changes are logged by the detector itself.
type logWriter struct{ log *slog.Logger }

func (w logWriter) Write(b []byte) (int, error) {
	w.log.Debug(string(trimNL(b)))
	return len(b), nil
}

func trimNL(b []byte) []byte {
	for len(b) > 0 && b[len(b)-1] == '\n' {
		b = b[:len(b)-1]
	}
	return b
}

var _ io.Writer = logWriter{}
