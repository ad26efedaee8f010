package authority

import (
	"net/netip"
	"slices"
	"sort"
	"strings"
	"sync/atomic"

	"github.com/miekg/dns"

	"github.com/ringfront/ringfront/dnslb/config"
)

// TargetState is what the answers need to know of one target.
type TargetState struct {
	Up      bool // passes its health check
	Drained bool // taken out by an operator, whatever its health
}

// Health reports the state of a service's target.
type Health interface {
	Target(service string, addr netip.Addr) TargetState
}

// Snapshot is every zone's answers under one health view. It is
// immutable once built and safe for concurrent use.
type Snapshot struct {
	zones     []*zone // longest origin first, for suffix matching
	udpSize   int
	fast      map[string]*fastNode // lower-case wire name -> precomputed answers
	fastZones map[string]*fastZone // wire origin -> what missing names need
	opt       []byte               // dnslb's OPT record in wire form
}

type zone struct {
	origin   string
	soa      *dns.SOA
	negTTL   uint32 // min(SOA TTL, SOA minimum), RFC 2308
	ns       []dns.RR
	nodes    map[string]*node // every name with data, and empty non-terminals
	hasCuts  bool             // delegations below the apex exist
	hasWild  bool             // wildcard records exist (RFC 4592)
	services []*service
}

type node struct {
	name     string
	rrsets   map[uint16][]dns.RR
	service  *service
	cut      bool // NS records here, below the apex: a delegation
	hasCNAME bool
}

// service is one service's answer sets under the snapshot's health view.
type service struct {
	cfg    *config.Service
	v4, v6 family
	rr     *atomic.Uint32 // round-robin counter, shared with the snapshots built from this one
}

type family struct {
	addrs    []netip.Addr // answered addresses, in config order
	ttl      uint32
	degraded bool // some target of this family is down (not drained)
	targets  int  // targets of this family that are not drained
	failOpen bool // none is up and all_down: all answers them all
}

// ServiceFamily is what a snapshot answers for one address family of a
// service, for metrics and status.
type ServiceFamily struct {
	Service string // fully qualified
	Family  string // "ipv4" or "ipv6"
	// Targets is how many of the family's targets are not drained.
	Targets int
	// Answered is how many addresses an answer draws from (before
	// max_answers): the healthy ones, or every target when failing open.
	Answered int
	// FailOpen is true while no target of the family is healthy and the
	// service answers all of them anyway (all_down: all).
	FailOpen bool
}

// Serials returns every zone's SOA serial, by origin.
func (s *Snapshot) Serials() map[string]uint32 {
	out := make(map[string]uint32, len(s.zones))
	for _, z := range s.zones {
		out[z.origin] = z.soa.Serial
	}
	return out
}

// Families lists, for every service of every zone, what each address
// family that has targets answers.
func (s *Snapshot) Families() []ServiceFamily {
	var out []ServiceFamily
	for _, z := range s.zones {
		for _, svc := range z.services {
			for _, f := range []struct {
				name string
				f    *family
				in   func(netip.Addr) bool
			}{{"ipv4", &svc.v4, netip.Addr.Is4}, {"ipv6", &svc.v6, netip.Addr.Is6}} {
				if !slices.ContainsFunc(svc.cfg.Addrs, f.in) {
					continue
				}
				out = append(out, ServiceFamily{Service: svc.cfg.Name, Family: f.name, Targets: f.f.targets,
					Answered: len(f.f.addrs), FailOpen: f.f.failOpen})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Service != out[j].Service {
			return out[i].Service < out[j].Service
		}
		return out[i].Family < out[j].Family
	})
	return out
}

// Build makes a snapshot of cfg's zones under health h. cfg must have
// been validated. Round-robin positions carry on from prev, if given,
// so rebuilding does not restart every rotation at the first target.
// serials, if it has an entry for a zone's origin, overrides the SOA
// serial in cfg.
func Build(cfg *config.Config, h Health, prev *Snapshot, serials map[string]uint32) *Snapshot {
	s := &Snapshot{udpSize: cfg.UDPSize}
	for i := range cfg.Zones {
		z := buildZone(&cfg.Zones[i], h)
		if serial, ok := serials[z.origin]; ok {
			z.soa.Serial = serial
		}
		for _, svc := range z.services {
			if p := prev.service(svc.cfg.Name); p != nil {
				// The same counter, not a copy of its value: a query
				// still answering from prev moves this rotation too.
				svc.rr = p.rr
			}
		}
		s.zones = append(s.zones, z)
	}
	sort.SliceStable(s.zones, func(i, j int) bool {
		return dns.CountLabel(s.zones[i].origin) > dns.CountLabel(s.zones[j].origin)
	})
	s.buildFast()
	return s
}

func buildZone(zc *config.Zone, h Health) *zone {
	z := &zone{origin: zc.Origin, nodes: map[string]*node{}}
	serial := zc.SOA.Serial
	z.soa = &dns.SOA{
		Hdr:     dns.RR_Header{Name: zc.Origin, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: zc.TTL},
		Ns:      zc.SOA.MName,
		Mbox:    zc.SOA.RName,
		Serial:  serial,
		Refresh: zc.SOA.Refresh,
		Retry:   zc.SOA.Retry,
		Expire:  zc.SOA.Expire,
		Minttl:  zc.SOA.Minimum,
	}
	z.negTTL = min(zc.TTL, zc.SOA.Minimum)
	z.add(z.soa)
	for _, ns := range zc.NS {
		rr := &dns.NS{Hdr: dns.RR_Header{Name: zc.Origin, Rrtype: dns.TypeNS, Class: dns.ClassINET, Ttl: zc.TTL}, Ns: ns.Name}
		z.ns = append(z.ns, rr)
		z.add(rr)
		if !dns.IsSubDomain(zc.Origin, ns.Name) {
			continue
		}
		for _, a := range ns.Addresses {
			z.add(addrRR(ns.Name, zc.TTL, netip.MustParseAddr(a)))
		}
	}
	for _, line := range zc.Records {
		rr, err := config.ParseRecord(line, zc.Origin, zc.TTL)
		if err != nil {
			continue // validated before
		}
		z.add(rr)
	}
	for _, rr := range zc.FileRecords {
		z.add(dns.Copy(rr)) // add sets TTLs: the config's records stay as they are
	}
	for i := range zc.Services {
		sc := &zc.Services[i]
		svc := &service{cfg: sc, rr: new(atomic.Uint32)}
		svc.v4 = buildFamily(sc, h, netip.Addr.Is4)
		svc.v6 = buildFamily(sc, h, func(a netip.Addr) bool { return a.Is6() })
		// While any target of the service is down, both families get
		// the degraded TTL, so resolvers come back soon for the
		// recovered or replacement answers.
		if svc.v4.degraded || svc.v6.degraded {
			svc.v4.ttl, svc.v6.ttl = sc.DegradedTTL, sc.DegradedTTL
		}
		z.services = append(z.services, svc)
		n := z.node(sc.Name)
		n.service = svc
	}
	for name, n := range z.nodes {
		if name != z.origin && len(n.rrsets[dns.TypeNS]) > 0 {
			n.cut = true
			z.hasCuts = true
		}
		if len(n.rrsets[dns.TypeCNAME]) > 0 {
			n.hasCNAME = true
		}
		if strings.HasPrefix(name, "*.") {
			z.hasWild = true
		}
	}
	return z
}

// buildFamily picks the addresses of one family that are answered:
// healthy and not drained; if none is healthy and the service fails
// open, every address that is not drained.
func buildFamily(sc *config.Service, h Health, in func(netip.Addr) bool) family {
	var f family
	var up, all []netip.Addr
	for _, a := range sc.Addrs {
		if !in(a) {
			continue
		}
		st := h.Target(sc.Name, a)
		if st.Drained {
			continue
		}
		all = append(all, a)
		if st.Up {
			up = append(up, a)
		} else {
			f.degraded = true
		}
	}
	switch {
	case len(up) > 0:
		f.addrs = up
	case sc.AllDown == config.AllDownAll:
		f.addrs = all
		f.failOpen = len(all) > 0
	}
	f.targets = len(all)
	f.ttl = sc.TTL
	return f
}

// node returns the node for name, creating it and the empty
// non-terminals above it.
func (z *zone) node(name string) *node {
	if n, ok := z.nodes[name]; ok {
		return n
	}
	n := &node{name: name, rrsets: map[uint16][]dns.RR{}}
	z.nodes[name] = n
	for parent := name; parent != z.origin; {
		i, end := dns.NextLabel(parent, 0)
		if end {
			break
		}
		parent = parent[i:]
		if _, ok := z.nodes[parent]; ok {
			break
		}
		z.nodes[parent] = &node{name: parent, rrsets: map[uint16][]dns.RR{}}
	}
	return n
}

func (z *zone) add(rr dns.RR) {
	h := rr.Header()
	h.Name = strings.ToLower(h.Name)
	n := z.node(h.Name)
	for _, old := range n.rrsets[h.Rrtype] {
		if dns.IsDuplicate(old, rr) {
			return
		}
	}
	// All records of an RRset share one TTL (RFC 2181 5.2): the lowest.
	set := append(n.rrsets[h.Rrtype], rr)
	ttl := h.Ttl
	for _, o := range set {
		ttl = min(ttl, o.Header().Ttl)
	}
	for _, o := range set {
		o.Header().Ttl = ttl
	}
	n.rrsets[h.Rrtype] = set
}

func addrRR(name string, ttl uint32, a netip.Addr) dns.RR {
	if a.Is4() {
		return &dns.A{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: ttl}, A: a.AsSlice()}
	}
	return &dns.AAAA{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeAAAA, Class: dns.ClassINET, Ttl: ttl}, AAAA: a.AsSlice()}
}

// answer returns the service's records for qtype (A or AAAA), rotated
// by rot and cut to limit.
func (s *service) answer(qtype uint16, rot, limit int) []dns.RR {
	f := &s.v4
	if qtype == dns.TypeAAAA {
		f = &s.v6
	}
	n := len(f.addrs)
	if n == 0 {
		return nil
	}
	k := min(n, limit)
	out := make([]dns.RR, k)
	for i := range k {
		out[i] = addrRR(s.cfg.Name, f.ttl, f.addrs[(rot+i)%n])
	}
	return out
}

// variants is how many distinct rotations a family has.
func (s *service) variants(qtype uint16) int {
	if qtype == dns.TypeAAAA {
		return max(1, len(s.v6.addrs))
	}
	return max(1, len(s.v4.addrs))
}

// service returns the named service, or nil; s may be nil.
func (s *Snapshot) service(name string) *service {
	if s == nil {
		return nil
	}
	for _, z := range s.zones {
		for _, svc := range z.services {
			if svc.cfg.Name == name {
				return svc
			}
		}
	}
	return nil
}

// zoneFor returns the zone that name falls in, or nil.
func (s *Snapshot) zoneFor(name string) *zone {
	for _, z := range s.zones {
		if dns.IsSubDomain(z.origin, name) {
			return z
		}
	}
	return nil
}

// Answered lists the addresses a query for a service's A and AAAA
// records gets right now (before rotation and max_answers); used by the
// admin API and tests.
func (s *Snapshot) Answered(service string) []netip.Addr {
	if svc := s.service(service); svc != nil {
		return slices.Concat(svc.v4.addrs, svc.v6.addrs)
	}
	return nil
}

// ZoneRecords returns a zone's SOA and every other record in it under
// this snapshot's health view: what a secondary transfers. A service's
// RRsets hold every answered address (no max_answers cut), so the
// secondary answers what dnslb would, less the rotation. The records are
// in a canonical order. ok is false if dnslb has no such zone.
func (s *Snapshot) ZoneRecords(origin string) (soa *dns.SOA, rrs []dns.RR, ok bool) {
	var z *zone
	for _, c := range s.zones {
		if c.origin == origin {
			z = c
		}
	}
	if z == nil {
		return nil, nil, false
	}
	for _, n := range z.nodes {
		for t, set := range n.rrsets {
			if t == dns.TypeSOA {
				continue
			}
			rrs = append(rrs, set...)
		}
		if n.service != nil {
			for _, t := range []uint16{dns.TypeA, dns.TypeAAAA} {
				rrs = append(rrs, n.service.answer(t, 0, len(n.service.cfg.Addrs))...)
			}
		}
	}
	sort.Slice(rrs, func(i, j int) bool { return rrs[i].String() < rrs[j].String() })
	soaCopy := *z.soa
	return &soaCopy, rrs, true
}
