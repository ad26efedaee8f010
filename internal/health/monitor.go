package health

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sort"
	"sync"
	"time"
)

// State is a target's health.
type State uint8

// Target states. Unknown lasts only until the first probe's result.
const (
	Unknown State = iota
	Up
	Down
)

func (s State) String() string {
	switch s {
	case Up:
		return "up"
	case Down:
		return "down"
	}
	return "unknown"
}

// MarshalText writes the state's name, so that JSON (logs, status)
// says "up", not 1.
func (s State) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Target is one thing to check.
type Target struct {
	// ID names the target uniquely within a Monitor, such as
	// "www.example.org./198.51.100.10".
	ID    string
	Addr  netip.Addr
	Check Check
}

// same reports whether t and o are the same target checked the same way.
func (t Target) same(o Target) bool {
	return t.ID == o.ID && t.Addr == o.Addr && t.Check.Equal(o.Check)
}

// Event is a change of a target's state.
type Event struct {
	ID       string
	Addr     netip.Addr
	From, To State
	Result   Result // the probe result that caused the change
}

// Status is a target's current state and history, as the admin API shows it.
type Status struct {
	Target
	State     State
	Last      Result    // the latest probe result
	Successes int       // consecutive passed probes
	Failures  int       // consecutive failed probes
	Since     time.Time // when State was entered
}

// tracker applies rise/fall hysteresis. It is pure: no clock, no I/O.
type tracker struct {
	state      State
	succ, fail int
}

// observe records one probe result and reports whether the state changed.
// The first result decides the state at once: waiting for Rise results
// before ever answering would keep a fresh server unready for no benefit,
// and a target must not be presumed up before any evidence.
func (tr *tracker) observe(ok bool, rise, fall int) (from State, changed bool) {
	from = tr.state
	if ok {
		tr.succ++
		tr.fail = 0
	} else {
		tr.fail++
		tr.succ = 0
	}
	switch {
	case tr.state == Unknown && ok:
		tr.state = Up
	case tr.state == Unknown:
		tr.state = Down
	case tr.state == Down && tr.succ >= rise:
		tr.state = Up
	case tr.state == Up && tr.fail >= fall:
		tr.state = Down
	}
	return from, tr.state != from
}

// Options configure a Monitor.
type Options struct {
	// Prober runs probes; nil means a NetProber.
	Prober Prober
	// MaxConcurrent bounds probes in flight; 0 means 64.
	MaxConcurrent int
	// Logger receives state changes; nil discards them.
	Logger *slog.Logger
	// OnProbe, if set, is called after every probe (for metrics). It
	// must not block.
	OnProbe func(Target, Result)
}

// Monitor probes a set of targets, each on its own schedule, and tracks
// their states. All methods are safe for concurrent use.
type Monitor struct {
	prober  Prober
	sem     chan struct{}
	log     *slog.Logger
	onProbe func(Target, Result)

	mu      sync.Mutex // guards targets, subs, runCtx and changed
	targets map[string]*target
	subs    map[*Subscription]struct{}
	runCtx  context.Context
	changed chan struct{} // closed and replaced on every result
	wg      sync.WaitGroup
}

type target struct {
	Target
	cancel context.CancelFunc // nil until its loop runs
	tr     tracker
	last   Result
	since  time.Time
}

// NewMonitor returns a Monitor with no targets.
func NewMonitor(opts Options) *Monitor {
	if opts.Prober == nil {
		opts.Prober = NewNetProber()
	}
	if opts.MaxConcurrent <= 0 {
		opts.MaxConcurrent = 64
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Monitor{
		prober:  opts.Prober,
		sem:     make(chan struct{}, opts.MaxConcurrent),
		log:     opts.Logger,
		onProbe: opts.OnProbe,
		targets: make(map[string]*target),
		subs:    make(map[*Subscription]struct{}),
		changed: make(chan struct{}),
	}
}

// Set replaces the monitored targets. A target whose ID, address and
// check are unchanged keeps its state and schedule; others start Unknown.
// Removed targets stop being probed. Set may be called before or while
// Run runs. Target IDs must be unique.
func (m *Monitor) Set(targets []Target) error {
	seen := make(map[string]bool, len(targets))
	for _, t := range targets {
		if seen[t.ID] {
			return fmt.Errorf("health: duplicate target %q", t.ID)
		}
		seen[t.ID] = true
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for id, t := range m.targets {
		if !seen[id] {
			m.stopLocked(t)
			delete(m.targets, id)
		}
	}
	for _, nt := range targets {
		if old, ok := m.targets[nt.ID]; ok {
			if old.same(nt) {
				continue
			}
			m.stopLocked(old)
		}
		t := &target{Target: nt}
		m.targets[nt.ID] = t
		if m.runCtx != nil {
			m.startLocked(t)
		}
	}
	return nil
}

func (m *Monitor) stopLocked(t *target) {
	if t.cancel != nil {
		t.cancel()
		t.cancel = nil
	}
}

func (m *Monitor) startLocked(t *target) {
	ctx, cancel := context.WithCancel(m.runCtx)
	t.cancel = cancel
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		m.loop(ctx, t)
	}()
}

// Run probes the targets until ctx is done, then waits for every probe
// goroutine to return. It returns an error only if called twice at once.
func (m *Monitor) Run(ctx context.Context) error {
	m.mu.Lock()
	if m.runCtx != nil {
		m.mu.Unlock()
		return errors.New("health: monitor already running")
	}
	m.runCtx = ctx
	for _, t := range m.targets {
		m.startLocked(t)
	}
	m.mu.Unlock()

	<-ctx.Done()
	m.wg.Wait()
	m.mu.Lock()
	m.runCtx = nil
	for _, t := range m.targets {
		t.cancel = nil
	}
	m.mu.Unlock()
	return nil
}

// loop probes one target every Check.Interval, measured from the start
// of each probe, until ctx is done. The first probe runs at once.
func (m *Monitor) loop(ctx context.Context, t *target) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		start := time.Now()
		select {
		case m.sem <- struct{}{}:
		case <-ctx.Done():
			return
		}
		pctx, cancel := context.WithTimeout(ctx, t.Check.Timeout)
		res := m.prober.Probe(pctx, t.Target)
		cancel()
		<-m.sem
		if ctx.Err() != nil {
			return // stopped mid-probe: the result may be the cancellation
		}
		m.record(t, res)
		timer.Reset(max(0, t.Check.Interval-time.Since(start)))
	}
}

func (m *Monitor) record(t *target, res Result) {
	if m.onProbe != nil {
		m.onProbe(t.Target, res)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.targets[t.ID] != t {
		return // replaced or removed while probing
	}
	t.last = res
	from, changed := t.tr.observe(res.OK, t.Check.Rise, t.Check.Fall)
	if changed {
		t.since = res.At
		ev := Event{ID: t.ID, Addr: t.Addr, From: from, To: t.tr.state, Result: res}
		lvl := slog.LevelInfo
		if ev.To == Down {
			lvl = slog.LevelWarn
		}
		m.log.Log(context.Background(), lvl, "health state changed", "op", "check", "target", t.ID,
			"ip", t.Addr, "from", from, "to", ev.To, "result", res.String())
		for s := range m.subs {
			s.push(ev)
		}
	}
	close(m.changed)
	m.changed = make(chan struct{})
}

// Snapshot returns the status of every target, sorted by ID.
func (m *Monitor) Snapshot() []Status {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Status, 0, len(m.targets))
	for _, t := range m.targets {
		out = append(out, t.status())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// State returns the state of target id (Unknown if there is none).
func (m *Monitor) State(id string) State {
	m.mu.Lock()
	defer m.mu.Unlock()
	if t, ok := m.targets[id]; ok {
		return t.tr.state
	}
	return Unknown
}

func (t *target) status() Status {
	return Status{Target: t.Target, State: t.tr.state, Last: t.last,
		Successes: t.tr.succ, Failures: t.tr.fail, Since: t.since}
}

// WaitKnown blocks until every target named in ids (every target, if ids
// is nil) has a known state, or ctx is done.
func (m *Monitor) WaitKnown(ctx context.Context, ids []string) error {
	for {
		m.mu.Lock()
		pending := ""
		if ids == nil {
			for id, t := range m.targets {
				if t.tr.state == Unknown {
					pending = id
					break
				}
			}
		} else {
			for _, id := range ids {
				if t, ok := m.targets[id]; ok && t.tr.state == Unknown {
					pending = id
					break
				}
			}
		}
		ch := m.changed
		m.mu.Unlock()
		if pending == "" {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("waiting for the first health check of %s: %w", pending, ctx.Err())
		}
	}
}

// Subscribe returns a subscription that receives every state change from
// now on. Close it when done.
func (m *Monitor) Subscribe() *Subscription {
	s := &Subscription{m: m, ready: make(chan struct{}, 1)}
	m.mu.Lock()
	m.subs[s] = struct{}{}
	m.mu.Unlock()
	return s
}

// Subscription queues state-change events for one subscriber. The queue
// is unbounded, so a slow subscriber never loses an event and never
// delays probes; events are rare (at most one per probe).
type Subscription struct {
	m     *Monitor
	ready chan struct{} // holds a token while events are queued

	mu    sync.Mutex // guards queue
	queue []Event
}

func (s *Subscription) push(ev Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.queue = append(s.queue, ev)
	select {
	case s.ready <- struct{}{}:
	default:
	}
}

// Ready is signalled when events are waiting; call Drain to take them.
func (s *Subscription) Ready() <-chan struct{} { return s.ready }

// Drain returns the queued events, oldest first, and empties the queue.
func (s *Subscription) Drain() []Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-s.ready: // the token is there exactly while events are queued
	default:
	}
	q := s.queue
	s.queue = nil
	return q
}

// Close stops the subscription.
func (s *Subscription) Close() {
	s.m.mu.Lock()
	delete(s.m.subs, s)
	s.m.mu.Unlock()
}
