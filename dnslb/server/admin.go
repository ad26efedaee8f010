package server

import (
	"context"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/ringfront/ringfront/dnslb/config"
	"github.com/ringfront/ringfront/dnslb/state"
	"github.com/ringfront/ringfront/internal/daemon"
	"github.com/ringfront/ringfront/internal/health"
)

// TargetStatus is one target as GET /v1/targets shows it.
type TargetStatus struct {
	Service string `json:"service"`
	Address string `json:"address"`
	State   string `json:"state"`   // up, down, unknown
	Drained bool   `json:"drained"` // an operator took it out
	// DrainedBy, DrainedSince and DrainReason say who drained the
	// target (the admin API's caller), when, and why (if given).
	DrainedBy    string    `json:"drained_by,omitempty"`
	DrainedSince time.Time `json:"drained_since,omitzero"`
	DrainReason  string    `json:"drain_reason,omitempty"`
	Answered     bool      `json:"answered"` // in the answers right now
	LastResult   string    `json:"last_result"`
	LastCheck    time.Time `json:"last_check"`
	Successes    int       `json:"successes"` // consecutive
	Failures     int       `json:"failures"`  // consecutive
	Since        time.Time `json:"since"`     // when State was entered
	Check        string    `json:"check"`
}

// ZoneStatus is one zone as GET /v1/status shows it.
type ZoneStatus struct {
	Origin string `json:"origin"`
	Serial uint32 `json:"serial"`
}

// Status is what GET /v1/status answers.
type Status struct {
	Zones   []ZoneStatus   `json:"zones"`
	Targets []TargetStatus `json:"targets"`
}

func (s *Server) routes() {
	s.admin.Handle("GET /v1/targets", func(w http.ResponseWriter, r *http.Request) {
		daemon.WriteJSON(w, http.StatusOK, s.targetStatuses())
	})
	s.admin.Handle("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		st := Status{Targets: s.targetStatuses()}
		s.mu.Lock()
		cfg := s.cfg
		s.mu.Unlock()
		snap := s.snap.Load()
		for _, z := range cfg.Zones {
			zs := ZoneStatus{Origin: z.Origin}
			if soa, _, ok := snap.ZoneRecords(z.Origin); ok {
				zs.Serial = soa.Serial
			}
			st.Zones = append(st.Zones, zs)
		}
		daemon.WriteJSON(w, http.StatusOK, st)
	})
	s.admin.Handle("POST /v1/targets/{service}/{address}/drain", func(w http.ResponseWriter, r *http.Request) {
		s.setDrained(w, r, true)
	})
	s.admin.Handle("POST /v1/targets/{service}/{address}/undrain", func(w http.ResponseWriter, r *http.Request) {
		s.setDrained(w, r, false)
	})
	s.admin.HandleReload(s.log, s.notifier, func(ctx context.Context) error { return s.Reload(ctx, "admin API") })
}

func (s *Server) targetStatuses() []TargetStatus {
	snap := s.snap.Load()
	s.mu.Lock()
	drained := maps.Clone(s.drained)
	s.mu.Unlock()
	out := []TargetStatus{}
	answered := map[string][]netip.Addr{}
	for _, st := range s.mon.Snapshot() {
		service, addr, _ := cutTargetID(st.ID)
		if _, ok := answered[service]; !ok && snap != nil {
			answered[service] = snap.Answered(service)
		}
		d, isDrained := drained[st.ID]
		out = append(out, TargetStatus{
			Service:      service,
			Address:      addr,
			State:        st.State.String(),
			Drained:      isDrained,
			DrainedBy:    d.By,
			DrainedSince: d.Since,
			DrainReason:  d.Reason,
			Answered:     slices.Contains(answered[service], st.Addr),
			LastResult:   st.Last.String(),
			LastCheck:    st.Last.At,
			Successes:    st.Successes,
			Failures:     st.Failures,
			Since:        st.Since,
			Check:        describeCheck(st.Check),
		})
	}
	return out
}

func describeCheck(c health.Check) string {
	switch c.Type {
	case "exec":
		return fmt.Sprintf("exec %s every %v", strings.Join(c.Command, " "), c.Interval)
	case "tcp":
		return fmt.Sprintf("tcp :%d every %v", c.Port, c.Interval)
	}
	return fmt.Sprintf("%s :%d%s every %v", c.Type, c.Port, c.Path, c.Interval)
}

// setDrained drains or undrains a target. The query parameters "by"
// (who asks; the CLI sends user@host) and "reason" are kept with a
// drain, the caller's address with "by". The change is saved in the
// state file before it is made: a drain that could not be saved would
// not survive a restart, so it is refused.
func (s *Server) setDrained(w http.ResponseWriter, r *http.Request, drain bool) {
	service := strings.ToLower(dns.Fqdn(r.PathValue("service")))
	addr, err := netip.ParseAddr(r.PathValue("address"))
	if err != nil {
		daemon.WriteError(w, http.StatusBadRequest, fmt.Errorf("%q is not an IP address", r.PathValue("address")))
		return
	}
	addr = addr.Unmap()
	id := config.TargetID(service, addr)
	if !s.hasTarget(id) {
		daemon.WriteError(w, http.StatusNotFound, fmt.Errorf("no target %s of service %s", addr, service))
		return
	}
	reason := r.URL.Query().Get("reason")
	if len(reason) > 500 {
		daemon.WriteError(w, http.StatusBadRequest, fmt.Errorf("reason: %d characters, at most 500", len(reason)))
		return
	}
	by := caller(r)
	s.drainMu.Lock()
	s.mu.Lock()
	next := maps.Clone(s.drained)
	s.mu.Unlock()
	if drain {
		next[id] = state.Drain{Service: service, Address: addr.String(), By: by, Since: time.Now().UTC().Truncate(time.Second), Reason: reason}
	} else {
		delete(next, id)
	}
	if err := s.state.Save(next); err != nil {
		s.drainMu.Unlock()
		s.log.Error("saving the admin state", "op", "drain", "err", err)
		daemon.WriteError(w, http.StatusInternalServerError, fmt.Errorf("not changed, because it could not be saved: %w", err))
		return
	}
	s.mu.Lock()
	s.drained = next
	s.mu.Unlock()
	s.drainMu.Unlock()
	s.rebuild()
	verb := "drained"
	if !drain {
		verb = "undrained"
	}
	s.log.Info("target "+verb, "op", "drain", "service", service, "ip", addr, "by", by, "reason", reason)
	for _, t := range s.targetStatuses() {
		if t.Service == service && t.Address == addr.String() {
			daemon.WriteJSON(w, http.StatusOK, t)
			return
		}
	}
	daemon.WriteJSON(w, http.StatusOK, map[string]string{"result": verb})
}

// caller names who made an admin request: the "by" it gave, if any,
// and the address it came from.
func caller(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	by := strings.TrimSpace(r.URL.Query().Get("by"))
	if len(by) > 100 {
		by = by[:100]
	}
	if by == "" {
		return host
	}
	return by + " (" + host + ")"
}

func (s *Server) hasTarget(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Contains(ids(targets(s.cfg)), id)
}
