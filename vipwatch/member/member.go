package member

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/ringfront/ringfront/internal/health"
	"github.com/ringfront/ringfront/vipwatch/fsm"
	"github.com/ringfront/ringfront/vipwatch/heartbeat"
	"github.com/ringfront/ringfront/vipwatch/probe"
)

// addresser is the interface's address table, as far as vipwatch
// touches it. vipwatch/iface is the real one.
type addresser interface {
	Add(netip.Prefix) error            // idempotent, labelled as vipwatch's
	Delete(netip.Prefix) error         // absent is not an error
	Labelled() ([]netip.Prefix, error) // addresses carrying vipwatch's label
}

// announcer sends gratuitous ARP. vipwatch/announce is the real one.
type announcer interface {
	Announce(netip.Addr) (frames int, err error)
}

// asker asks the LAN whether addresses answer: which of targets
// answered within timeout. vipwatch/probe is the real one.
type asker interface {
	Ask(targets []netip.Addr, timeout time.Duration) (probe.Answers, error)
}

// removalWatcher reports addresses removed from the interface, until
// ctx is done (the channel is then closed).
type removalWatcher func(ctx context.Context) (<-chan netip.Prefix, error)

// linkWatcher reports the interface's link state: the current state
// first, then changes, until ctx is done.
type linkWatcher func(ctx context.Context) (<-chan bool, error)

// Member is one running vipwatch daemon. Create it with Open (or
// newMember in tests), call Listen, then Run. Status, Alive and Reload
// are safe to call from any goroutine while Run runs.
type Member struct {
	cfg   Config
	log   *slog.Logger
	addrs addresser
	ann   announcer
	links linkWatcher
	// removals, if set, reports addresses deleted from the interface,
	// so that a held VIP someone removed is put back.
	removals removalWatcher
	boot     uint64
	tick     time.Duration
	peer     *net.UDPAddr
	key      atomic.Pointer[[]byte]
	conn     net.PacketConn // receives heartbeats (and sends them when out is nil)
	// out sends heartbeats on a socket connected to the peer, so that
	// the peer machine's ICMP port unreachable (no daemon listening)
	// comes back as ECONNREFUSED.
	out *net.UDPConn

	// hook hears every state change (nil: no notify command).
	hook hook
	// runner is the notify command's runner behind hook, if any.
	runner *hookRunner
	// hookState is the daemon state last told to the hook (loop only).
	hookState heartbeat.State

	// trackProber runs the track check's probes (nil: the network).
	trackProber health.Prober

	// witnessAsk runs witness rounds (nil: no witness configured);
	// witnessTargets are the addresses it asks (witness.targets, or the
	// default gateways found at start).
	witnessAsk     asker
	witnessTargets []netip.Addr
	// vipAsk4 and vipAsk6 ask whether another machine answers for a
	// VIP (ARP, NDP) before a silent partner's VIP is claimed.
	vipAsk4, vipAsk6 asker
	// bg runs VIP probes for the loop while Run runs; their answers
	// come back on probed.
	bg      *errgroup.Group
	bgCtx   context.Context
	probed  chan probeAnswer
	askVIPs []netip.Prefix // Probe actions of the current apply (loop only)

	// OnReady, if set before Run, is called with true when the daemon
	// starts serving (out of starting) and false when it stops.
	OnReady func(bool)

	lastLoop atomic.Int64 // unix nanos of the last loop iteration

	// commands carries operator commands (handover, takeback) into the
	// loop, which owns the state machine.
	commands chan command
	stopped  chan struct{} // closed when Run returns

	mu sync.Mutex // guards st
	st snapshot
}

// notifyStopDrain bounds how long a stopping daemon waits for the last
// notify hooks: well inside systemd's TimeoutStopSec (10s in
// vipwatch.service). The VIPs are released before it starts.
const notifyStopDrain = 5 * time.Second

// command is work for the loop: run with the machine, its error sent
// back on done (buffered).
type command struct {
	run  func(*fsm.Machine) error
	done chan error
}

// Errors of Handover and Takeback that callers branch on.
var (
	// ErrNotHome: a VIP named in a handover is not one of this node's
	// home VIPs.
	ErrNotHome = errors.New("not a home VIP of this node")
	// ErrPartnerDown: the partner is not up (or its tracked service
	// fails), so a handover would leave the VIP where it is.
	ErrPartnerDown = errors.New("the partner cannot take VIPs now")
	// ErrNotRunning: the daemon loop is not running.
	ErrNotRunning = errors.New("the vipwatch loop is not running")
)

// probeAnswer is the answer to one VIP probe.
type probeAnswer struct {
	vip  netip.Prefix
	free bool // no machine answered for it, a witness did
}

// snapshot is what Status reports, updated by the loop.
type snapshot struct {
	fault string // why the state is fault ("" otherwise)
	// witnessKnown, witnessUp: the witness state the loop last heard;
	// witnessLastOK is the time of the last answered round, and
	// witnessFailed counts unanswered rounds in a row.
	witnessKnown, witnessUp bool
	witnessLastOK           time.Time
	witnessFailed           int
	state                   heartbeat.State
	holds                   map[netip.Prefix]time.Time
	partner                 *heartbeat.Heartbeat
	partnerUp               bool
	lastHeard               time.Time
	// lastUnproven and unprovenBoot: the last heartbeat that proved
	// nothing; the warning about them is spaced (lastUnprovenWarn,
	// unprovenSinceWarn counts since).
	lastUnproven      time.Time
	unprovenBoot      uint64
	lastUnprovenWarn  time.Time
	unprovenSinceWarn int
	counters          Counters
	reclaimSent       bool
	gives             []netip.Prefix
	healthy           bool
}

// Counters are the daemon's event counts since it started.
type Counters struct {
	HeartbeatsSent     uint64            `json:"heartbeats_sent"`
	HeartbeatsReceived uint64            `json:"heartbeats_received"`
	HeartbeatsDropped  map[string]uint64 `json:"heartbeats_dropped"`
	HeartbeatsRefused  uint64            `json:"heartbeats_refused"`
	SendErrors         uint64            `json:"send_errors"`
	Claims             uint64            `json:"claims"`
	Releases           uint64            `json:"releases"`
	AddressErrors      uint64            `json:"address_errors"`
	GARPsSent          uint64            `json:"garps_sent"`
	GARPErrors         uint64            `json:"garp_errors"`
	StaleRemoved       uint64            `json:"stale_removed"`
	TrackFailures      uint64            `json:"track_failures"`
	AddressesRestored  uint64            `json:"addresses_restored"`
	NotifyRuns         uint64            `json:"notify_runs"`
	NotifyFailures     uint64            `json:"notify_failures"`
	WitnessRounds      uint64            `json:"witness_rounds"`
	WitnessFailures    uint64            `json:"witness_rounds_failed"`
	WitnessLost        uint64            `json:"witness_lost"`
	VIPProbes          uint64            `json:"vip_probes"`
	VIPProbesAnswered  uint64            `json:"vip_probes_answered"`
	ProbeErrors        uint64            `json:"probe_errors"`
}

func newMember(cfg Config, key []byte, log *slog.Logger, addrs addresser, ann announcer, links linkWatcher) *Member {
	m := &Member{
		cfg:   cfg,
		log:   log,
		addrs: addrs,
		ann:   ann,
		links: links,
		boot:  newBootID(),
		tick:  TickPeriod(cfg.Interval),
		peer:  net.UDPAddrFromAddrPort(cfg.Peer),

		commands: make(chan command),
		stopped:  make(chan struct{}),
		probed:   make(chan probeAnswer, 2*heartbeat.MaxVIPs),
	}
	if cfg.Witness != nil {
		m.witnessTargets = cfg.Witness.Targets
	}
	m.key.Store(&key)
	if len(cfg.Notify.Command) > 0 {
		m.runner = newHookRunner(cfg.Notify, cfg.Node, log, m.count)
		m.hook = m.runner
	}
	m.st.state = heartbeat.StateStarting
	m.hookState = heartbeat.StateStarting
	m.st.healthy = true
	m.st.holds = map[netip.Prefix]time.Time{}
	m.st.counters.HeartbeatsDropped = map[string]uint64{}
	for _, r := range dropReasons() {
		m.st.counters.HeartbeatsDropped[r] = 0
	}
	return m
}

func newBootID() uint64 {
	var b [8]byte
	rand.Read(b[:])
	return binary.BigEndian.Uint64(b[:]) | 1 // never zero: zero means "none" in acks
}

// TickPeriod is the state machine's tick for a heartbeat interval: a
// tenth of it, so the dead interval is measured to within a tenth of a
// heartbeat, but at least a millisecond.
func TickPeriod(interval time.Duration) time.Duration {
	return max(interval/10, time.Millisecond)
}

func ticks(d, tick time.Duration) int {
	if d <= 0 {
		return 0
	}
	return int((d + tick - 1) / tick)
}

// machineConfig turns durations into ticks.
func (m *Member) machineConfig() fsm.Config {
	c := m.cfg
	return fsm.Config{
		Home:              c.HomeVIPs,
		Partner:           c.PartnerVIPs,
		BootID:            m.boot,
		HeartbeatTicks:    ticks(c.Interval, m.tick),
		DeadTicks:         ticks(c.DeadAfter, m.tick),
		Preempt:           c.PreemptEnabled(),
		PreemptDelayTicks: ticks(c.PreemptDelay, m.tick),
		GARPCount:         c.GARP.Count,
		GARPIntervalTicks: ticks(c.GARP.Interval, m.tick),
		GARPRefreshTicks:  ticks(c.GARP.Refresh, m.tick),
		Witness:           c.Witness != nil,
		FaultReleaseTicks: ticks(c.FaultReleaseAfter, m.tick),
		ProbeTicks:        ticks(max(c.Interval, m.vipProbeTimeout()), m.tick),
	}
}

// vipProbeTimeout bounds a VIP probe: the witness timeout, but at most
// half the dead interval, since probes start half a dead interval into
// the partner's silence and the answer should be in when it ends.
func (m *Member) vipProbeTimeout() time.Duration {
	if m.cfg.Witness == nil {
		return 0
	}
	return max(min(m.cfg.Witness.Timeout, m.cfg.DeadAfter/2), time.Millisecond)
}

// Listen binds the heartbeat socket. Use Addr for the bound address.
func (m *Member) Listen() error {
	conn, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(m.cfg.Bind))
	if err != nil {
		return fmt.Errorf("binding heartbeat socket %v: %w", m.cfg.Bind, err)
	}
	local := &net.UDPAddr{IP: m.cfg.Bind.Addr().AsSlice()}
	out, err := net.DialUDP("udp", local, m.peer)
	if err != nil {
		conn.Close()
		return fmt.Errorf("opening heartbeat socket to %v: %w", m.cfg.Peer, err)
	}
	m.conn, m.out = conn, out
	return nil
}

// Addr is the bound heartbeat address, after Listen.
func (m *Member) Addr() net.Addr { return m.conn.LocalAddr() }

// Cleanup removes every address with vipwatch's label: a daemon holds
// nothing when it starts, so whatever carries the label was left by a
// run that did not release it (a crash, SIGKILL). It returns what it
// removed. Run calls it first; `vipwatch release-all` is the same.
func Cleanup(addrs interface {
	Delete(netip.Prefix) error
	Labelled() ([]netip.Prefix, error)
}) ([]netip.Prefix, error) {
	stale, err := addrs.Labelled()
	if err != nil {
		return nil, err
	}
	var removed []netip.Prefix
	var errs []error
	for _, p := range stale {
		if err := addrs.Delete(p); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, p)
	}
	return removed, errors.Join(errs...)
}

// Run cleans up stale addresses, then runs the pair protocol until ctx
// is done; then it releases every VIP, tells the partner, and returns.
func (m *Member) Run(ctx context.Context) error {
	if m.conn == nil {
		return errors.New("vipwatch: Run before Listen")
	}
	removed, err := Cleanup(m.addrs)
	for _, p := range removed {
		m.log.Info("removed stale vipwatch address", "op", "cleanup", "interface", m.cfg.Interface, "ip", p)
	}
	m.count(func(c *Counters) { c.StaleRemoved += uint64(len(removed)) })
	if err != nil {
		m.conn.Close()
		return fmt.Errorf("removing stale addresses from %s: %w", m.cfg.Interface, err)
	}
	defer close(m.stopped)
	if m.runner != nil {
		// Hooks outlive the loop by their drain: the last events
		// (released VIPs, stopping) are queued as it ends.
		hctx, stopHooks := context.WithCancel(context.WithoutCancel(ctx))
		done := make(chan struct{})
		go func() { defer close(done); m.runner.Run(hctx, min(m.cfg.Notify.Timeout, notifyStopDrain)) }()
		defer func() { stopHooks(); <-done }()
	}
	machine := fsm.New(m.machineConfig())
	m.log.Info("starting", "op", "start", "node", m.cfg.Node, "peer", m.cfg.Peer, "boot_id", fmt.Sprintf("%016x", m.boot),
		"tick_s", m.tick.Seconds(), "dead_after_s", m.cfg.DeadAfter.Seconds(), "witness", m.witnessAsk != nil)

	bgCtx, stopBg := context.WithCancel(ctx)
	m.bg, m.bgCtx = &errgroup.Group{}, bgCtx
	defer func() { stopBg(); m.bg.Wait() }()
	var witness <-chan bool
	if m.witnessAsk != nil {
		ch := make(chan bool, 1)
		witness = ch
		m.bg.Go(func() error { m.watchWitness(bgCtx, ch); return nil })
	}

	beats := make(chan arrival, 64)
	refused := make(chan struct{}, 1)
	var g errgroup.Group
	g.Go(func() error { m.read(beats); return nil })
	if m.out != nil {
		g.Go(func() error { m.watchRefusals(refused); return nil })
	}
	defer func() {
		// After the last heartbeat: ends read and watchRefusals.
		m.conn.Close()
		if m.out != nil {
			m.out.Close()
		}
		g.Wait()
	}()

	lctx, stopLinks := context.WithCancel(ctx)
	defer stopLinks()
	var links <-chan bool
	var relink <-chan time.Time
	watch := func() {
		if m.links == nil {
			return
		}
		ch, err := m.links(lctx)
		if err != nil {
			m.log.Warn("cannot watch the link; retrying in 1s", "op", "link", "interface", m.cfg.Interface, "err", err)
			relink = time.After(time.Second)
			return
		}
		links = ch
	}
	watch()

	var removals <-chan netip.Prefix
	var rewatch <-chan time.Time
	watchRemovals := func() {
		if m.removals == nil {
			return
		}
		ch, err := m.removals(lctx)
		if err != nil {
			m.log.Warn("cannot watch the interface's addresses; retrying in 1s", "op", "addr", "interface", m.cfg.Interface, "err", err)
			rewatch = time.After(time.Second)
			return
		}
		removals = ch
	}
	watchRemovals()

	var tracked <-chan struct{}
	var trackSub *health.Subscription
	if m.cfg.Track != nil {
		mon := health.NewMonitor(health.Options{Prober: m.trackProber, Logger: m.log})
		err := mon.Set([]health.Target{{ID: "track", Addr: netip.MustParseAddr(TrackAddress), Check: *m.cfg.Track}})
		if err != nil {
			return fmt.Errorf("setting up the track check: %w", err)
		}
		trackSub = mon.Subscribe()
		defer trackSub.Close()
		tracked = trackSub.Ready()
		var tg errgroup.Group
		tg.Go(func() error { return mon.Run(lctx) })
		defer tg.Wait() // after stopLinks (deferred later, run earlier)
		defer stopLinks()
	}

	ticker := time.NewTicker(m.tick)
	defer ticker.Stop()
	// The machine's clock is brought up to the time of each event
	// before the event: a heartbeat counts at the tick it arrived in,
	// whichever of the ticker and the heartbeat the loop sees first.
	last := time.Now()
	advance := func(to time.Time) {
		if n := int64(to.Sub(last) / m.tick); n >= 1 {
			last = last.Add(time.Duration(n) * m.tick)
			m.apply(machine, machine.Tick(n))
		}
	}
	heard := func(a arrival) {
		advance(a.at)
		acts, drop := machine.Heartbeat(a.h)
		m.heard(a, drop)
		m.apply(machine, acts)
	}
	m.apply(machine, machine.Tick(1))
	for {
		m.lastLoop.Store(time.Now().UnixNano())
		m.publish(machine)
		select {
		case <-ctx.Done():
			m.log.Info("stopping: releasing VIPs and telling the partner", "op", "stop")
			m.apply(machine, machine.Stop())
			m.publish(machine)
			return nil
		case now := <-ticker.C:
			// Heartbeats that arrived meanwhile count before the clock
			// moves on: after a scheduling hiccup the partner is not
			// declared silent while its heartbeat waits in the queue.
			for drained := false; !drained; {
				select {
				case a := <-beats:
					heard(a)
				default:
					drained = true
				}
			}
			advance(now)
		case a := <-beats:
			heard(a)
		case up, ok := <-links:
			if !ok {
				links = nil
				if ctx.Err() == nil {
					m.log.Warn("link watch ended; restarting it in 1s", "op", "link", "interface", m.cfg.Interface)
					relink = time.After(time.Second)
				}
				continue
			}
			m.log.Info("link changed", "op", "link", "interface", m.cfg.Interface, "up", up)
			advance(time.Now())
			m.apply(machine, machine.Link(up))
		case <-refused:
			m.count(func(c *Counters) { c.HeartbeatsRefused++ })
			m.log.Debug("partner refused a heartbeat: no daemon listens there", "op", "receive", "peer", m.cfg.Peer)
			advance(time.Now())
			m.apply(machine, machine.Refused())
		case <-relink:
			relink = nil
			watch()
		case p, ok := <-removals:
			if !ok {
				removals = nil
				if ctx.Err() == nil {
					m.log.Warn("address watch ended; restarting it in 1s", "op", "addr", "interface", m.cfg.Interface)
					rewatch = time.After(time.Second)
				}
				continue
			}
			advance(time.Now())
			m.apply(machine, machine.Removed(p))
		case <-rewatch:
			rewatch = nil
			watchRemovals()
		case <-tracked:
			for _, ev := range trackSub.Drain() {
				if ev.To == health.Unknown {
					continue
				}
				ok := ev.To == health.Up
				m.log.Info("tracked service changed", "op", "track", "up", ok, "result", ev.Result.String())
				m.count(func(c *Counters) {
					if !ok {
						c.TrackFailures++
					}
				})
				advance(time.Now())
				m.apply(machine, machine.Track(ok))
			}
		case c := <-m.commands:
			advance(time.Now())
			c.done <- c.run(machine)
		case ok := <-witness:
			advance(time.Now())
			m.mu.Lock()
			m.st.witnessKnown, m.st.witnessUp = true, ok
			if !ok {
				m.st.counters.WitnessLost++
			}
			m.mu.Unlock()
			m.apply(machine, machine.Witness(ok))
		case a := <-m.probed:
			advance(time.Now())
			m.apply(machine, machine.Probed(a.vip, a.free))
		}
	}
}

// do runs f in the loop and returns its error.
func (m *Member) do(ctx context.Context, f func(*fsm.Machine) error) error {
	c := command{run: f, done: make(chan error, 1)}
	select {
	case m.commands <- c:
	case <-m.stopped:
		return ErrNotRunning
	case <-ctx.Done():
		return fmt.Errorf("%w: %w", ErrNotRunning, ctx.Err())
	}
	select {
	case err := <-c.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Handover gives home VIPs (all of them if vips is empty) to the
// partner: the partner claims and announces them, then this daemon
// releases them. It returns once the handover has started; Status shows
// when it is done. It is safe to call from any goroutine while Run runs.
func (m *Member) Handover(ctx context.Context, vips []netip.Prefix) error {
	for _, v := range vips {
		if !slices.Contains(m.cfg.HomeVIPs, v) {
			return fmt.Errorf("handing over %v: %w (home VIPs: %v)", v, ErrNotHome, m.cfg.HomeVIPs)
		}
	}
	return m.do(ctx, func(machine *fsm.Machine) error {
		p, _ := machine.Partner()
		if !machine.PartnerUp() || machine.State() != heartbeat.StateRunning {
			return fmt.Errorf("handing over: %w (this node is %v, partner up: %v)", ErrPartnerDown, machine.State(), machine.PartnerUp())
		}
		if p.Flags&heartbeat.FlagTrackDown != 0 {
			return fmt.Errorf("handing over: %w (its tracked service fails)", ErrPartnerDown)
		}
		m.log.Info("handing over to the partner", "op", "handover", "vips", vips)
		m.apply(machine, machine.Handover(vips))
		return nil
	})
}

// Takeback ends every handover: this daemon claims and announces its
// home VIPs, then the partner releases them. It is safe to call from
// any goroutine while Run runs.
func (m *Member) Takeback(ctx context.Context) error {
	return m.do(ctx, func(machine *fsm.Machine) error {
		m.log.Info("taking home VIPs back", "op", "takeback")
		m.apply(machine, machine.Takeback())
		return nil
	})
}

// arrival is an accepted heartbeat and when it was read.
type arrival struct {
	h  *heartbeat.Heartbeat
	at time.Time
}

// read receives datagrams until the socket is closed, passing accepted
// heartbeats to beats and counting the rest by drop reason.
func (m *Member) read(beats chan<- arrival) {
	key := m.key.Load()
	guard := heartbeat.NewGuard(*key, m.cfg.Node, m.cfg.PartnerNode)
	buf := make([]byte, 2048)
	for {
		n, _, err := m.conn.ReadFrom(buf)
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			m.log.Debug("heartbeat read failed", "op", "receive", "err", err)
			continue
		}
		if k := m.key.Load(); k != key {
			key = k
			guard.SetKey(*k)
		}
		h, drop := guard.Accept(buf[:n])
		if drop != heartbeat.Accepted {
			m.count(func(c *Counters) { c.HeartbeatsDropped[drop.String()]++ })
			m.log.Debug("heartbeat dropped", "op", "receive", "reason", drop.String())
			continue
		}
		select {
		case beats <- arrival{h, time.Now()}:
		default:
			// The loop is far behind; newer heartbeats will follow.
			m.count(func(c *Counters) { c.HeartbeatsDropped[backlog]++ })
		}
	}
}

// Heartbeats that prove nothing are warned about when unprovenWarnAt
// of them come without a pause of unprovenWarnEvery, and then at most
// every unprovenWarnEvery: a partner's first heartbeat or two after
// either side restarts prove nothing (it has not heard this run yet),
// a recording played to the daemon is a stream.
const (
	unprovenWarnAt    = 5
	unprovenWarnEvery = 10 * time.Second
)

// heard counts a heartbeat the state machine took (drop is Accepted)
// or refused as unproven, and keeps its time for Status.
func (m *Member) heard(a arrival, drop heartbeat.Drop) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if drop == heartbeat.Accepted {
		m.st.counters.HeartbeatsReceived++
		m.st.lastHeard = a.at
		return
	}
	m.st.counters.HeartbeatsDropped[drop.String()]++
	if a.at.Sub(m.st.lastUnproven) >= unprovenWarnEvery {
		m.st.unprovenSinceWarn = 0
	}
	m.st.lastUnproven, m.st.unprovenBoot = a.at, a.h.BootID
	m.st.unprovenSinceWarn++
	m.log.Debug("heartbeat dropped", "op", "receive", "reason", drop.String(), "boot_id", fmt.Sprintf("%016x", a.h.BootID), "seq", a.h.Seq)
	if m.st.unprovenSinceWarn >= unprovenWarnAt && a.at.Sub(m.st.lastUnprovenWarn) >= unprovenWarnEvery {
		m.log.Warn("heartbeats from the partner node prove nothing: they echo no heartbeat of this run (a recording replayed, or a partner that does not hear this node); answering them, acting on none",
			"op", "receive", "peer", m.cfg.Peer, "boot_id", fmt.Sprintf("%016x", a.h.BootID), "count", m.st.unprovenSinceWarn)
		m.st.lastUnprovenWarn, m.st.unprovenSinceWarn = a.at, 0
	}
}

// watchRefusals reads the connected sending socket, which receives no
// data, only errors: ECONNREFUSED when the peer machine answered a
// heartbeat with ICMP port unreachable.
func (m *Member) watchRefusals(refused chan<- struct{}) {
	buf := make([]byte, 64)
	for {
		_, err := m.out.Read(buf)
		switch {
		case errors.Is(err, net.ErrClosed):
			return
		case errors.Is(err, syscall.ECONNREFUSED):
			select {
			case refused <- struct{}{}:
			default:
			}
		}
	}
}

func (m *Member) count(f func(*Counters)) {
	m.mu.Lock()
	f(&m.st.counters)
	m.mu.Unlock()
}

// apply carries out the machine's actions in order. A state change
// the actions come from is told to the hook first.
func (m *Member) apply(machine *fsm.Machine, acts []fsm.Action) {
	if s := machine.State(); s != m.hookState {
		m.notify(Event{State: s.String(), Reason: "from-" + m.hookState.String()})
		m.hookState = s
	}
	for _, a := range acts {
		switch a.Kind {
		case fsm.Claim:
			if err := m.addrs.Add(a.VIP); err != nil {
				m.log.Error("claim failed", "op", "claim", "interface", m.cfg.Interface, "ip", a.VIP, "reason", a.Reason, "err", err)
				m.count(func(c *Counters) { c.AddressErrors++ })
				continue
			}
			m.log.Info("claimed VIP", "op", "claim", "interface", m.cfg.Interface, "ip", a.VIP, "reason", a.Reason)
			m.count(func(c *Counters) { c.Claims++ })
			m.notify(Event{State: EventMaster, VIP: a.VIP.String(), Reason: a.Reason})
		case fsm.Release:
			if err := m.addrs.Delete(a.VIP); err != nil {
				m.log.Error("release failed", "op", "release", "interface", m.cfg.Interface, "ip", a.VIP, "reason", a.Reason, "err", err)
				m.count(func(c *Counters) { c.AddressErrors++ })
				continue
			}
			m.log.Info("released VIP", "op", "release", "interface", m.cfg.Interface, "ip", a.VIP, "reason", a.Reason)
			m.count(func(c *Counters) { c.Releases++ })
			m.notify(Event{State: EventBackup, VIP: a.VIP.String(), Reason: a.Reason})
		case fsm.Restore:
			m.count(func(c *Counters) { c.AddressesRestored++ })
			if err := m.addrs.Add(a.VIP); err != nil {
				m.log.Error("putting back a removed VIP failed", "op", "restore", "interface", m.cfg.Interface, "ip", a.VIP, "err", err)
				m.count(func(c *Counters) { c.AddressErrors++ })
				continue
			}
			m.log.Warn("VIP was removed from the interface by someone else; put it back", "op", "restore", "interface", m.cfg.Interface, "ip", a.VIP)
		case fsm.Announce:
			n, err := m.ann.Announce(a.VIP.Addr())
			m.count(func(c *Counters) {
				c.GARPsSent += uint64(n)
				if err != nil {
					c.GARPErrors++
				}
			})
			if err != nil {
				m.log.Warn("gratuitous ARP failed", "op", "announce", "interface", m.cfg.Interface, "ip", a.VIP, "err", err)
			}
		case fsm.Probe:
			m.askVIPs = append(m.askVIPs, a.VIP)
		case fsm.Send:
			copies := 1
			if a.Beat.State == heartbeat.StateStopping {
				copies = 2 // the last word; a lost copy would cost the partner a dead interval
			}
			for range copies {
				m.send(a.Beat)
			}
			m.mu.Lock()
			m.st.reclaimSent = a.Beat.Flags&heartbeat.FlagReclaim != 0
			m.mu.Unlock()
		}
	}
	if len(m.askVIPs) > 0 {
		m.probeVIPs(m.askVIPs)
		m.askVIPs = m.askVIPs[:0]
	}
}

// probeVIPs asks the LAN, in the background, whether vips are free:
// whether another machine answers for them (ARP for IPv4, NDP for IPv6,
// one request per family) while a witness answers in the same round.
// The witness round shows that the VIPs' silence is the LAN's, not this
// machine's own cut cable that the periodic witness rounds have not
// noticed yet. A VIP probe that fails to run counts as unanswered: the
// witness answer already shows that this machine reaches the network,
// and a broken probe socket must not stop failover for good.
func (m *Member) probeVIPs(vips []netip.Prefix) {
	m.count(func(c *Counters) { c.VIPProbes += uint64(len(vips)) })
	batch := slices.Clone(vips)
	m.bg.Go(func() error {
		var g errgroup.Group
		var witnessOK bool
		g.Go(func() error {
			if m.witnessAsk == nil {
				witnessOK = true
				return nil
			}
			ans, err := m.witnessAsk.Ask(m.witnessTargets, m.vipProbeTimeout())
			if err != nil {
				m.count(func(c *Counters) { c.ProbeErrors++ })
				m.log.Debug("witness check of a VIP probe failed", "op", "probe", "err", err)
			}
			witnessOK = len(ans) > 0
			return nil
		})
		answers := make([]probe.Answers, 2)
		for i, fam := range []struct {
			ask asker
			v4  bool
		}{{m.vipAsk4, true}, {m.vipAsk6, false}} {
			var addrs []netip.Addr
			for _, p := range batch {
				if p.Addr().Is4() == fam.v4 {
					addrs = append(addrs, p.Addr())
				}
			}
			if len(addrs) == 0 {
				continue
			}
			g.Go(func() error {
				var err error
				if fam.ask == nil {
					err = errors.New("no prober for this address family")
				} else {
					answers[i], err = fam.ask.Ask(addrs, m.vipProbeTimeout())
				}
				if err != nil {
					m.count(func(c *Counters) { c.ProbeErrors++ })
					m.log.Warn("probing VIPs failed; counting them unanswered", "op", "probe", "interface", m.cfg.Interface, "vips", addrs, "err", err)
				}
				return nil
			})
		}
		g.Wait()
		for _, p := range batch {
			mac, answered := answers[0][p.Addr()]
			if !answered {
				mac, answered = answers[1][p.Addr()]
			}
			switch {
			case answered:
				m.count(func(c *Counters) { c.VIPProbesAnswered++ })
				m.log.Debug("VIP answered on the LAN: another machine holds it", "op", "probe", "ip", p, "mac", mac.String())
			case !witnessOK:
				m.log.Debug("VIP unanswered, but so is the witness: not claiming it", "op", "probe", "ip", p)
			}
			select {
			case m.probed <- probeAnswer{p, !answered && witnessOK}:
			case <-m.bgCtx.Done():
				return nil
			}
		}
		return nil
	})
}

// watchWitness runs a witness round every witness.interval until ctx
// is done, and sends the witness's state on out whenever it changes:
// true after a round in which any target answered, false after
// witness.fall rounds in a row in which none did.
func (m *Member) watchWitness(ctx context.Context, out chan<- bool) {
	w := m.cfg.Witness
	tick := time.NewTicker(w.Interval)
	defer tick.Stop()
	failed, state := 0, -1
	for {
		ans, err := m.witnessAsk.Ask(m.witnessTargets, w.Timeout)
		ok := len(ans) > 0
		if ok {
			failed = 0
		} else {
			failed++
		}
		m.mu.Lock()
		m.st.counters.WitnessRounds++
		if !ok {
			m.st.counters.WitnessFailures++
		}
		if err != nil {
			m.st.counters.ProbeErrors++
		}
		if ok {
			m.st.witnessLastOK = time.Now()
		}
		m.st.witnessFailed = failed
		m.mu.Unlock()
		if err != nil {
			m.log.Debug("witness round failed", "op", "witness", "method", w.Method, "err", err)
		}
		next := state
		switch {
		case ok:
			next = 1
		case failed >= w.Fall:
			next = 0
		}
		if next != state {
			state = next
			if ok {
				m.log.Info("witness reachable", "op", "witness", "method", w.Method, "targets", m.witnessTargets)
			} else {
				m.log.Warn("no witness answers: this node is cut off and goes to fault", "op", "witness", "method", w.Method,
					"targets", m.witnessTargets, "rounds", failed, "err", err)
			}
			select {
			case out <- ok:
			case <-ctx.Done():
				return
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (m *Member) send(b *heartbeat.Heartbeat) {
	h := *b
	h.Node, h.BootID, h.Sent = m.cfg.Node, m.boot, time.Now()
	buf, err := heartbeat.Encode(make([]byte, 0, heartbeat.MaxLen), &h, *m.key.Load())
	if err == nil {
		if m.out != nil {
			_, err = m.out.Write(buf)
		} else {
			_, err = m.conn.WriteTo(buf, m.peer)
		}
	}
	if err != nil {
		m.count(func(c *Counters) { c.SendErrors++ })
		m.log.Debug("heartbeat send failed", "op", "send", "peer", m.cfg.Peer, "err", err)
		return
	}
	m.count(func(c *Counters) { c.HeartbeatsSent++ })
}

// publish copies the machine's view into the snapshot Status reads.
func (m *Member) publish(machine *fsm.Machine) {
	now := time.Now()
	p, _ := machine.Partner()
	m.mu.Lock()
	defer m.mu.Unlock()
	was := m.st.state
	m.st.state = machine.State()
	m.st.partner = p
	m.st.partnerUp = machine.PartnerUp()
	m.st.gives = machine.Gives()
	m.st.healthy = machine.Healthy()
	m.st.fault = machine.Fault()
	held := machine.Holds()
	for vip := range m.st.holds {
		if !slices.Contains(held, vip) {
			delete(m.st.holds, vip)
		}
	}
	for _, vip := range held {
		if _, ok := m.st.holds[vip]; !ok {
			m.st.holds[vip] = now
		}
	}
	if was != m.st.state {
		m.log.Info("state changed", "op", "state", "from", was.String(), "to", m.st.state.String())
		if m.OnReady != nil {
			m.OnReady(m.st.state == heartbeat.StateRunning)
		}
	}
}

// notify passes ev to the hook, if there is one. It never blocks.
func (m *Member) notify(ev Event) {
	if m.hook != nil {
		m.hook.Notify(ev)
	}
}

// Alive reports whether the daemon loop has run recently; the systemd
// watchdog is fed only while it has.
func (m *Member) Alive() bool {
	last := m.lastLoop.Load()
	return last != 0 && time.Since(time.Unix(0, last)) < 10*m.tick+time.Second
}

// Reload takes a new configuration and key. Only the key (a rotated
// secret file) can change while running; any other change is refused
// with the keys that need a restart.
func (m *Member) Reload(cfg Config, key []byte) error {
	old := m.cfg
	old.SecretFile, cfg.SecretFile = "", ""
	old.Secret, cfg.Secret = nil, nil
	old.Admin.Token, cfg.Admin.Token = nil, nil
	if !reflect.DeepEqual(old, cfg) {
		return fmt.Errorf("only secret_file (a rotated key) can change without a restart; restart vipwatch to change the rest")
	}
	m.key.Store(&key)
	return nil
}
