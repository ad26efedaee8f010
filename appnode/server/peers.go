package server

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ringfront/ringfront/appnode/gossip"
	"github.com/ringfront/ringfront/appnode/ring"
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

// aliveView adapts an Alive function (tests, and callers without a
// failure detector): true is Alive, false Dead.
type aliveView func(string) bool

func (f aliveView) Liveness(m string) gossip.Liveness {
	if f(m) {
		return gossip.Alive
	}
	return gossip.Dead
}
func (aliveView) CatchingUp(string) bool   { return false }
func (aliveView) RTT(string) time.Duration { return 0 }

// Defaults for the member timeout.
const (
	// DefaultMemberTimeout is how long a member waits for another to
	// answer before it goes on to the next member (node's
	// member_timeout): short enough that a paused or cut-off member
	// costs a request a fraction of a second (a forwarded write gets
	// writeTimeouts times it), long enough that a member busy with a
	// synced write (a few ms, tens under load) is not passed over.
	DefaultMemberTimeout = 150 * time.Millisecond
	// rttMultiple: the timeout is at least this many probe round trips,
	// so a distant member is not passed over for being far.
	rttMultiple = 10
	// suspectFor is how long a member that failed a request (no answer
	// within the timeout, a refused or broken connection) is passed over
	// before it is tried again, unless no other member can answer: twice
	// as long each time it fails again soon after, up to suspectMax, so
	// a member cut off for longer costs a timeout now and then, not once
	// a second; an answer from it clears it. The failure detector
	// declares a dead member dead within about a second; this bridges
	// that second, so only the first requests pay the timeout.
	suspectFor = time.Second
	suspectMax = 8 * time.Second
)

// peerFailure is a member that failed a request recently.
type peerFailure struct {
	until time.Time
	wait  time.Duration // the last suspicion's length
	why   string
}

// peerHealth is the server's view of the other members: the failure
// detector's, and failures this member saw itself.
type peerHealth struct {
	view   View
	mu     sync.Mutex // guards failed
	failed map[string]peerFailure
}

// memberTimeout is how long to wait for member m: the configured floor,
// or rttMultiple probe round trips if more.
func (s *Server) memberTimeout(m string) time.Duration {
	return max(time.Duration(s.peerTimeoutFloor.Load()), rttMultiple*s.health.view.RTT(m))
}

// SetMemberTimeout sets the member timeout's floor; 0 means
// DefaultMemberTimeout.
func (s *Server) SetMemberTimeout(d time.Duration) {
	if d <= 0 {
		d = DefaultMemberTimeout
	}
	s.peerTimeoutFloor.Store(int64(d))
}

// failed records that member m failed a request, and why.
func (s *Server) failed(m, why string) {
	if m == s.self {
		return
	}
	h := &s.health
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.failed == nil {
		h.failed = map[string]peerFailure{}
	}
	now := time.Now()
	f := h.failed[m]
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
	h.failed[m] = f
}

// answered records that member m answered a request.
func (s *Server) answered(m string) {
	h := &s.health
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.failed, m)
}

// suspect returns why m failed a request within suspectFor, or "".
func (s *Server) suspect(m string) string {
	h := &s.health
	h.mu.Lock()
	defer h.mu.Unlock()
	f, ok := h.failed[m]
	if !ok || time.Now().After(f.until) {
		return "" // kept until an answer: a failure soon after doubles it
	}
	return f.why
}

// alive reports whether member m may be sent a request now: this
// member; another that the failure detector has not declared dead (a
// member not seen yet is tried) and that has not failed a request just
// now.
func (s *Server) alive(m string) bool {
	if m == s.self {
		return true
	}
	return s.health.view.Liveness(m) != gossip.Dead && s.suspect(m) == ""
}

// catchingUp reports whether member m (this one included) is still
// catching up after a start.
func (s *Server) catchingUpMember(m string) bool {
	if m == s.self {
		return s.catchingUp.Load()
	}
	return s.health.view.CatchingUp(m)
}

// passedOver says why a member of a preference list is not asked.
type passedOver struct {
	member, why string
}

// candidates returns the members to ask for user name, in order: the
// members of its preference list that are alive and caught up, then
// those alive but still catching up, then those that failed a request
// just now (they may have recovered); never those the failure detector
// declared dead, nor those in skip. It also says why each member left
// out was left out.
func (s *Server) candidates(rg *ring.Ring, name string, skip []string) ([]string, []passedOver) {
	var buf, later, last [8]string
	pref := rg.Preference(buf[:0], name)
	// One allocation: the ready members go straight into the answer,
	// the others wait in arrays on the stack (a preference list is
	// seldom longer).
	ready, catching, suspects := make([]string, 0, len(pref)), later[:0], last[:0]
	var out []passedOver
	for _, m := range pref {
		switch {
		case slices.Contains(skip, m):
			out = append(out, passedOver{m, "unreachable from the member that forwarded the request"})
		case m == s.self:
			if s.catchingUp.Load() {
				catching = append(catching, m)
			} else {
				ready = append(ready, m)
			}
		case s.health.view.Liveness(m) == gossip.Dead:
			out = append(out, passedOver{m, "dead (failure detector)"})
		case s.suspect(m) != "":
			suspects = append(suspects, m)
		case s.health.view.CatchingUp(m):
			catching = append(catching, m)
		default:
			ready = append(ready, m)
		}
	}
	return append(append(ready, catching...), suspects...), out
}

// triedMembers collects, for an error message, each distinct member
// asked or passed over and why it did not answer.
type triedMembers []passedOver

func (t *triedMembers) add(m, why string) {
	for i, p := range *t {
		if p.member == m {
			(*t)[i].why = why
			return
		}
	}
	*t = append(*t, passedOver{m, why})
}

func (t triedMembers) String() string {
	parts := make([]string, len(t))
	for i, p := range t {
		parts[i] = p.member + ": " + p.why
	}
	return strings.Join(parts, "; ")
}

// noMember is the error when no member of name's preference list could
// answer.
func noMember(name string, tried triedMembers) error {
	if len(tried) == 0 {
		return fmt.Errorf("no member of %s's preference list could be reached", name)
	}
	return fmt.Errorf("no member of %s's preference list could be reached (%s)", name, tried)
}
