package fsm

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/ringfront/ringfront/vipwatch/heartbeat"
)

// Config is a Machine's fixed setup. Durations are in ticks.
type Config struct {
	Home    []netip.Prefix // VIPs whose home is this machine
	Partner []netip.Prefix // the partner's home VIPs
	BootID  uint64         // this daemon's boot id, as in its heartbeats

	HeartbeatTicks    int // between heartbeats
	DeadTicks         int // partner silent this long is gone
	Preempt           bool
	PreemptDelayTicks int // after (re)start before reclaiming home VIPs
	GARPCount         int // announcements right after a claim
	GARPIntervalTicks int // between those
	GARPRefreshTicks  int // between announcements while held

	// Witness says the daemon has a witness: it claims nothing until
	// Witness reports one reachable, enters fault when none is, and
	// before it claims a VIP because the partner went silent it asks
	// whether the VIP is free: no other machine answers for it, and a
	// witness answers (Probe, answered with Probed).
	Witness bool
	// FaultReleaseTicks: a daemon that reaches no witness and does not
	// hear its partner releases what it holds after this long.
	FaultReleaseTicks int
	// ProbeTicks is the period of VIP probes while the partner is
	// silent and the VIP still answers.
	ProbeTicks int
}

// Kind is what an Action does.
type Kind uint8

// Action kinds.
const (
	Claim    Kind = iota + 1 // add the VIP to the interface
	Release                  // remove the VIP from the interface
	Announce                 // send gratuitous ARP for the VIP
	Send                     // send Beat to the partner
	Restore                  // put a held VIP back on the interface: someone else removed it
	// Probe asks whether VIP is free: no machine on the LAN answers
	// for it (ARP, NDP) while a witness does. The caller reports the
	// answer with Machine.Probed.
	Probe
)

// Action is one effect for the caller to carry out, in order.
type Action struct {
	Kind Kind
	VIP  netip.Prefix         // Claim, Release, Announce
	Beat *heartbeat.Heartbeat // Send: Node, BootID and Sent are the caller's to fill
	// Reason says why a VIP is claimed or released (one of the
	// Reason* constants); notify hooks and logs pass it on.
	Reason string
}

// Why a VIP is claimed or released.
const (
	ReasonHome          = "home"             // claim: the partner is up and does not hold it
	ReasonPartnerGone   = "partner-gone"     // claim: the partner is silent, stopping or in fault
	ReasonGiven         = "given"            // claim: the partner gives it (handover, failing service)
	ReasonPartnerCannot = "partner-cannot"   // claim: given away, but the partner's service fails too
	ReasonTakeback      = "takeback"         // claim: taking a given VIP back (operator, service recovered)
	ReasonPartnerHome   = "partner-reclaims" // release: the partner wants or holds its home VIP
	ReasonHandedOver    = "handed-over"      // release: the partner took a VIP this daemon gives
	ReasonLinkDown      = "link-down"        // release: this machine's link is down
	ReasonStopping      = "stopping"         // release: the daemon is shutting down
	ReasonRemoved       = "removed"          // restore: the address was deleted behind the daemon's back
	ReasonNoWitness     = "no-witness"       // release: this daemon reaches no witness; the partner serves
)

// Why the machine is in fault, as Fault reports it.
const (
	FaultLink    = "link-down"  // the interface lost carrier or was set down
	FaultWitness = "no-witness" // no witness answers
)

func (a Action) String() string {
	switch a.Kind {
	case Claim:
		return "claim " + a.VIP.String() + reason(a.Reason)
	case Release:
		return "release " + a.VIP.String() + reason(a.Reason)
	case Announce:
		return "announce " + a.VIP.String()
	case Restore:
		return "restore " + a.VIP.String() + reason(a.Reason)
	case Probe:
		return "probe " + a.VIP.String()
	case Send:
		b := a.Beat
		s := fmt.Sprintf("send %v seq=%d holds=%v", b.State, b.Seq, b.Holds)
		if b.Flags&heartbeat.FlagReclaim != 0 {
			s += " reclaim"
		}
		if b.Flags&heartbeat.FlagTrackDown != 0 {
			s += " track-down"
		}
		if len(b.Gives) > 0 {
			s += fmt.Sprintf(" gives=%v", b.Gives)
		}
		return s
	}
	return fmt.Sprintf("action(%d)", a.Kind)
}

func reason(r string) string {
	if r == "" {
		return ""
	}
	return " (" + r + ")"
}

type hold struct {
	contested bool  // the partner reports holding it too
	since     int64 // tick claimed
	left      int   // announcements left in the current burst
	next      int64 // tick of the next announcement
}

// probe is the state of the LAN probes of one VIP.
type probe struct {
	pending bool  // asked, not yet answered
	asked   int64 // tick of the last Probe action
	done    bool  // a result for the probe asked at asked
	free    bool  // that result: the VIP is free
}

// witnessState is what the machine knows of its witnesses.
type witnessState uint8

const (
	witnessUnknown witnessState = iota // no round finished yet
	witnessOK                          // at least one answered the last round
	witnessLost                        // none answered
)

// Machine is one daemon's state machine.
type Machine struct {
	cfg   Config
	now   int64
	state heartbeat.State
	seq   uint64 // of the last heartbeat sent
	floor uint64 // first seq of the current run; the partner must ack one >= floor

	// partner is the latest heartbeat of the partner boot that proved
	// itself in the current run (heardRun); only its heartbeats are
	// acted on and count as hearing the partner (lastHeard).
	heardRun  bool
	refused   bool  // the partner refused a heartbeat since it was last heard
	lastHeard int64 // tick of the last heartbeat acted on, or of the run start / clock jump
	partner   *heartbeat.Heartbeat
	// candidate is the latest heartbeat that proved nothing (nil:
	// none since the run began): echoed, never acted on. heard is the
	// latest heartbeat of either kind, which version 1 acknowledges.
	candidate *heartbeat.Heartbeat
	heard     *heartbeat.Heartbeat
	// answered remembers the unproven boots lately answered at once.
	answered [answerSlots]answer
	// sent holds the first sequence number sent in each of the recent
	// ticks, oldest first, to tell a fresh echo from an old one.
	sent []sentTick

	runningSince int64
	reclaim      bool // the reclaim flag last sent
	// handover holds the home VIPs the operator gave to the partner;
	// unhealthy is set while the tracked service fails, which gives
	// all home VIPs away. taking holds given-back home VIPs to claim
	// before the partner releases them (make before break).
	handover  map[netip.Prefix]bool
	unhealthy bool
	taking    map[netip.Prefix]bool
	held      map[netip.Prefix]*hold
	nextSend  int64
	out       []Action

	linkDown   bool // this machine's link is down (fault)
	witness    witnessState
	faultSince int64 // tick the current fault began
	probes     map[netip.Prefix]*probe
}

// answerSlots bounds the unproven boots a machine remembers answering:
// a partner that has just (re)started is one boot, the rest are
// recordings, so a few are plenty; an attacker cycling more boots than
// this only gets one answer (to the partner's address) per datagram.
const answerSlots = 16

// answer is an unproven boot answered at once, and when.
type answer struct {
	boot uint64
	at   int64
}

// sentTick is the first heartbeat sent in a tick.
type sentTick struct {
	tick int64
	seq  uint64
}

// New returns a Machine in state starting, holding nothing: the caller
// has removed any stale addresses before creating it.
func New(cfg Config) *Machine {
	if cfg.HeartbeatTicks < 1 {
		cfg.HeartbeatTicks = 1
	}
	if cfg.DeadTicks < 1 {
		cfg.DeadTicks = 1
	}
	if cfg.GARPIntervalTicks < 1 {
		cfg.GARPIntervalTicks = 1
	}
	if cfg.GARPRefreshTicks < 1 {
		cfg.GARPRefreshTicks = 1
	}
	if cfg.ProbeTicks < 1 {
		cfg.ProbeTicks = 1
	}
	return &Machine{cfg: cfg, state: heartbeat.StateStarting, floor: 1, held: make(map[netip.Prefix]*hold),
		handover: make(map[netip.Prefix]bool), taking: make(map[netip.Prefix]bool), probes: make(map[netip.Prefix]*probe)}
}

// Fault says why the machine is in fault (FaultLink, FaultWitness), or
// "" when it is not.
func (m *Machine) Fault() string {
	switch {
	case m.state != heartbeat.StateFault:
		return ""
	case m.linkDown:
		return FaultLink
	}
	return FaultWitness
}

// WitnessReachable reports the last witness result: reachable, and
// known (false before the first result, and without a witness).
func (m *Machine) WitnessReachable() (reachable, known bool) {
	return m.witness == witnessOK, m.witness != witnessUnknown
}

// Now is the machine's clock in ticks.
func (m *Machine) Now() int64 { return m.now }

// State is the machine's current state.
func (m *Machine) State() heartbeat.State { return m.state }

// Holds lists the VIPs the machine holds, sorted.
func (m *Machine) Holds() []netip.Prefix {
	out := make([]netip.Prefix, 0, len(m.held))
	for p := range m.held {
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b netip.Prefix) int { return strings.Compare(a.String(), b.String()) })
	return out
}

// Since reports the tick at which vip was claimed.
func (m *Machine) Since(vip netip.Prefix) (int64, bool) {
	h, ok := m.held[vip]
	if !ok {
		return 0, false
	}
	return h.since, true
}

// Partner is the last heartbeat accepted from the partner in the
// current run (nil if none), and how many ticks ago it arrived.
func (m *Machine) Partner() (*heartbeat.Heartbeat, int64) {
	if m.partner == nil {
		return nil, 0
	}
	return m.partner, m.now - m.lastHeard
}

// PartnerUp reports whether the partner is heard and serving.
func (m *Machine) PartnerUp() bool { return m.partnerUp() }

// Tick advances the clock by n ticks (n >= 1). A jump of more than half
// the dead interval means this daemon was not watching (it was stalled,
// or its clock jumped); the partner then gets a whole dead interval
// from now before it is declared gone, since its heartbeats may be
// waiting unread. Shorter jumps are ordinary scheduling lateness.
func (m *Machine) Tick(n int64) []Action {
	if n < 1 {
		n = 1
	}
	m.now += n
	if n > int64(m.cfg.DeadTicks)/2 && n > 1 {
		m.lastHeard = m.now
	}
	return m.step()
}

// Heartbeat takes a heartbeat from the partner that the Guard accepted
// (its MAC, node and sequence checked). The heartbeat is acted on only
// if it is from the partner boot that has proved itself in this run, or
// proves itself now: its ack or echo names a heartbeat this daemon sent
// in its current run within the last two dead intervals. That is a
// challenge no recording made before the run began can answer, since
// the boot id is new at each start and the run's sequence numbers are
// new after each fault. Any other heartbeat is answered (echoed: a
// live partner that has just started proves itself with the answer)
// but changes nothing, and Heartbeat returns heartbeat.Unproven; else
// heartbeat.Accepted.
func (m *Machine) Heartbeat(h *heartbeat.Heartbeat) ([]Action, heartbeat.Drop) {
	if m.state == heartbeat.StateStopping || m.linkDown {
		return m.step(), heartbeat.Accepted
	}
	m.heard = h
	// A heartbeat of the proven boot comes after the one that proved
	// it: the Guard accepts only newer sequence numbers of a boot.
	if !(m.heardRun && m.partner.BootID == h.BootID) && !m.proves(h) {
		m.candidate = h
		m.answer(h)
		return m.step(), heartbeat.Unproven
	}
	if !m.heardRun || m.partner.BootID != h.BootID || m.partner.State != h.State {
		// A partner that has just proved itself, or changed state, may
		// be waiting for our acknowledgement before it claims anything:
		// answer now rather than at the next period.
		m.nextSend = m.now
	}
	if m.candidate != nil && m.candidate.BootID == h.BootID {
		m.candidate = nil
	}
	m.partner = h
	m.heardRun = true
	m.refused = false
	m.lastHeard = m.now
	return m.step(), heartbeat.Accepted
}

// proves reports whether h's ack or echo names a heartbeat this daemon
// sent in its current run, lately.
func (m *Machine) proves(h *heartbeat.Heartbeat) bool {
	floor := max(m.floor, m.freshSeq())
	fresh := func(boot, seq uint64) bool { return boot == m.cfg.BootID && seq >= floor && seq <= m.seq }
	return fresh(h.AckBoot, h.AckSeq) || fresh(h.EchoBoot, h.EchoSeq)
}

// freshSeq is the first sequence number sent in the last two dead
// intervals: an echo of an older one is not evidence of a live
// partner. (Two, because the echo of a heartbeat travels out, may wait
// for the partner's next send and travels back.)
func (m *Machine) freshSeq() uint64 {
	m.forgetSent()
	if len(m.sent) == 0 {
		return m.seq + 1
	}
	return m.sent[0].seq
}

// forgetSent drops the sends older than freshSeq looks back.
func (m *Machine) forgetSent() {
	from := m.now - 2*int64(m.cfg.DeadTicks)
	i := 0
	for i < len(m.sent) && m.sent[i].tick < from {
		i++
	}
	m.sent = m.sent[i:]
}

// answer sends a heartbeat now that echoes h, an unproven heartbeat,
// unless h's boot was answered less than a heartbeat period ago: a
// live partner that has just started gets its proof at once, and a
// recording played fast gets an answer per period, not per datagram.
func (m *Machine) answer(h *heartbeat.Heartbeat) {
	oldest := 0
	for i, a := range m.answered {
		if a.boot == h.BootID {
			if m.now-a.at < int64(m.cfg.HeartbeatTicks) {
				return
			}
			oldest = i
			break
		}
		if a.at < m.answered[oldest].at {
			oldest = i
		}
	}
	m.answered[oldest] = answer{boot: h.BootID, at: m.now}
	m.sendEcho(h)
}

// Refused reports that the partner's machine answered a heartbeat with
// ICMP port unreachable: nothing listens on its heartbeat port, so its
// daemon is not running (it crashed or was killed, and the machine
// lives on). Once the partner has also missed a heartbeat and a half,
// it counts as gone without waiting out the dead interval. An ICMP
// message is not authenticated, hence the second condition: a forged
// one cannot move a VIP away from a partner whose heartbeats arrive.
// The rule assumes heartbeat delay varies by less than half an
// interval, as it does on one L2 segment.
func (m *Machine) Refused() []Action {
	if m.state != heartbeat.StateStopping && !m.linkDown {
		m.refused = true
	}
	return m.step()
}

// Link reports the state of this machine's own link. Link down puts
// the machine in fault, holding nothing; link up starts a new run, as
// after a restart (once a witness answers, if there is one).
func (m *Machine) Link(up bool) []Action {
	switch {
	case m.state == heartbeat.StateStopping:
	case !up && !m.linkDown:
		m.linkDown = true
		if m.state != heartbeat.StateFault {
			m.faultSince = m.now
		}
		m.state = heartbeat.StateFault
		m.releaseAll(ReasonLinkDown)
		m.nextSend = m.now
	case up && m.linkDown:
		m.linkDown = false
		if m.witness != witnessLost {
			m.newRun()
		}
	}
	return m.step()
}

// Witness reports a witness round: whether at least one witness
// answered (the caller applies its own count of failed rounds before
// it reports false). A daemon that reaches no witness is in fault: it
// claims nothing; what it holds it releases as soon as its partner
// (which reaches one) holds it, or, if the partner is not heard, after
// the fault release time, so that the side that still reaches the
// network serves. Both sides without a witness keep what they hold.
// When a witness answers again the daemon starts a new run, as after
// a link flap, and announces what it still holds at once. Without
// Config.Witness it does nothing.
func (m *Machine) Witness(ok bool) []Action {
	if !m.cfg.Witness || m.state == heartbeat.StateStopping {
		return m.step()
	}
	switch {
	case ok && m.witness != witnessOK:
		lost := m.witness == witnessLost
		m.witness = witnessOK
		if lost && !m.linkDown {
			m.newRun()
			for _, h := range m.held {
				// The partner may have claimed it meanwhile and told the
				// LAN: take the neighbours back now.
				h.left, h.next = m.cfg.GARPCount, m.now
			}
		}
	case !ok && m.witness != witnessLost:
		m.witness = witnessLost
		if m.state != heartbeat.StateFault {
			m.state = heartbeat.StateFault
			m.faultSince = m.now
			m.nextSend = m.now
		}
	}
	return m.step()
}

// Probed reports the answer to a Probe action: whether vip is free —
// no machine on the LAN answered for it while a witness did answer in
// the same probe. (A witness answer there shows that the silence of
// the VIP is the LAN's and not this machine's own cut cable, which the
// witness rounds may not have noticed yet.) Answers to probes not asked
// are ignored.
func (m *Machine) Probed(vip netip.Prefix, free bool) []Action {
	if pr := m.probes[vip]; pr != nil && pr.pending {
		pr.pending, pr.done, pr.free = false, true, free
	}
	return m.step()
}

// newRun leaves a fault: as after a restart, the partner must
// acknowledge this run before home VIPs are claimed while it is up.
func (m *Machine) newRun() {
	m.state = heartbeat.StateStarting
	m.refused = false
	m.floor = m.seq + 1
	m.heardRun = false
	m.partner = nil
	m.candidate = nil
	m.lastHeard = m.now
	m.nextSend = m.now
	clear(m.probes)
}

// Stop releases everything and sends a final heartbeat saying so; the
// partner takes over at once instead of waiting out the dead interval.
// The machine ignores all input afterwards.
func (m *Machine) Stop() []Action {
	if m.state == heartbeat.StateStopping {
		return nil
	}
	m.state = heartbeat.StateStopping
	m.releaseAll(ReasonStopping)
	m.send()
	return m.flush()
}

func (m *Machine) flush() []Action {
	out := m.out
	m.out = nil
	return out
}

func (m *Machine) releaseAll(why string) {
	for _, p := range m.Holds() {
		m.release(p, why)
	}
}

func (m *Machine) release(p netip.Prefix, why string) {
	delete(m.held, p)
	m.out = append(m.out, Action{Kind: Release, VIP: p, Reason: why})
	m.nextSend = m.now // tell the partner at once: hand-back waits on it
}

func (m *Machine) claim(p netip.Prefix, why string) {
	m.held[p] = &hold{since: m.now, left: m.cfg.GARPCount, next: m.now}
	m.out = append(m.out, Action{Kind: Claim, VIP: p, Reason: why})
	m.nextSend = m.now
	delete(m.taking, p)
}

// Handover gives home VIPs to the partner (all of them if vips is
// empty; VIPs that are not home VIPs are ignored): the partner claims
// and announces them while this daemon still holds them, and this
// daemon releases them once the partner's heartbeat lists them, so no
// packet finds the VIP on neither machine. They stay with the partner
// until Takeback, or until the partner is gone.
func (m *Machine) Handover(vips []netip.Prefix) []Action {
	if m.state == heartbeat.StateStopping {
		return nil
	}
	for _, p := range m.cfg.Home {
		if len(vips) == 0 || slices.Contains(vips, p) {
			m.handover[p] = true
			delete(m.taking, p)
		}
	}
	m.nextSend = m.now
	return m.step()
}

// Takeback ends every handover: the home VIPs come back, this daemon
// claiming and announcing them before the partner releases them.
// While the tracked service fails they stay given.
func (m *Machine) Takeback() []Action {
	if m.state == heartbeat.StateStopping {
		return nil
	}
	for p := range m.handover {
		delete(m.handover, p)
		if !m.unhealthy {
			m.taking[p] = true
		}
	}
	m.nextSend = m.now
	return m.step()
}

// Track reports the tracked service's health (after its rise and fall
// counts). While it fails, the home VIPs are given to the partner as by
// Handover; when it recovers they come back as by Takeback if preempt
// is on, and otherwise stay with the partner until it gives them back.
func (m *Machine) Track(ok bool) []Action {
	if m.state == heartbeat.StateStopping || ok == !m.unhealthy {
		return m.step()
	}
	m.unhealthy = !ok
	for _, p := range m.cfg.Home {
		switch {
		case !ok:
			delete(m.taking, p)
		case m.cfg.Preempt && !m.handover[p]:
			m.taking[p] = true
		}
	}
	m.nextSend = m.now
	return m.step()
}

// Removed reports that vip disappeared from the interface without this
// daemon releasing it (an operator, NetworkManager, systemd-networkd).
// A VIP the machine holds is put back (Restore) and announced again
// with a full burst, since neighbours may have heard of its loss;
// others are ignored (the report of the daemon's own release).
func (m *Machine) Removed(vip netip.Prefix) []Action {
	if h, ok := m.held[vip]; ok && m.state != heartbeat.StateStopping {
		m.out = append(m.out, Action{Kind: Restore, VIP: vip, Reason: ReasonRemoved})
		h.left, h.next = m.cfg.GARPCount, m.now
	}
	return m.step()
}

// Gives lists the home VIPs this daemon gives to its partner, sorted.
func (m *Machine) Gives() []netip.Prefix {
	var out []netip.Prefix
	for _, p := range m.cfg.Home {
		if m.giving(p) {
			out = append(out, p)
		}
	}
	slices.SortFunc(out, func(a, b netip.Prefix) int { return strings.Compare(a.String(), b.String()) })
	return out
}

// Healthy reports the tracked service's health as last reported.
func (m *Machine) Healthy() bool { return !m.unhealthy }

func (m *Machine) giving(p netip.Prefix) bool { return m.unhealthy || m.handover[p] }

// partnerGives reports whether the partner gives p away.
func (m *Machine) partnerGives(p netip.Prefix) bool {
	return m.partner != nil && slices.Contains(m.partner.Gives, p)
}

// partnerTrackDown reports whether the partner's tracked service fails.
func (m *Machine) partnerTrackDown() bool {
	return m.partner != nil && m.partner.Flags&heartbeat.FlagTrackDown != 0
}

// silent reports whether the partner has not been heard for the dead
// interval (counted from the start of the run if never heard).
func (m *Machine) silent() bool { return m.now-m.lastHeard >= int64(m.cfg.DeadTicks) }

func (m *Machine) partnerUp() bool {
	if !m.heardRun || m.partnerGone() {
		return false
	}
	s := m.partner.State
	return s != heartbeat.StateStopping && s != heartbeat.StateFault
}

func (m *Machine) partnerGone() bool { return m.silent() || m.partnerGoneSure() }

// partnerGoneSure reports whether the partner is gone by its own word
// (stopping, in fault) or its machine's (a refused heartbeat), rather
// than only by its silence, which a partition of the heartbeat path
// also causes.
func (m *Machine) partnerGoneSure() bool {
	if m.refused && 2*(m.now-m.lastHeard) >= 3*int64(m.cfg.HeartbeatTicks) {
		return true
	}
	if !m.heardRun {
		return false
	}
	s := m.partner.State
	return s == heartbeat.StateStopping || s == heartbeat.StateFault
}

// witnessOK reports whether claims are allowed as far as the witness
// goes: there is none, or one answered the last round.
func (m *Machine) witnessOK() bool { return !m.cfg.Witness || m.witness == witnessOK }

// mayTake reports whether a VIP may be claimed because the partner is
// gone. A partner that is only silent may be cut off on the heartbeat
// path alone, holding its VIPs still: with a witness, such a VIP is
// taken only after a probe, asked during the silence, that no machine
// answered.
func (m *Machine) mayTake(p netip.Prefix) bool {
	if !m.cfg.Witness || m.partnerGoneSure() {
		return true
	}
	pr := m.probes[p]
	return pr != nil && pr.done && pr.free && m.probeFresh(pr)
}

// probeFresh reports whether pr was asked in the partner's current
// silence, half a dead interval or more after it was last heard.
func (m *Machine) probeFresh(pr *probe) bool {
	return 2*(pr.asked-m.lastHeard) >= int64(m.cfg.DeadTicks)
}

// askProbes asks the LAN about every VIP not held here once the
// partner has been silent for half the dead interval, so that the
// answer is in when the dead interval ends; a VIP that is not free is
// asked about again every ProbeTicks.
func (m *Machine) askProbes() {
	if !m.cfg.Witness || m.partnerGoneSure() || 2*(m.now-m.lastHeard) < int64(m.cfg.DeadTicks) {
		return
	}
	for _, p := range slices.Concat(m.cfg.Home, m.cfg.Partner) {
		if _, mine := m.held[p]; mine {
			continue
		}
		pr := m.probes[p]
		if pr == nil {
			pr = &probe{}
			m.probes[p] = pr
		}
		// An answer that never comes (the caller lost it) is given
		// up on after a few periods.
		if pr.pending && m.now-pr.asked < 4*int64(m.cfg.ProbeTicks) {
			continue
		}
		if !pr.pending && pr.done && m.probeFresh(pr) && (pr.free || m.now-pr.asked < int64(m.cfg.ProbeTicks)) {
			continue
		}
		*pr = probe{pending: true, asked: m.now}
		m.out = append(m.out, Action{Kind: Probe, VIP: p})
	}
}

// faultRelease gives up what a daemon without a witness holds: a VIP
// the partner (running, so it has a witness) holds too is released at
// once (the partner claimed it because this daemon reported fault);
// with the partner silent as well, everything goes after the fault
// release time. With the partner heard and in fault too, the witness
// is what is gone, and both keep what they hold.
func (m *Machine) faultRelease() {
	heard := m.heardRun && !m.silent()
	for _, p := range m.Holds() {
		switch {
		case heard && m.partner.State == heartbeat.StateRunning && m.partnerHolds(p):
			m.release(p, ReasonNoWitness)
		case !heard && m.now-m.faultSince >= int64(m.cfg.FaultReleaseTicks):
			m.release(p, ReasonNoWitness)
		}
	}
}

// contest re-announces a home VIP, once per contest, when the partner
// reports holding it too (after a partition, or a fault this daemon
// came back from): home keeps it and tells the LAN again, and the
// partner releases it on this daemon's next heartbeat.
func (m *Machine) contest() {
	for _, p := range m.cfg.Home {
		h, mine := m.held[p]
		if !mine {
			continue
		}
		handedOver := m.giving(p) && !m.partnerTrackDown()
		if m.partnerUp() && m.partnerHolds(p) && !handedOver {
			if !h.contested {
				h.contested = true
				h.left, h.next = m.cfg.GARPCount, m.now
			}
		} else {
			h.contested = false
		}
	}
}

// acked reports whether the partner has heard this run of this daemon.
func (m *Machine) acked() bool {
	return m.heardRun && m.partner.AckBoot == m.cfg.BootID && m.partner.AckSeq >= m.floor
}

func (m *Machine) partnerHolds(p netip.Prefix) bool {
	return m.partner != nil && slices.Contains(m.partner.Holds, p)
}

// reclaiming reports whether this daemon asks for its home VIPs back.
func (m *Machine) reclaiming() bool {
	if !m.cfg.Preempt || m.state != heartbeat.StateRunning || !m.partnerUp() {
		return false
	}
	if m.now-m.runningSince < int64(m.cfg.PreemptDelayTicks) {
		return false
	}
	for _, p := range m.cfg.Home {
		if _, mine := m.held[p]; !mine && m.partnerHolds(p) && !m.giving(p) && !m.taking[p] {
			return true
		}
	}
	return false
}

func (m *Machine) step() []Action {
	switch m.state {
	case heartbeat.StateStopping:
		return m.flush()
	case heartbeat.StateStarting:
		if m.witnessOK() && (m.partnerGone() || (m.partnerUp() && m.acked())) {
			m.state = heartbeat.StateRunning
			m.runningSince = m.now
			m.nextSend = m.now
		}
	case heartbeat.StateFault:
		if !m.linkDown {
			m.faultRelease()
		}
	}
	if m.state == heartbeat.StateStarting || m.state == heartbeat.StateRunning {
		m.contest()
	}
	if m.state == heartbeat.StateRunning {
		m.askProbes()
		m.decide()
	}
	m.announce()
	if m.reclaiming() != m.reclaim {
		m.nextSend = m.now // a hand-back starts with this flag; do not wait
	}
	if m.now >= m.nextSend {
		m.send()
	}
	return m.flush()
}

func (m *Machine) decide() {
	gone, up := m.partnerGone(), m.partnerUp()
	// Releases come before claims so that a hand-back never has a moment
	// with the VIP on both machines. A VIP the partner gives is kept
	// (unless this daemon's own service fails and the partner holds it
	// too): the partner releases it once it sees it held here.
	for _, p := range m.cfg.Partner {
		_, mine := m.held[p]
		wanted := m.partner != nil && (m.partner.Flags&heartbeat.FlagReclaim != 0 || m.partnerHolds(p))
		if mine && up && wanted && (!m.partnerGives(p) || (m.unhealthy && m.partnerHolds(p))) {
			m.release(p, ReasonPartnerHome)
		}
	}
	if !up {
		clear(m.taking)
	}
	for _, p := range m.cfg.Home {
		_, mine := m.held[p]
		switch {
		case mine && up && m.partnerHolds(p) && m.giving(p) && !m.partnerTrackDown():
			// Given, and the partner has claimed and announced it.
			m.release(p, ReasonHandedOver)
		case mine:
			// Both may hold it after a partition: home keeps it (and
			// contest has told the LAN again); the partner releases on
			// our next heartbeat.
		case gone && m.mayTake(p):
			m.claim(p, ReasonPartnerGone)
		case m.giving(p) && !m.partnerTrackDown():
			// Left to the partner.
		case up && m.acked() && !m.partnerHolds(p) && m.giving(p):
			m.claim(p, ReasonPartnerCannot)
		case up && m.acked() && !m.partnerHolds(p):
			m.claim(p, ReasonHome)
		case up && m.acked() && m.taking[p]:
			// The partner releases it when it sees it held here.
			m.claim(p, ReasonTakeback)
		}
	}
	for _, p := range m.cfg.Partner {
		_, mine := m.held[p]
		switch {
		case mine:
		case gone && m.mayTake(p):
			m.claim(p, ReasonPartnerGone)
		case up && m.partnerGives(p) && !m.unhealthy:
			m.claim(p, ReasonGiven)
		}
	}
}

func (m *Machine) announce() {
	for _, p := range m.Holds() {
		h := m.held[p]
		if m.now < h.next {
			continue
		}
		m.out = append(m.out, Action{Kind: Announce, VIP: p})
		if h.left > 0 {
			h.left--
		}
		if h.left > 0 {
			h.next = m.now + int64(m.cfg.GARPIntervalTicks)
		} else {
			h.next = m.now + int64(m.cfg.GARPRefreshTicks)
		}
	}
}

func (m *Machine) send() { m.sendEcho(nil) }

// sendEcho sends a heartbeat; to, if not nil, is the unproven heartbeat
// it answers at once. It speaks the wire version of the proven partner
// boot, or, before one has proved itself, of the heartbeat it answers
// (a daemon that speaks only version 1 drops version 2 as unknown).
// Version 2 acknowledges the proven boot and echoes to, or else the
// latest unproven heartbeat. Version 1 has no echo: its ack names to,
// or else the latest heartbeat heard, as version 1 daemons do.
func (m *Machine) sendEcho(to *heartbeat.Heartbeat) {
	m.seq++
	m.forgetSent()
	if n := len(m.sent); n == 0 || m.sent[n-1].tick != m.now {
		m.sent = append(m.sent, sentTick{tick: m.now, seq: m.seq})
	}
	b := &heartbeat.Heartbeat{
		Version: heartbeat.Version,
		State:   m.state,
		Seq:     m.seq,
		Holds:   m.Holds(),
		Gives:   m.Gives(),
	}
	m.reclaim = m.reclaiming()
	if m.reclaim {
		b.Flags |= heartbeat.FlagReclaim
	}
	if m.unhealthy {
		b.Flags |= heartbeat.FlagTrackDown
	}
	echo := to
	if echo == nil {
		echo = m.candidate
	}
	switch {
	case m.heardRun:
		b.Version = m.partner.Version
	case echo != nil:
		b.Version = echo.Version
	}
	if b.Version == 1 {
		ack := to
		if ack == nil {
			ack = m.heard
		}
		if ack != nil {
			b.AckBoot, b.AckSeq = ack.BootID, ack.Seq
		}
	} else {
		if m.heardRun {
			b.AckBoot, b.AckSeq = m.partner.BootID, m.partner.Seq
		}
		if echo != nil {
			b.EchoBoot, b.EchoSeq = echo.BootID, echo.Seq
		}
	}
	m.out = append(m.out, Action{Kind: Send, Beat: b})
	m.nextSend = m.now + int64(m.cfg.HeartbeatTicks)
}
