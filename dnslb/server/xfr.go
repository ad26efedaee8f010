package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/ringfront/ringfront/dnslb/authority"
	"github.com/ringfront/ringfront/dnslb/config"
)

// journalDepth is how many past versions of a zone are kept for IXFR.
// Secondaries notified on every change are rarely more than a version
// or two behind; older ones get a full AXFR.
const journalDepth = 64

// zoneVersions tracks one zone's serial and recent contents.
type zoneVersions struct {
	serial  uint32
	hash    string
	journal []zoneVersion // oldest first, the newest is the current one
}

type zoneVersion struct {
	serial uint32
	rrs    map[string]dns.RR // by presentation form
}

func contentOf(rrs []dns.RR) (hash string, byText map[string]dns.RR) {
	h := sha256.New()
	byText = make(map[string]dns.RR, len(rrs))
	for _, rr := range rrs {
		t := rr.String()
		byText[t] = rr
		h.Write([]byte(t))
		h.Write([]byte{'\n'})
	}
	return hex.EncodeToString(h.Sum(nil)), byText
}

// nextSerial is the serial after prev: the clock's seconds if that is
// ahead, else prev+1, and never below what the config sets.
func nextSerial(prev, configured uint32, now time.Time) uint32 {
	next := prev + 1
	if t := uint32(now.Unix()); int32(t-next) > 0 {
		next = t
	}
	if configured != 0 && int32(configured-next) > 0 {
		next = configured
	}
	return next
}

// versionZones records the zones' contents under snap and moves the
// serial of every zone whose contents changed (or of every zone, if
// bump). It reports whether any serial moved, so the caller rebuilds
// with the new serials and notifies the secondaries. Called with
// rebuildMu held.
func (s *Server) versionZones(cfg *config.Config, snap *authority.Snapshot, bump bool) (changed []string) {
	now := time.Now()
	for _, zc := range cfg.Zones {
		_, rrs, ok := snap.ZoneRecords(zc.Origin)
		if !ok {
			continue
		}
		hash, byText := contentOf(rrs)
		zv := s.versions[zc.Origin]
		switch {
		case zv == nil:
			serial := zc.SOA.Serial
			if serial == 0 {
				serial = uint32(now.Unix())
			}
			zv = &zoneVersions{serial: serial}
			s.versions[zc.Origin] = zv
		case zv.hash == hash && !bump:
			continue
		default:
			zv.serial = nextSerial(zv.serial, zc.SOA.Serial, now)
			changed = append(changed, zc.Origin)
		}
		zv.hash = hash
		zv.journal = append(zv.journal, zoneVersion{serial: zv.serial, rrs: byText})
		if len(zv.journal) > journalDepth {
			zv.journal = zv.journal[len(zv.journal)-journalDepth:]
		}
		s.serials[zc.Origin] = zv.serial
	}
	// Zones gone from the config are forgotten.
	for origin := range s.versions {
		if !hasZone(cfg, origin) {
			delete(s.versions, origin)
			delete(s.serials, origin)
		}
	}
	return changed
}

func hasZone(cfg *config.Config, origin string) bool {
	for _, z := range cfg.Zones {
		if z.Origin == origin {
			return true
		}
	}
	return false
}

// secondaryFor returns the zone's secondary at ip, if any.
func secondaryFor(z *config.Zone, ip netip.Addr) (config.Secondary, bool) {
	for _, sec := range z.Secondaries {
		if sec.AddrPort.Addr() == ip {
			return sec, true
		}
	}
	return config.Secondary{}, false
}

func zoneOf(cfg *config.Config, name string) *config.Zone {
	name = strings.ToLower(name)
	for i := range cfg.Zones {
		if cfg.Zones[i].Origin == name {
			return &cfg.Zones[i]
		}
	}
	return nil
}

// xfrAllowed says whether the query from w may transfer zone z: it must
// come from a listed secondary and, if that secondary has a key, be
// signed with it.
func xfrAllowed(z *config.Zone, w dns.ResponseWriter, req *dns.Msg) bool {
	ap, err := netip.ParseAddrPort(w.RemoteAddr().String())
	if err != nil {
		return false
	}
	sec, ok := secondaryFor(z, ap.Addr().Unmap())
	if !ok {
		return false
	}
	if sec.TSIGKey == "" {
		return true
	}
	ts := req.IsTsig()
	return ts != nil && w.TsigStatus() == nil && strings.EqualFold(ts.Hdr.Name, sec.TSIGKey)
}

// transfer answers AXFR and IXFR over TCP.
func (s *Server) transfer(w dns.ResponseWriter, req *dns.Msg) {
	q := req.Question[0]
	s.mu.Lock()
	cfg := s.cfg
	s.mu.Unlock()
	z := zoneOf(cfg, q.Name)
	kind := dns.TypeToString[q.Qtype]
	if z == nil || !xfrAllowed(z, w, req) {
		// Names that are no zone of ours are counted together: a label
		// per name asked for would let anyone grow the metrics.
		zone := "unknown"
		if z != nil {
			zone = z.Origin
		}
		s.metrics.transfers.WithLabelValues(zone, kind, "refused").Inc()
		m := new(dns.Msg)
		m.SetRcode(req, dns.RcodeRefused)
		w.WriteMsg(m)
		return
	}
	s.rebuildMu.Lock()
	snap := s.snap.Load()
	soa, rrs, _ := snap.ZoneRecords(z.Origin)
	var diff []dns.RR
	full := true
	if q.Qtype == dns.TypeIXFR {
		if from, ok := ixfrSerial(req); ok {
			if from == soa.Serial {
				diff, full = []dns.RR{soa}, false // up to date
			} else if d, ok := s.ixfrDiff(z.Origin, from, soa); ok {
				diff, full = d, false
				kind = "IXFR"
			}
		}
		if full {
			kind = "AXFR-for-IXFR"
		}
	}
	s.rebuildMu.Unlock()
	out := diff
	if full {
		out = make([]dns.RR, 0, len(rrs)+2)
		out = append(out, soa)
		out = append(out, rrs...)
		out = append(out, soa)
	}
	ch := make(chan *dns.Envelope)
	tr := new(dns.Transfer)
	errc := make(chan error, 1)
	go func() { errc <- tr.Out(w, req, ch) }()
	// Envelopes of a few hundred records stay well under 64 KiB.
	const perEnvelope = 200
	for i := 0; i < len(out); i += perEnvelope {
		ch <- &dns.Envelope{RR: out[i:min(i+perEnvelope, len(out))]}
	}
	close(ch)
	result := "ok"
	if err := <-errc; err != nil {
		result = "error"
		s.log.Warn("zone transfer failed", "op", "xfr", "zone", z.Origin, "peer", w.RemoteAddr().String(), "err", err)
	} else {
		s.transferred(z, w.RemoteAddr(), soa.Serial)
	}
	s.metrics.transfers.WithLabelValues(z.Origin, kind, result).Inc()
	s.log.Debug("zone transferred", "op", "xfr", "zone", z.Origin, "type", kind, "serial", soa.Serial, "records", len(out), "peer", w.RemoteAddr().String())
}

// transferred records that the secondary at peer has the zone at serial,
// for dnslb_secondary_serial.
func (s *Server) transferred(z *config.Zone, peer net.Addr, serial uint32) {
	ap, err := netip.ParseAddrPort(peer.String())
	if err != nil {
		return
	}
	s.xfrMu.Lock()
	defer s.xfrMu.Unlock()
	for _, sec := range z.Secondaries {
		if sec.AddrPort.Addr() == ap.Addr().Unmap() {
			s.xfrSerials[z.Origin+"|"+sec.AddrPort.String()] = serial
		}
	}
}

func ixfrSerial(req *dns.Msg) (uint32, bool) {
	for _, rr := range req.Ns {
		if soa, ok := rr.(*dns.SOA); ok {
			return soa.Serial, true
		}
	}
	return 0, false
}

// ixfrDiff is the condensed IXFR answer from serial from to the current
// version (RFC 1995 4): new SOA, old SOA, deletions, new SOA, additions,
// new SOA. ok is false when from is not in the journal. Called with
// rebuildMu held.
func (s *Server) ixfrDiff(origin string, from uint32, cur *dns.SOA) ([]dns.RR, bool) {
	zv := s.versions[origin]
	if zv == nil || len(zv.journal) == 0 {
		return nil, false
	}
	var old *zoneVersion
	for i := range zv.journal {
		if zv.journal[i].serial == from {
			old = &zv.journal[i]
		}
	}
	if old == nil {
		return nil, false
	}
	now := zv.journal[len(zv.journal)-1]
	oldSOA := *cur
	oldSOA.Serial = from
	out := []dns.RR{cur, &oldSOA}
	for t, rr := range old.rrs {
		if _, kept := now.rrs[t]; !kept {
			out = append(out, rr)
		}
	}
	out = append(out, cur)
	for t, rr := range now.rrs {
		if _, had := old.rrs[t]; !had {
			out = append(out, rr)
		}
	}
	return append(out, cur), true
}

// secondaryNotifier sends NOTIFY to one secondary, always for the latest
// serial, retrying until the secondary acknowledges.
type secondaryNotifier struct {
	pending chan uint32 // holds at most the newest serial not yet sent
}

// notifyRetries bounds the attempts per serial; RFC 1996 suggests a
// few retries with growing intervals. The secondary's own refresh timer
// catches up after that.
const notifyRetries = 5

func (s *Server) notifySecondaries(ctx context.Context, origin string, serial uint32) {
	s.mu.Lock()
	cfg := s.cfg
	s.mu.Unlock()
	z := zoneOf(cfg, origin)
	if z == nil {
		return
	}
	for _, sec := range z.Secondaries {
		key := origin + "|" + sec.AddrPort.String() + "|" + sec.TSIGKey
		s.notifyMu.Lock()
		n, ok := s.notifiers[key]
		if !ok {
			n = &secondaryNotifier{pending: make(chan uint32, 1)}
			s.notifiers[key] = n
			go s.runNotifier(ctx, n, origin, sec)
		}
		s.notifyMu.Unlock()
		select { // replace an unsent older serial
		case <-n.pending:
		default:
		}
		n.pending <- serial
	}
}

func (s *Server) runNotifier(ctx context.Context, n *secondaryNotifier, origin string, sec config.Secondary) {
	// Signed with the keys in force when each NOTIFY goes out.
	client := &dns.Client{Net: "udp", Timeout: 2 * time.Second, TsigProvider: &s.tsig}
	for {
		var serial uint32
		select {
		case <-ctx.Done():
			return
		case serial = <-n.pending:
		}
		backoff := 500 * time.Millisecond
		for attempt := 1; attempt <= notifyRetries; attempt++ {
			m := new(dns.Msg)
			m.SetNotify(origin)
			m.Answer = []dns.RR{&dns.SOA{Hdr: dns.RR_Header{Name: origin, Rrtype: dns.TypeSOA, Class: dns.ClassINET}, Serial: serial}}
			if k, ok := s.tsig.lookup(sec.TSIGKey); ok {
				m.SetTsig(k.Name, k.AlgorithmName(), 300, time.Now().Unix())
			}
			r, _, err := client.ExchangeContext(ctx, m, sec.AddrPort.String())
			if err == nil && r.Rcode == dns.RcodeSuccess {
				s.metrics.notifies.WithLabelValues(origin, sec.AddrPort.String(), "ok").Inc()
				break
			}
			if err == nil {
				err = fmt.Errorf("answered %s", dns.RcodeToString[r.Rcode])
			}
			s.metrics.notifies.WithLabelValues(origin, sec.AddrPort.String(), "failed").Inc()
			s.log.Warn("NOTIFY not acknowledged", "op", "notify", "zone", origin, "peer", sec.AddrPort.String(), "serial", serial, "attempt", attempt, "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff *= 2
			if len(n.pending) > 0 {
				break // a newer serial supersedes this one
			}
		}
	}
}
