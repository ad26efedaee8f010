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
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"
)

// Defaults for Config.
const (
	// DefaultProbeInterval is how often memberlist probes a member. With
	// DefaultSuspicionMult a dead, paused or cut-off member is declared
	// dead about a second after it stops answering (a probe interval to
	// notice, a probe timeout, then the suspicion timeout of
	// DefaultSuspicionMult probe intervals while others may confirm).
	// Each member sends one probe per interval, so the traffic stays at a
	// few hundred bytes per second per member whatever the cluster size.
	DefaultProbeInterval = 200 * time.Millisecond
	// DefaultSuspicionMult is memberlist's SuspicionMult: a suspected
	// member has this many probe intervals (scaled by log10 of the
	// cluster size) to refute before it is declared dead.
	DefaultSuspicionMult = 3
	// DefaultRejoinInterval is how often configured members that are not
	// seen alive are contacted again: often enough that a returning
	// member is back within seconds, rarely enough to cost nothing.
	DefaultRejoinInterval = 2 * time.Second
	// DefaultIsolatedAfter is how long a member may hear from none of its
	// peers after it starts (or after it last heard one) before it says
	// so as an error: long enough for a cluster starting together to
	// find itself, short enough that a broken config is seen at once.
	DefaultIsolatedAfter = 10 * time.Second
)

// Config configures a Detector.
type Config struct {
	// Name is this member's name: its advertised API address, as the
	// ring names it.
	Name string
	// Bind is the gossip address to bind (UDP and TCP, same port); port
	// 0 picks a free one (see Detector.Addr).
	Bind string
	// Advertise is the gossip address others reach this member at;
	// empty means Bind's (with the bound port).
	Advertise string
	// Peers are the other members' names (API addresses).
	Peers []string
	// Learn asks a member, by its API address, for its gossip address.
	// The detector calls it for peers whose gossip address it does not
	// know yet from memberlist; nil means peers are only found through
	// members already joined.
	Learn func(ctx context.Context, member string) (string, error)
	// Secret is the cluster secret; the gossip key is derived from it.
	Secret []byte
	// ProbeInterval and ProbeTimeout tune memberlist; zero means
	// DefaultProbeInterval and half of it.
	ProbeInterval, ProbeTimeout time.Duration
	// SuspicionMult is memberlist's SuspicionMult; zero means
	// DefaultSuspicionMult.
	SuspicionMult int
	// RejoinInterval is how often unseen peers are joined again; zero
	// means DefaultRejoinInterval.
	RejoinInterval time.Duration
	// IsolatedAfter is how long hearing from no peer is tolerated before
	// it is logged as an error (every RejoinInterval) and reported by
	// Isolated; zero means DefaultIsolatedAfter.
	IsolatedAfter time.Duration
	// OnReturn, when set, is called (on its own goroutine) when a peer
	// that was declared dead is alive again: the two were cut off from
	// each other, so each may have missed writes the other took.
	OnReturn func(member string)
	// Log is the logger; nil means slog.Default().
	Log *slog.Logger

	// transport, when set, carries gossip instead of UDP and TCP on
	// Bind: the tests' in-memory network, so they run in a
	// testing/synctest bubble.
	transport memberlist.Transport
}

// ReturnGrace is how long a peer that comes back from the dead counts
// as catching up (CatchingUp), whatever its gossip metadata says yet:
// it may have missed writes while it was cut off, and says so itself
// (in its metadata) only once it has seen the others again.
const ReturnGrace = 2 * time.Second

// Liveness is what the detector knows of a member.
type Liveness int8

const (
	// Unknown: never seen alive since this member started, and not
	// declared dead either ("not seen yet"): a caller should try it.
	Unknown Liveness = iota
	// Alive: memberlist sees it.
	Alive
	// Dead: memberlist declared it dead (it stopped answering probes).
	Dead
)

func (l Liveness) String() string {
	switch l {
	case Alive:
		return "alive"
	case Dead:
		return "dead"
	}
	return "unknown"
}

// MarshalText writes the state's name.
func (l Liveness) MarshalText() ([]byte, error) { return []byte(l.String()), nil }

// UnmarshalText reads a state's name.
func (l *Liveness) UnmarshalText(b []byte) error {
	switch string(b) {
	case "alive":
		*l = Alive
	case "dead":
		*l = Dead
	case "unknown", "":
		*l = Unknown
	default:
		return fmt.Errorf("liveness %q is not alive, dead or unknown", b)
	}
	return nil
}

// State is one member's liveness as this member sees it.
type State struct {
	Member string   `json:"member"`
	State  Liveness `json:"state"`
	// Since is when the state last changed (zero: never seen).
	Since time.Time `json:"since,omitzero"`
	// Gossip is the member's gossip address, when known.
	Gossip string `json:"gossip,omitempty"`
	// CatchingUp says the member is still catching up after a start.
	CatchingUp bool `json:"catching_up,omitempty"`
	// RTT is the last measured round trip of a probe.
	RTT time.Duration `json:"rtt,omitempty"`
	// Problem says why a member not seen alive could not be reached.
	Problem string `json:"problem,omitempty"`
}

// Alive reports whether the state is Alive.
func (s State) Alive() bool { return s.State == Alive }

// peer is the detector's record of one other member.
type peer struct {
	state    Liveness
	since    time.Time
	returned time.Time // when it last came back from Dead

	gossip     string // known gossip address ("" until learned)
	catchingUp bool
	rtt        time.Duration
	problem    string
}

// Detector tracks which members are alive. Its methods are safe for
// concurrent use.
type Detector struct {
	name      string
	log       *slog.Logger
	ml        *memberlist.Memberlist
	learn     func(context.Context, string) (string, error)
	onReturn  func(string)
	rejoin    time.Duration
	isolated  time.Duration
	probeTime time.Duration

	// mu guards peers, catchingUp, lastHeard and isolatedLog. Never
	// call into memberlist while holding it: memberlist calls the
	// detector (set, NodeMeta, pings) under its own locks.
	mu         sync.Mutex
	peers      map[string]*peer
	catchingUp bool
	lastHeard  time.Time // when a peer was last alive (or the start)

	// announcing serializes metadata announcements: memberlist reads
	// the metadata before it numbers the announcement, so two at once
	// could leave an older state with the newer number, and the others
	// would believe it for good. A channel of one slot rather than a
	// mutex: a wait on it is durable in a testing/synctest bubble, so
	// the tests' clock moves while an announcement waits for its
	// broadcast.
	announcing      chan struct{}
	announceWaiting atomic.Bool // an announcement waits for announcing

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
		cfg.ProbeTimeout = cfg.ProbeInterval / 2
	}
	if cfg.SuspicionMult == 0 {
		cfg.SuspicionMult = DefaultSuspicionMult
	}
	if cfg.RejoinInterval == 0 {
		cfg.RejoinInterval = DefaultRejoinInterval
	}
	if cfg.IsolatedAfter == 0 {
		cfg.IsolatedAfter = DefaultIsolatedAfter
	}
	host, port, err := splitHostPort(cfg.Bind)
	if err != nil {
		return nil, fmt.Errorf("gossip bind %q: %w", cfg.Bind, err)
	}
	d := &Detector{
		name:       cfg.Name,
		log:        cfg.Log.With("subsystem", "gossip"),
		learn:      cfg.Learn,
		onReturn:   cfg.OnReturn,
		rejoin:     cfg.RejoinInterval,
		isolated:   cfg.IsolatedAfter,
		probeTime:  cfg.ProbeTimeout,
		peers:      map[string]*peer{},
		lastHeard:  time.Now(),
		joined:     make(chan struct{}),
		announcing: make(chan struct{}, 1),
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
	mc.SuspicionMult = cfg.SuspicionMult
	// The suspicion timeout starts at this multiple of its minimum and
	// shrinks as other members confirm the suspicion; 2 keeps a member
	// that only one prober lost sight of from waiting much longer.
	mc.SuspicionMaxTimeoutMult = 2
	// Gossip and push-pull scale with the probe interval, so a faster
	// profile converges as much faster.
	mc.GossipInterval = cfg.ProbeInterval / 2
	mc.PushPullInterval = 15 * cfg.ProbeInterval
	mc.TCPTimeout = max(5*cfg.ProbeTimeout, time.Second)
	// A member that restarts keeps its name and address, so it may
	// reclaim its name at once.
	mc.DeadNodeReclaimTime = time.Nanosecond
	mc.Events = events{d}
	mc.Delegate = delegate{d}
	mc.Ping = pings{d}
	mc.Logger = log.New(logWriter{d.log}, "", 0)
	mc.Transport = cfg.transport
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

// Addr is the gossip address other members reach this one at (the
// advertised host and the bound port).
func (d *Detector) Addr() string {
	n := d.ml.LocalNode()
	return net.JoinHostPort(n.Addr.String(), strconv.Itoa(int(n.Port)))
}

// SetPeers replaces the members this one keeps joining (after a
// reload); members no longer listed are forgotten.
func (d *Detector) SetPeers(peers []string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	keep := map[string]bool{}
	for _, name := range peers {
		if name == d.name {
			continue
		}
		keep[name] = true
		if d.peers[name] == nil {
			d.peers[name] = &peer{}
		}
	}
	for name := range d.peers {
		if !keep[name] {
			delete(d.peers, name)
		}
	}
}

// Liveness reports what the detector knows of member: this member is
// always Alive; members that are not configured are Dead.
func (d *Detector) Liveness(member string) Liveness {
	if member == d.name {
		return Alive
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	p := d.peers[member]
	if p == nil {
		return Dead
	}
	return p.state
}

// Alive reports whether member is Alive.
func (d *Detector) Alive(member string) bool { return d.Liveness(member) == Alive }

// CatchingUp reports whether member says (in its gossip metadata) that
// it is still catching up, or came back from the dead less than
// ReturnGrace ago; for this member, what SetCatchingUp set.
func (d *Detector) CatchingUp(member string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if member == d.name {
		return d.catchingUp
	}
	p := d.peers[member]
	return p != nil && (p.catchingUp || p.state == Alive && time.Since(p.returned) < ReturnGrace)
}

// SetCatchingUp sets whether this member is catching up, and tells the
// others in its gossip metadata.
func (d *Detector) SetCatchingUp(on bool) {
	d.mu.Lock()
	changed := d.catchingUp != on
	d.catchingUp = on
	d.mu.Unlock()
	if !changed {
		return
	}
	// UpdateNode waits for the broadcast to go out (bounded); the
	// caller does not need to. One at a time, each with the state of
	// when it runs: the last to run announces the last state. And at
	// most one waiting: it will announce whatever the state is then.
	if !d.announceWaiting.CompareAndSwap(false, true) {
		return
	}
	go func() {
		d.announcing <- struct{}{}
		d.announceWaiting.Store(false) // a change from now on needs another
		defer func() { <-d.announcing }()
		if err := d.ml.UpdateNode(time.Second); err != nil {
			d.log.Debug("announcing the catch-up state", "op", "meta", "err", err)
		}
	}()
}

// RTT is the last measured probe round trip to member (0: none yet).
func (d *Detector) RTT(member string) time.Duration {
	d.mu.Lock()
	defer d.mu.Unlock()
	if p := d.peers[member]; p != nil {
		return p.rtt
	}
	return 0
}

// States lists every configured member's liveness, this one included,
// sorted by name.
func (d *Detector) States() []State {
	// Asked before d.mu: memberlist holds its node lock while it tells
	// the detector of a join or an update (set, under d.mu), so asking
	// it for anything under d.mu deadlocks both.
	addr := d.Addr()
	d.mu.Lock()
	defer d.mu.Unlock()
	out := []State{{Member: d.name, State: Alive, Gossip: addr, CatchingUp: d.catchingUp}}
	for name, p := range d.peers {
		out = append(out, State{Member: name, State: p.state, Since: p.since, Gossip: p.gossip,
			CatchingUp: p.catchingUp || p.state == Alive && time.Since(p.returned) < ReturnGrace, RTT: p.rtt, Problem: p.problem})
	}
	slices.SortFunc(out, func(a, b State) int { return strings.Compare(a.Member, b.Member) })
	return out
}

// AliveCount counts the members seen alive, this one included, and the
// configured members.
func (d *Detector) AliveCount() (alive, members int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	alive = 1
	for _, p := range d.peers {
		if p.state == Alive {
			alive++
		}
	}
	return alive, len(d.peers) + 1
}

// Isolated reports whether this member has heard from none of its
// peers for longer than IsolatedAfter, and if so a sentence saying so.
func (d *Detector) Isolated() (bool, string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.isolatedLocked(time.Now())
}

func (d *Detector) isolatedLocked(now time.Time) (bool, string) {
	if len(d.peers) == 0 {
		return false, ""
	}
	for _, p := range d.peers {
		if p.state == Alive {
			return false, ""
		}
	}
	silent := now.Sub(d.lastHeard)
	if silent < d.isolated {
		return false, ""
	}
	var why []string
	for _, name := range slices.Sorted(mapKeys(d.peers)) {
		p := d.peers[name]
		switch {
		case p.problem != "":
			why = append(why, name+": "+p.problem)
		case p.state == Dead:
			why = append(why, name+": dead since "+p.since.Format(time.TimeOnly))
		default:
			why = append(why, name+": no answer")
		}
	}
	return true, fmt.Sprintf("hears from none of its %d peers for %.0fs (%s)", len(d.peers), silent.Seconds(), strings.Join(why, "; "))
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// set records member's liveness.
func (d *Detector) set(n *memberlist.Node, state Liveness) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if n.Name == d.name {
		return
	}
	p := d.peers[n.Name]
	if p == nil {
		d.log.Warn("gossip from a member that is not configured", "peer", n.Name)
		return
	}
	p.catchingUp = decodeMeta(n.Meta).catchingUp
	if state == Alive {
		p.gossip, p.problem = net.JoinHostPort(n.Addr.String(), strconv.Itoa(int(n.Port))), ""
		d.lastHeard = time.Now()
	}
	if p.state == state {
		return
	}
	back := p.state == Dead && state == Alive
	p.state, p.since = state, time.Now()
	d.changes.Inc()
	if back {
		p.returned = p.since
		if d.onReturn != nil {
			go d.onReturn(n.Name)
		}
	}
	if state == Alive {
		d.log.Info("member alive", "op", "liveness", "peer", n.Name)
	} else {
		d.log.Warn("member dead", "op", "liveness", "peer", n.Name)
	}
}

// meta is what a member says about itself in its gossip metadata.
type meta struct{ catchingUp bool }

// metaVersion leads the metadata; a reader ignores a version it does
// not know rather than misreading it.
const metaVersion = 1

func (m meta) encode() []byte {
	var flags byte
	if m.catchingUp {
		flags |= 1
	}
	return []byte{metaVersion, flags}
}

func decodeMeta(b []byte) meta {
	if len(b) < 2 || b[0] != metaVersion {
		return meta{}
	}
	return meta{catchingUp: b[1]&1 != 0}
}

// Run joins the configured members, and again every RejoinInterval
// those not seen alive, until ctx is done; then it shuts memberlist down
// without a leave message (a stopping member is simply dead to the
// others, as when it crashes). While it hears from no peer for longer
// than IsolatedAfter it logs an error every RejoinInterval.
func (d *Detector) Run(ctx context.Context) error {
	defer d.Stop()
	t := time.NewTicker(d.rejoin)
	defer t.Stop()
	d.joinMissing(ctx)
	close(d.joined)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		d.joinMissing(ctx)
		if iso, why := d.Isolated(); iso {
			d.log.Error("this member "+why, "op", "join")
		}
	}
}

// Joined is closed once Run has tried every configured member once:
// from then on, Liveness reflects every member that answered. A member
// should not serve before.
func (d *Detector) Joined() <-chan struct{} { return d.joined }

// Stop shuts memberlist down at once, without leaving: the others find
// this member dead. Safe to call more than once.
func (d *Detector) Stop() {
	if err := d.ml.Shutdown(); err != nil {
		d.log.Warn("stopping gossip", "op", "stop", "err", err)
	}
}

// maxJoins bounds the joins (and address lookups) run at once.
const maxJoins = 8

// joinMissing joins every configured member not seen alive: at its
// known gossip address, or at the one it says it has (Learn).
func (d *Detector) joinMissing(ctx context.Context) {
	d.mu.Lock()
	type target struct{ name, addr string }
	var todo []target
	for name, p := range d.peers {
		if p.state != Alive {
			todo = append(todo, target{name, p.gossip})
		}
	}
	d.mu.Unlock()
	if len(todo) == 0 {
		return
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(maxJoins)
	for _, tg := range todo {
		g.Go(func() error {
			addr := tg.addr
			if addr == "" {
				if d.learn == nil {
					d.problem(tg.name, "", "gossip address unknown (it has not joined anyone this member knows)")
					return nil
				}
				lctx, cancel := context.WithTimeout(gctx, d.rejoin)
				a, err := d.learn(lctx, tg.name)
				cancel()
				if err != nil {
					d.problem(tg.name, "", "could not learn its gossip address: "+err.Error())
					return nil
				}
				addr = a
			}
			if _, err := d.ml.Join([]string{addr}); err != nil {
				// A learned address may be out of date (the member
				// restarted elsewhere): learn it again next time.
				d.problem(tg.name, "", fmt.Sprintf("joining its gossip address %s: %v", addr, trimJoinErr(err)))
				return nil
			}
			d.problem(tg.name, addr, "")
			return nil
		})
	}
	g.Wait()
}

// problem records why member could not be joined ("" once joined), and
// the gossip address it was joined at: after a failure the address is
// forgotten, so the next round learns it again (the member may have
// restarted on another port).
func (d *Detector) problem(member, addr, why string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	p := d.peers[member]
	if p == nil || p.state == Alive {
		return
	}
	p.problem = why
	if why != "" {
		p.gossip = ""
	} else if addr != "" {
		p.gossip = addr
	}
}

// trimJoinErr shortens memberlist's join error, which repeats the
// address and wraps one error in several layers.
func trimJoinErr(err error) string {
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 && strings.Contains(s, "Failed to join") {
		return strings.TrimSpace(s[i+2:])
	}
	return s
}

// Collector returns the liveness metrics: appnode_member_alive per
// member, appnode_members_alive and appnode_liveness_changes_total.
func (d *Detector) Collector() prometheus.Collector { return collector{d} }

type collector struct{ d *Detector }

var (
	aliveDesc = prometheus.NewDesc("appnode_member_alive",
		"1 when the failure detector sees the member alive, 0 when dead or not seen yet.", []string{"member"}, nil)
	stateDesc = prometheus.NewDesc("appnode_member_state",
		"1 for the state the failure detector sees the member in (unknown: not seen yet since this member started; alive; dead), 0 for the others.",
		[]string{"member", "state"}, nil)
	aliveCountDesc = prometheus.NewDesc("appnode_members_alive",
		"Members the failure detector sees alive, this one included.", nil, nil)
	membersDesc = prometheus.NewDesc("appnode_members",
		"Members configured, this one included.", nil, nil)
	isolatedDesc = prometheus.NewDesc("appnode_isolated",
		"1 while this member has heard from none of its peers for longer than the isolation threshold.", nil, nil)
)

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- aliveDesc
	ch <- stateDesc
	ch <- aliveCountDesc
	ch <- membersDesc
	ch <- isolatedDesc
	c.d.changes.Describe(ch)
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	for _, st := range c.d.States() {
		v := 0.0
		if st.Alive() {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(aliveDesc, prometheus.GaugeValue, v, st.Member)
		for _, l := range []Liveness{Unknown, Alive, Dead} {
			v := 0.0
			if st.State == l {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(stateDesc, prometheus.GaugeValue, v, st.Member, l.String())
		}
	}
	alive, members := c.d.AliveCount()
	ch <- prometheus.MustNewConstMetric(aliveCountDesc, prometheus.GaugeValue, float64(alive))
	ch <- prometheus.MustNewConstMetric(membersDesc, prometheus.GaugeValue, float64(members))
	iso := 0.0
	if ok, _ := c.d.Isolated(); ok {
		iso = 1
	}
	ch <- prometheus.MustNewConstMetric(isolatedDesc, prometheus.GaugeValue, iso)
	c.d.changes.Collect(ch)
}

// events feeds memberlist's view into the detector. memberlist calls
// NotifyLeave when a member is declared dead.
type events struct{ d *Detector }

func (e events) NotifyJoin(n *memberlist.Node)   { e.d.set(n, Alive) }
func (e events) NotifyLeave(n *memberlist.Node)  { e.d.set(n, Dead) }
func (e events) NotifyUpdate(n *memberlist.Node) { e.d.set(n, Alive) }

// delegate gives memberlist this member's metadata; appnode sends no
// other messages over gossip.
type delegate struct{ d *Detector }

func (g delegate) NodeMeta(limit int) []byte {
	g.d.mu.Lock()
	defer g.d.mu.Unlock()
	return meta{catchingUp: g.d.catchingUp}.encode()
}
func (delegate) NotifyMsg([]byte)                    {}
func (delegate) GetBroadcasts(int, int) [][]byte     { return nil }
func (delegate) LocalState(bool) []byte              { return nil }
func (delegate) MergeRemoteState(buf []byte, _ bool) {}

// pings records each probe's round trip.
type pings struct{ d *Detector }

func (pings) AckPayload() []byte { return nil }

func (p pings) NotifyPingComplete(n *memberlist.Node, rtt time.Duration, _ []byte) {
	p.d.mu.Lock()
	defer p.d.mu.Unlock()
	if pr := p.d.peers[n.Name]; pr != nil {
		pr.rtt = rtt
	}
}

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
