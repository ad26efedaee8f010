package peer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ringfront/ringfront/appnode/feed"
	"github.com/ringfront/ringfront/appnode/gossip"
	"github.com/ringfront/ringfront/appnode/ring"
	"github.com/ringfront/ringfront/appnode/transport"
)

// View is what the failure detector knows of the other members;
// *gossip.Detector is one.
type View interface {
	// Liveness is Alive, Dead or Unknown (not seen yet: try it).
	Liveness(member string) gossip.Liveness
	// CatchingUp reports a member that says it is still catching up
	// after a start: it answers only when no caught-up replica does.
	CatchingUp(member string) bool
	// RTT is the last measured round trip to member (0: none yet).
	RTT(member string) time.Duration
}

// AliveView adapts an Alive function (tests, and callers without a
// failure detector): true is Alive, false Dead.
type AliveView func(string) bool

// Liveness is Alive or Dead, as f says.
func (f AliveView) Liveness(m string) gossip.Liveness {
	if f(m) {
		return gossip.Alive
	}
	return gossip.Dead
}

// CatchingUp is always false.
func (AliveView) CatchingUp(string) bool { return false }

// RTT is always 0 (not measured).
func (AliveView) RTT(string) time.Duration { return 0 }

// Timings of going on to another member.
const (
	// DefaultMemberTimeout is how long a member waits for another to
	// answer before it goes on to the next member (node's
	// member_timeout): short enough that a paused or cut-off member
	// costs a request a fraction of a second (a forwarded write gets
	// WriteTimeouts times it), long enough that a member busy with a
	// synced write (a few ms, tens under load) is not passed over.
	DefaultMemberTimeout = 150 * time.Millisecond
	// WriteTimeouts is how many member timeouts a member gives another
	// to answer a request that makes a replicated write: the other
	// waits up to one for its replicas, then up to one for a hinted
	// copy elsewhere.
	WriteTimeouts = 3
	// rttMultiple: the timeout is at least this many probe round trips,
	// so a distant member is not passed over for being far.
	rttMultiple = 10
	// suspectFor is how long a member that failed a request (no answer
	// within the timeout, a refused or broken connection) is passed
	// over before it is tried again, unless no other member can
	// answer: twice as long each time it fails again soon after, up to
	// suspectMax, so a member cut off for longer costs a timeout now
	// and then, not once a second; an answer from it clears it. The
	// failure detector declares a dead member dead within about a
	// second; this bridges that second, so only the first requests pay
	// the timeout.
	suspectFor = time.Second
	suspectMax = 8 * time.Second
)

// LastResort is how long a call waits when no other member is left to
// try: a member that is only busy gets the time to answer.
func LastResort(timeout time.Duration) time.Duration { return max(4*timeout, time.Second) }

// Options configure a Cluster.
type Options struct {
	// Self is this member's advertised address; it must be in Ring.
	Self string
	// Ring is the initial ring.
	Ring *ring.Ring
	// View is the failure detector; nil means every member alive.
	View View
	// Now is the wall clock; nil means time.Now.
	Now func() time.Time
	// MemberTimeout is the member timeout's floor; 0 means
	// DefaultMemberTimeout.
	MemberTimeout time.Duration
	// CatchUp is told whether this member is catching up (the failure
	// detector gossips it); nil means nobody is told.
	CatchUp func(catchingUp bool)
	// Transport carries the calls; its Stamp, Observe and Now are this
	// cluster's.
	Transport transport.Options
	// Log is the logger; nil means slog.Default().
	Log *slog.Logger
}

// Cluster is this member's view of the cluster: itself, the ring (and
// the ring before the last change), which members are alive, caught up
// and answering, its clock, and the calls it makes to the others. It is
// safe for concurrent use.
type Cluster struct {
	self      string
	now       func() time.Time
	clock     *feed.Clock
	view      View
	transport *transport.Transport
	catchUp   func(bool)

	ring         atomic.Pointer[ring.Ring]
	prev         atomic.Pointer[ring.Ring] // the ring before the last change
	catchingUp   atomic.Bool               // this member is catching up
	timeoutFloor atomic.Int64              // a time.Duration

	mu     sync.Mutex // guards failed
	failed map[string]failure
}

// failure is a member that failed a request recently.
type failure struct {
	until time.Time
	wait  time.Duration // the last suspicion's length
	why   string
}

// New returns the cluster view for opts.
func New(opts Options) (*Cluster, error) {
	if opts.Ring == nil || !opts.Ring.Has(opts.Self) {
		return nil, fmt.Errorf("%s is not a member of the ring", opts.Self)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.View == nil {
		opts.View = AliveView(func(string) bool { return true })
	}
	if opts.CatchUp == nil {
		opts.CatchUp = func(bool) {}
	}
	c := &Cluster{self: opts.Self, now: opts.Now, clock: feed.NewClock(opts.Now), view: opts.View, catchUp: opts.CatchUp,
		failed: map[string]failure{}}
	c.ring.Store(opts.Ring)
	c.SetMemberTimeout(opts.MemberTimeout)
	to := opts.Transport
	to.Self, to.Now, to.Stamp, to.Observe = opts.Self, opts.Now, c.Stamp, c.ObserveClock
	if to.Log == nil {
		to.Log = opts.Log
	}
	c.transport = transport.New(to)
	return c, nil
}

// Self is this member's address.
func (c *Cluster) Self() string { return c.self }

// Transport carries this member's requests to the others.
func (c *Cluster) Transport() *transport.Transport { return c.transport }

// Ring returns the current ring.
func (c *Cluster) Ring() *ring.Ring { return c.ring.Load() }

// SetRing installs a new ring (requests already routed keep the old
// one), and remembers the one it replaces as the previous ring.
func (c *Cluster) SetRing(r *ring.Ring) error {
	if !r.Has(c.self) {
		return fmt.Errorf("new ring does not contain this member %s", c.self)
	}
	if old := c.ring.Swap(r); old.Version() != r.Version() {
		c.prev.Store(old)
	}
	return nil
}

// Previous returns the ring before the last change (nil: none known).
func (c *Cluster) Previous() *ring.Ring { return c.prev.Load() }

// SetPrevious sets the previous ring (learnt from another member).
func (c *Cluster) SetPrevious(r *ring.Ring) { c.prev.Store(r) }

// Now is this member's wall clock.
func (c *Cluster) Now() time.Time { return c.now() }

// Clock is this member's hybrid logical clock.
func (c *Cluster) Clock() *feed.Clock { return c.clock }

// Stamp is the clock for HeaderClock on a request or answer.
func (c *Cluster) Stamp() string { return strconv.FormatUint(uint64(c.clock.Last()), 10) }

// ObserveClock moves this member's clock past a clock another member or
// a client sent (HeaderClock), unless it is further from this member's
// wall clock than signed requests may be: nobody pushes the clock far
// into the future.
func (c *Cluster) ObserveClock(v string) {
	if v == "" {
		return
	}
	ts, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return
	}
	if d := feed.Timestamp(ts).Time().Sub(c.now()); d > transport.ClockSkew || d < -transport.ClockSkew {
		return
	}
	c.clock.Observe(feed.Timestamp(ts))
}

// Call makes a call to another member (see transport.Call).
func (c *Cluster) Call(ctx context.Context, method, member, uri string, body, out any) error {
	return c.transport.Call(ctx, method, member, uri, body, out)
}

// MemberTimeout is how long to wait for member m: the configured
// floor, or rttMultiple probe round trips if more.
func (c *Cluster) MemberTimeout(m string) time.Duration {
	return max(c.TimeoutFloor(), rttMultiple*c.view.RTT(m))
}

// TimeoutFloor is the member timeout's floor.
func (c *Cluster) TimeoutFloor() time.Duration { return time.Duration(c.timeoutFloor.Load()) }

// SetMemberTimeout sets the member timeout's floor; 0 means
// DefaultMemberTimeout.
func (c *Cluster) SetMemberTimeout(d time.Duration) {
	if d <= 0 {
		d = DefaultMemberTimeout
	}
	c.timeoutFloor.Store(int64(d))
}

// Liveness is what the failure detector says of m.
func (c *Cluster) Liveness(m string) gossip.Liveness { return c.view.Liveness(m) }

// Dead reports whether the failure detector declared m dead.
func (c *Cluster) Dead(m string) bool { return m != c.self && c.view.Liveness(m) == gossip.Dead }

// Failed records that member m failed a request, and why.
func (c *Cluster) Failed(m, why string) {
	if m == c.self {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now() // an elapsed time, not the wall clock the chaos test skews
	f := c.failed[m]
	switch {
	case now.Before(f.until):
		// Already passed over: the failure of a request that was on
		// its way does not lengthen it.
	case now.Sub(f.until) < f.wait:
		f.wait = min(2*f.wait, suspectMax) // failed again soon after
	default:
		f.wait = suspectFor
	}
	f.until, f.why = now.Add(f.wait), why
	c.failed[m] = f
}

// Answered records that member m answered a request.
func (c *Cluster) Answered(m string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.failed, m)
}

// Suspect returns why m failed a request within suspectFor, or "".
func (c *Cluster) Suspect(m string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	f, ok := c.failed[m]
	if !ok || time.Now().After(f.until) {
		return "" // kept until an answer: a failure soon after doubles it
	}
	return f.why
}

// CallFailed records a failed call to m: an answer (a *transport.Error)
// says m is up; anything else passes m over for a while.
func (c *Cluster) CallFailed(m string, err error) {
	var te *transport.Error
	if errors.As(err, &te) {
		return // it answered: it is up, only this call failed
	}
	why := err.Error()
	if errors.Is(err, context.DeadlineExceeded) {
		why = fmt.Sprintf("did not answer within %v", c.MemberTimeout(m))
	}
	c.Failed(m, why)
}

// Alive reports whether member m may be sent a request now: this
// member; another that the failure detector has not declared dead (a
// member not seen yet is tried) and that has not failed a request just
// now.
func (c *Cluster) Alive(m string) bool {
	if m == c.self {
		return true
	}
	return c.view.Liveness(m) != gossip.Dead && c.Suspect(m) == ""
}

// CatchingUp reports whether this member is catching up.
func (c *Cluster) CatchingUp() bool { return c.catchingUp.Load() }

// SetCatchingUp records whether this member is catching up, and tells
// the failure detector (which gossips it).
func (c *Cluster) SetCatchingUp(on bool) {
	c.catchingUp.Store(on)
	c.catchUp(on)
}

// PassedOver says why a member of a preference list is not asked.
type PassedOver struct {
	Member, Why string
}

// Candidates returns the members to ask for user name, in order: the
// members of its preference list that are alive and caught up, then
// those alive but still catching up, then those that failed a request
// just now (they may have recovered); never those the failure detector
// declared dead, nor those in skip. It also says why each member left
// out was left out.
func (c *Cluster) Candidates(rg *ring.Ring, name string, skip []string) ([]string, []PassedOver) {
	var buf, later, last [8]string
	pref := rg.Preference(buf[:0], name)
	// One allocation: the ready members go straight into the answer,
	// the others wait in arrays on the stack (a preference list is
	// seldom longer).
	ready, catching, suspects := make([]string, 0, len(pref)), later[:0], last[:0]
	var out []PassedOver
	for _, m := range pref {
		switch {
		case slices.Contains(skip, m):
			out = append(out, PassedOver{m, "unreachable from the member that forwarded the request"})
		case m == c.self:
			if c.catchingUp.Load() {
				catching = append(catching, m)
			} else {
				ready = append(ready, m)
			}
		case c.view.Liveness(m) == gossip.Dead:
			out = append(out, PassedOver{m, "dead (failure detector)"})
		case c.Suspect(m) != "":
			suspects = append(suspects, m)
		case c.view.CatchingUp(m):
			catching = append(catching, m)
		default:
			ready = append(ready, m)
		}
	}
	return append(append(ready, catching...), suspects...), out
}

// Target returns the member that answers for user name: the first of
// its candidates, or the owner when there is none (so an error names
// who should have answered).
func (c *Cluster) Target(rg *ring.Ring, name string, skip ...string) string {
	if cands, _ := c.Candidates(rg, name, skip); len(cands) > 0 {
		return cands[0]
	}
	return rg.Owner(name)
}

// Tried collects, for an error message, each distinct member asked or
// passed over and why it did not answer.
type Tried []PassedOver

// Add records that m did not answer, and why.
func (t *Tried) Add(m, why string) {
	for i, p := range *t {
		if p.Member == m {
			(*t)[i].Why = why
			return
		}
	}
	*t = append(*t, PassedOver{m, why})
}

func (t Tried) String() string {
	parts := make([]string, len(t))
	for i, p := range t {
		parts[i] = p.Member + ": " + p.Why
	}
	return strings.Join(parts, "; ")
}

// ErrNoMember marks the error when no member of a preference list
// answered.
var ErrNoMember = errors.New("no member answered")

// NoMember is the error when no member of name's preference list could
// answer.
func NoMember(name string, tried Tried) error {
	if len(tried) == 0 {
		return fmt.Errorf("no member of %s's preference list could be reached", name)
	}
	return fmt.Errorf("no member of %s's preference list could be reached (%s)", name, tried)
}

// OnMembers runs call on the members that answer for user name, in the
// order of its candidates (less those Skipped in ctx), until one
// answers: a member that does not answer within the member timeout
// (WriteTimeouts times it when write, for a call that makes a
// replicated write), or whose connection fails, is passed over for the
// next; those that were only slow get a last, longer try. call must be
// idempotent. An answer from a member, even an error, is final.
func (c *Cluster) OnMembers(ctx context.Context, name string, write bool, call func(ctx context.Context, m string) error) error {
	cands, passed := c.Candidates(c.ring.Load(), name, Skipped(ctx))
	tried := Tried(passed)
	var slow []string // did not answer in time: asked again, waiting longer, before giving up
	for i := 0; i < len(cands)+len(slow); i++ {
		m, last := "", false
		if i < len(cands) {
			m = cands[i]
		} else {
			m, last = slow[i-len(cands)], true
		}
		if m == c.self {
			return call(ctx, m)
		}
		timeout := c.MemberTimeout(m)
		if write {
			timeout *= WriteTimeouts
		}
		if last {
			timeout = LastResort(timeout)
		} else if i < len(cands)-1 {
			timeout = budgeted(ctx, timeout, c.TimeoutFloor())
		}
		cctx, cancel := context.WithTimeout(ctx, timeout)
		err := call(cctx, m)
		cancel()
		var te *transport.Error
		if err == nil || errors.As(err, &te) || ctx.Err() != nil {
			if err == nil {
				c.Answered(m)
			}
			return err
		}
		why := fmt.Sprintf("did not answer within %v", timeout)
		if errors.Is(err, context.DeadlineExceeded) {
			if !last {
				slow = append(slow, m)
			}
		} else {
			why = err.Error()
		}
		c.Failed(m, why)
		tried.Add(m, why)
	}
	return fmt.Errorf("%w: %w", ErrNoMember, NoMember(name, tried))
}

// budgetKey carries, in a request's context, when the member that
// forwarded it stops waiting for the answer (transport.HeaderBudget).
type budgetKey struct{}

// WithBudget returns ctx carrying the time by which the member that
// forwarded its request wants the answer. OnMembers then gives no
// member but the last candidate more than half of what is left, so
// that a member that does not answer (one cut off, not yet known dead)
// leaves time to ask the next before the forwarder itself gives up on
// this member and asks another, which would wait on the same one.
func WithBudget(ctx context.Context, by time.Time) context.Context {
	return context.WithValue(ctx, budgetKey{}, by)
}

// budgeted is timeout cut to half of what is left of ctx's budget
// (WithBudget), but not below floor.
func budgeted(ctx context.Context, timeout, floor time.Duration) time.Duration {
	by, ok := ctx.Value(budgetKey{}).(time.Time)
	if !ok {
		return timeout
	}
	return max(floor, min(timeout, time.Until(by)/2))
}

// skipKey carries, in a request's context, the members to pass over
// for it (see transport.HeaderUnreachable).
type skipKey struct{}

// WithSkip returns ctx carrying the members to pass over.
func WithSkip(ctx context.Context, skip []string) context.Context {
	return context.WithValue(ctx, skipKey{}, skip)
}

// Skipped returns the members to pass over for the request in ctx.
func Skipped(ctx context.Context) []string {
	skip, _ := ctx.Value(skipKey{}).([]string)
	return skip
}
