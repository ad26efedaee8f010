package member

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ringfront/ringfront/internal/daemon"
	"github.com/ringfront/ringfront/vipwatch/fsm"
	"github.com/ringfront/ringfront/vipwatch/heartbeat"
)

// Status is the answer of GET /v1/status, and what `vipwatch status`
// prints.
type Status struct {
	Node      string `json:"node"`
	Interface string `json:"interface"`
	BootID    string `json:"boot_id"`
	State     string `json:"state"`
	// Fault says why State is fault: "link-down" or "no-witness"
	// (empty otherwise).
	Fault string      `json:"fault,omitempty"`
	VIPs  []VIPStatus `json:"vips"`
	// Witness is the witness's state; nil when none is configured.
	Witness *WitnessStatus `json:"witness,omitempty"`
	// Gives lists the home VIPs this node gives to its partner (a
	// handover, or a failing tracked service).
	Gives []string `json:"gives"`
	// ServiceHealthy is the tracked service's health (true without track).
	ServiceHealthy bool          `json:"service_healthy"`
	Partner        PartnerStatus `json:"partner"`
	Counters       Counters      `json:"counters"`
}

// WitnessStatus is what the daemon knows of its witness.
type WitnessStatus struct {
	Method  string   `json:"method"`
	Targets []string `json:"targets"`
	// State is "reachable", "unreachable" (after witness.fall rounds
	// without an answer: this node is in fault) or "unknown" (no
	// verdict yet).
	State string `json:"state"`
	// LastAnswerSeconds is the age of the last answered round; -1 if
	// none was answered.
	LastAnswerSeconds float64 `json:"last_answer_seconds"`
	// FailedRounds counts unanswered rounds in a row.
	FailedRounds int `json:"failed_rounds"`
}

// VIPStatus is one of the pair's VIPs as this daemon sees it.
type VIPStatus struct {
	VIP    string `json:"vip"`
	Home   string `json:"home"`   // the node whose home VIP it is
	Holder string `json:"holder"` // who holds it: this node, the partner, both, or "" (nobody known)
	// HeldForSeconds is how long this node has held it (0 if it does not).
	HeldForSeconds float64 `json:"held_for_seconds"`
}

// PartnerStatus is what this daemon knows of its partner.
type PartnerStatus struct {
	Node  string `json:"node"`
	Peer  string `json:"peer"`
	Up    bool   `json:"up"`
	State string `json:"state"`
	// LastHeardSeconds is the age of the last accepted heartbeat; -1 if
	// none was heard.
	LastHeardSeconds float64  `json:"last_heard_seconds"`
	BootID           string   `json:"boot_id,omitempty"`
	Holds            []string `json:"holds"`
	Gives            []string `json:"gives"`
	Reclaiming       bool     `json:"reclaiming"`
	ServiceFailing   bool     `json:"service_failing"`
	// WireVersion is the heartbeat format version the partner speaks
	// (0: not heard in this run). Version 1 is a daemon from before
	// the liveness challenge; see the README on mixed pairs.
	WireVersion int `json:"wire_version"`
	// LastUnprovenSeconds is the age of the last heartbeat from the
	// partner node that proved nothing (it echoed no heartbeat of this
	// run: a replay, or a partner that had not heard this node yet);
	// -1 if none came. UnprovenBoot is its boot id.
	LastUnprovenSeconds float64 `json:"last_unproven_seconds"`
	UnprovenBoot        string  `json:"unproven_boot,omitempty"`
}

// Status returns the daemon's current status. It is safe for
// concurrent use.
func (m *Member) Status() Status {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now()
	st := Status{
		Node:      m.cfg.Node,
		Interface: m.cfg.Interface,
		BootID:    fmt.Sprintf("%016x", m.boot),
		State:     m.st.state.String(),
		Partner: PartnerStatus{
			Node:                m.cfg.PartnerNode,
			Peer:                m.cfg.Peer.String(),
			Up:                  m.st.partnerUp,
			State:               "unknown",
			LastHeardSeconds:    -1,
			LastUnprovenSeconds: -1,
			Holds:               []string{},
			Gives:               []string{},
		},
		Gives:          []string{},
		ServiceHealthy: m.st.healthy,
		Counters:       m.st.counters,
	}
	for _, g := range m.st.gives {
		st.Gives = append(st.Gives, g.String())
	}
	st.Fault = m.st.fault
	if w := m.cfg.Witness; w != nil {
		ws := &WitnessStatus{Method: w.Method, State: m.witnessState(&m.st), LastAnswerSeconds: -1, FailedRounds: m.st.witnessFailed}
		for _, t := range m.witnessTargets {
			ws.Targets = append(ws.Targets, t.String())
		}
		if !m.st.witnessLastOK.IsZero() {
			ws.LastAnswerSeconds = now.Sub(m.st.witnessLastOK).Seconds()
		}
		st.Witness = ws
	}
	st.Counters.HeartbeatsDropped = make(map[string]uint64, len(m.st.counters.HeartbeatsDropped))
	for k, v := range m.st.counters.HeartbeatsDropped {
		st.Counters.HeartbeatsDropped[k] = v
	}
	var partnerHolds []netip.Prefix
	if p := m.st.partner; p != nil {
		st.Partner.Node = p.Node
		st.Partner.State = p.State.String()
		st.Partner.BootID = fmt.Sprintf("%016x", p.BootID)
		st.Partner.Reclaiming = p.Flags&heartbeat.FlagReclaim != 0
		partnerHolds = p.Holds
		for _, h := range p.Holds {
			st.Partner.Holds = append(st.Partner.Holds, h.String())
		}
		for _, g := range p.Gives {
			st.Partner.Gives = append(st.Partner.Gives, g.String())
		}
		st.Partner.ServiceFailing = p.Flags&heartbeat.FlagTrackDown != 0
		st.Partner.WireVersion = int(p.Version)
	}
	if !m.st.lastHeard.IsZero() {
		st.Partner.LastHeardSeconds = now.Sub(m.st.lastHeard).Seconds()
	}
	if !m.st.lastUnproven.IsZero() {
		st.Partner.LastUnprovenSeconds = now.Sub(m.st.lastUnproven).Seconds()
		st.Partner.UnprovenBoot = fmt.Sprintf("%016x", m.st.unprovenBoot)
	}
	partnerName := st.Partner.Node
	if partnerName == "" {
		partnerName = "partner"
	}
	add := func(vip netip.Prefix, home string) {
		v := VIPStatus{VIP: vip.String(), Home: home}
		since, mine := m.st.holds[vip]
		theirs := slices.Contains(partnerHolds, vip)
		switch {
		case mine && theirs:
			v.Holder = "both"
		case mine:
			v.Holder = m.cfg.Node
		case theirs:
			v.Holder = partnerName
		}
		if mine {
			v.HeldForSeconds = now.Sub(since).Seconds()
		}
		st.VIPs = append(st.VIPs, v)
	}
	for _, vip := range m.cfg.HomeVIPs {
		add(vip, m.cfg.Node)
	}
	for _, vip := range m.cfg.PartnerVIPs {
		add(vip, partnerName)
	}
	return st
}

// ServeStatus is the GET /v1/status handler.
func (m *Member) ServeStatus(w http.ResponseWriter, r *http.Request) {
	daemon.WriteJSON(w, http.StatusOK, m.Status())
}

// ServeHandover is the POST /v1/handover handler: ?vip=198.51.100.10/24
// (repeatable) names the home VIPs to hand over, none means all. It
// answers with the status once the handover has started: 400 for a VIP
// that is not a home VIP, 409 when the partner cannot take it.
func (m *Member) ServeHandover(w http.ResponseWriter, r *http.Request) {
	var vips []netip.Prefix
	for _, v := range r.URL.Query()["vip"] {
		p, err := m.parseVIP(v)
		if err != nil {
			m.serveCommand(w, r, err)
			return
		}
		vips = append(vips, p)
	}
	m.serveCommand(w, r, m.Handover(r.Context(), vips))
}

// ServeTakeback is the POST /v1/takeback handler.
func (m *Member) ServeTakeback(w http.ResponseWriter, r *http.Request) {
	m.serveCommand(w, r, m.Takeback(r.Context()))
}

func (m *Member) serveCommand(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case err == nil:
		daemon.WriteJSON(w, http.StatusOK, m.Status())
	case errors.Is(err, ErrNotHome), errors.Is(err, errBadVIP):
		daemon.WriteError(w, http.StatusBadRequest, err)
	case errors.Is(err, ErrPartnerDown):
		daemon.WriteError(w, http.StatusConflict, err)
	default:
		daemon.WriteError(w, http.StatusServiceUnavailable, err)
	}
}

var errBadVIP = errors.New("neither an address nor a prefix like 198.51.100.10/24")

// parseVIP reads a VIP as a prefix (198.51.100.10/24) or a bare
// address, which names the home VIP with that address.
func (m *Member) parseVIP(s string) (netip.Prefix, error) {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("vip %q: %w", s, errBadVIP)
	}
	for _, p := range m.cfg.HomeVIPs {
		if p.Addr() == a {
			return p, nil
		}
	}
	return netip.Prefix{}, fmt.Errorf("handing over %v: %w (home VIPs: %v)", a, ErrNotHome, m.cfg.HomeVIPs)
}

// unprovenShownFor is how long the status table mentions the last
// unproven heartbeat: a partner's first heartbeat after a restart is
// one, and need not be mentioned forever (the drop counts stay).
const unprovenShownFor = time.Minute

// FormatStatus renders a status as the table `vipwatch status` prints.
func FormatStatus(s Status) string {
	var b strings.Builder
	fmt.Fprintf(&b, "node %s  state %s  interface %s  boot %s\n", s.Node, s.State, s.Interface, s.BootID)
	switch s.Fault {
	case fsm.FaultLink:
		b.WriteString("FAULT: the interface is down or has no carrier; holding nothing\n")
	case fsm.FaultWitness:
		b.WriteString("FAULT: no witness answers; claiming nothing, releasing VIPs to a partner that reaches one (or after fault_release_after)\n")
	}
	if w := s.Witness; w != nil {
		last := "never"
		if w.LastAnswerSeconds >= 0 {
			last = fmt.Sprintf("%.3fs ago", w.LastAnswerSeconds)
		}
		fmt.Fprintf(&b, "witness %s %s: %s  last answer %s  unanswered rounds %d\n", w.Method, strings.Join(w.Targets, " "), w.State, last, w.FailedRounds)
	}
	if !s.ServiceHealthy {
		b.WriteString("tracked service FAILING: home VIPs are given to the partner\n")
	}
	if len(s.Gives) > 0 {
		fmt.Fprintf(&b, "giving to the partner: %s\n", strings.Join(s.Gives, " "))
	}
	heard := "never"
	if s.Partner.LastHeardSeconds >= 0 {
		heard = fmt.Sprintf("%.3fs ago", s.Partner.LastHeardSeconds)
	}
	up := "down"
	if s.Partner.Up {
		up = "up"
	}
	fmt.Fprintf(&b, "partner %s (%s)  %s  state %s  last heard %s", s.Partner.Node, s.Partner.Peer, up, s.Partner.State, heard)
	if s.Partner.Reclaiming {
		b.WriteString("  reclaiming its VIPs")
	}
	if s.Partner.ServiceFailing {
		b.WriteString("  its tracked service fails")
	}
	if len(s.Partner.Gives) > 0 {
		fmt.Fprintf(&b, "  gives %s", strings.Join(s.Partner.Gives, " "))
	}
	b.WriteString("\n")
	if s.Partner.WireVersion == 1 {
		b.WriteString("partner speaks heartbeat version 1: it does not answer the liveness challenge and takes replayed heartbeats after a restart; upgrade it\n")
	}
	if s.Partner.LastUnprovenSeconds >= 0 && s.Partner.LastUnprovenSeconds < unprovenShownFor.Seconds() {
		fmt.Fprintf(&b, "unproven heartbeats from %s: %d, last %.3fs ago (boot %s); they echo no heartbeat of this run (a replay, or a partner that had not heard this node yet) and are not acted on\n",
			s.Partner.Node, s.Counters.HeartbeatsDropped[heartbeat.Unproven.String()], s.Partner.LastUnprovenSeconds, s.Partner.UnprovenBoot)
	}
	b.WriteString("\n")
	fmt.Fprintf(&b, "%-20s %-10s %-10s %s\n", "VIP", "HOME", "HOLDER", "HELD FOR")
	for _, v := range s.VIPs {
		holder, held := v.Holder, ""
		if holder == "" {
			holder = "-"
		}
		if v.HeldForSeconds > 0 {
			held = fmt.Sprintf("%.1fs", v.HeldForSeconds)
		}
		fmt.Fprintf(&b, "%-20s %-10s %-10s %s\n", v.VIP, v.Home, holder, held)
	}
	c := s.Counters
	fmt.Fprintf(&b, "\nheartbeats sent %d  received %d  refused by the partner's machine %d  send errors %d\n",
		c.HeartbeatsSent, c.HeartbeatsReceived, c.HeartbeatsRefused, c.SendErrors)
	var drops []string
	for _, k := range slices.Sorted(mapKeys(c.HeartbeatsDropped)) {
		drops = append(drops, fmt.Sprintf("%s %d", k, c.HeartbeatsDropped[k]))
	}
	fmt.Fprintf(&b, "dropped: %s\n", strings.Join(drops, ", "))
	fmt.Fprintf(&b, "claims %d  releases %d  address errors %d  GARPs sent %d  GARP errors %d  stale removed %d  restored %d\n",
		c.Claims, c.Releases, c.AddressErrors, c.GARPsSent, c.GARPErrors, c.StaleRemoved, c.AddressesRestored)
	if s.Witness != nil {
		fmt.Fprintf(&b, "witness rounds %d  unanswered %d  lost %d  VIP probes %d  answered %d  probe errors %d\n",
			c.WitnessRounds, c.WitnessFailures, c.WitnessLost, c.VIPProbes, c.VIPProbesAnswered, c.ProbeErrors)
	}
	if c.NotifyRuns > 0 || c.NotifyFailures > 0 || c.TrackFailures > 0 {
		fmt.Fprintf(&b, "notify runs %d  notify failures %d  track failures %d\n", c.NotifyRuns, c.NotifyFailures, c.TrackFailures)
	}
	return b.String()
}

func mapKeys(m map[string]uint64) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// Register adds vipwatch's metrics to reg. They read the same snapshot
// as Status.
func (m *Member) Register(reg prometheus.Registerer) error {
	read := func(f func(*snapshot) float64) func() float64 {
		return func() float64 {
			m.mu.Lock()
			defer m.mu.Unlock()
			return f(&m.st)
		}
	}
	counter := func(name, help string, f func(*Counters) uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "vipwatch_" + name, Help: help},
			read(func(s *snapshot) float64 { return float64(f(&s.counters)) }))
	}
	cs := []prometheus.Collector{
		counter("heartbeats_sent_total", "Heartbeats sent to the partner.", func(c *Counters) uint64 { return c.HeartbeatsSent }),
		counter("heartbeats_received_total", "Heartbeats from the partner acted on: authentic, new, and from the partner boot that proved it hears this run.", func(c *Counters) uint64 { return c.HeartbeatsReceived }),
		counter("heartbeats_refused_total", "Heartbeats the partner's machine refused (ICMP port unreachable: its daemon is not running).", func(c *Counters) uint64 { return c.HeartbeatsRefused }),
		counter("heartbeat_send_errors_total", "Heartbeats that could not be sent.", func(c *Counters) uint64 { return c.SendErrors }),
		counter("claims_total", "VIPs added to the interface.", func(c *Counters) uint64 { return c.Claims }),
		counter("releases_total", "VIPs removed from the interface.", func(c *Counters) uint64 { return c.Releases }),
		counter("address_errors_total", "Failed address additions or removals.", func(c *Counters) uint64 { return c.AddressErrors }),
		counter("garps_sent_total", "Gratuitous ARP frames sent.", func(c *Counters) uint64 { return c.GARPsSent }),
		counter("garp_errors_total", "Announcements that failed.", func(c *Counters) uint64 { return c.GARPErrors }),
		counter("stale_addresses_removed_total", "vipwatch-labelled addresses removed at start.", func(c *Counters) uint64 { return c.StaleRemoved }),
		counter("notify_runs_total", "Notify hook runs.", func(c *Counters) uint64 { return c.NotifyRuns }),
		counter("notify_failures_total", "Notify hook runs that failed or timed out, and events dropped or not run.", func(c *Counters) uint64 { return c.NotifyFailures }),
		counter("addresses_restored_total", "Held VIPs put back after someone else removed them from the interface.", func(c *Counters) uint64 { return c.AddressesRestored }),
		counter("track_failures_total", "Times the tracked service went down.", func(c *Counters) uint64 { return c.TrackFailures }),
		counter("witness_rounds_total", "Witness rounds run.", func(c *Counters) uint64 { return c.WitnessRounds }),
		counter("witness_rounds_failed_total", "Witness rounds in which no witness answered.", func(c *Counters) uint64 { return c.WitnessFailures }),
		counter("witness_lost_total", "Times the witness was lost (witness.fall unanswered rounds in a row): fault.", func(c *Counters) uint64 { return c.WitnessLost }),
		counter("vip_probes_total", "VIPs probed on the LAN before claiming them from a silent partner.", func(c *Counters) uint64 { return c.VIPProbes }),
		counter("vip_probes_answered_total", "VIP probes another machine answered (the VIP was not claimed).", func(c *Counters) uint64 { return c.VIPProbesAnswered }),
		counter("probe_errors_total", "Witness rounds and VIP probes that failed to run.", func(c *Counters) uint64 { return c.ProbeErrors }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "vipwatch_witness_reachable", Help: "1 while a witness answers; 0 otherwise (none answers, no verdict yet, or no witness: vipwatch_witness_state tells them apart)."},
			read(func(s *snapshot) float64 { return b2f(s.witnessKnown && s.witnessUp) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "vipwatch_service_healthy", Help: "1 while the tracked service is up (always 1 without track)."},
			read(func(s *snapshot) float64 { return b2f(s.healthy) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "vipwatch_vips_given", Help: "Home VIPs this daemon gives to its partner (handover, failing service)."},
			read(func(s *snapshot) float64 { return float64(len(s.gives)) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "vipwatch_vips_held", Help: "VIPs this daemon holds."},
			read(func(s *snapshot) float64 { return float64(len(s.holds)) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "vipwatch_partner_up", Help: "1 if the partner is heard and serving."},
			read(func(s *snapshot) float64 { return b2f(s.partnerUp) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "vipwatch_partner_heartbeat_version", Help: "Heartbeat format version the partner speaks (0: not heard in this run; 1: from before the liveness challenge)."},
			read(func(s *snapshot) float64 {
				if s.partner == nil {
					return 0
				}
				return float64(s.partner.Version)
			})),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "vipwatch_partner_last_heartbeat_timestamp_seconds", Help: "Unix time of the partner's last heartbeat acted on (0: none since this daemon started)."},
			read(func(s *snapshot) float64 {
				if s.lastHeard.IsZero() {
					return 0
				}
				return float64(s.lastHeard.UnixNano()) / 1e9
			})),
	}
	// One series per VIP of the pair, from each machine: the sum over
	// the pair is the number of machines holding it (1 is right).
	for _, p := range slices.Concat(m.cfg.HomeVIPs, m.cfg.PartnerVIPs) {
		cs = append(cs, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "vipwatch_vip_held", Help: "1 while this daemon holds the VIP, 0 while it does not (sum over the pair: how many machines hold it).",
			ConstLabels: prometheus.Labels{"vip": p.Addr().String()},
		}, read(func(s *snapshot) float64 {
			_, held := s.holds[p]
			return b2f(held)
		})))
	}
	for _, w := range witnessStates {
		cs = append(cs, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "vipwatch_witness_state", Help: "1 for the witness's state (none: no witness configured; unknown: no verdict yet; reachable; unreachable: fault), 0 for the others.",
			ConstLabels: prometheus.Labels{"state": w},
		}, read(func(s *snapshot) float64 { return b2f(m.witnessState(s) == w) })))
	}
	for _, reason := range dropReasons() {
		cs = append(cs, prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "vipwatch_heartbeats_dropped_total", Help: "Datagrams dropped, by reason.",
			ConstLabels: prometheus.Labels{"reason": reason},
		}, read(func(s *snapshot) float64 { return float64(s.counters.HeartbeatsDropped[reason]) })))
	}
	for _, reason := range []string{fsm.FaultLink, fsm.FaultWitness} {
		cs = append(cs, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "vipwatch_fault", Help: "1 while the daemon is in fault for this reason.",
			ConstLabels: prometheus.Labels{"reason": reason},
		}, read(func(s *snapshot) float64 { return b2f(s.fault == reason) })))
	}
	for _, st := range []heartbeat.State{heartbeat.StateStarting, heartbeat.StateRunning, heartbeat.StateFault, heartbeat.StateStopping} {
		cs = append(cs, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "vipwatch_state", Help: "1 for the daemon's current state.",
			ConstLabels: prometheus.Labels{"state": st.String()},
		}, read(func(s *snapshot) float64 { return b2f(s.state == st) })))
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("registering vipwatch metrics: %w", err)
		}
	}
	return nil
}

// Witness states as vipwatch_witness_state and the status name them.
const (
	witnessNone        = "none"
	witnessUnknown     = "unknown"
	witnessReachable   = "reachable"
	witnessUnreachable = "unreachable"
)

var witnessStates = []string{witnessNone, witnessUnknown, witnessReachable, witnessUnreachable}

// witnessState is the witness's state in s. Called with m.mu held.
func (m *Member) witnessState(s *snapshot) string {
	switch {
	case m.cfg.Witness == nil:
		return witnessNone
	case !s.witnessKnown:
		return witnessUnknown
	case s.witnessUp:
		return witnessReachable
	}
	return witnessUnreachable
}

// backlog is the drop reason of accepted heartbeats the daemon loop
// had no room for.
const backlog = "backlog"

func dropReasons() []string {
	var out []string
	for _, d := range heartbeat.DropReasons {
		out = append(out, d.String())
	}
	return append(out, backlog)
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
