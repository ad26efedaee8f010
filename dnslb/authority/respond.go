package authority

import (
	"strings"

	"github.com/miekg/dns"
)

// Transport says how a query arrived.
type Transport uint8

// Transports.
const (
	UDP Transport = iota
	TCP
)

// maxCNAMEChain bounds CNAME chasing inside a zone.
const maxCNAMEChain = 8

// Respond builds the answer to req, arrived over tr. It returns nil when
// req must be dropped unanswered (it is itself a response). rot selects
// the round-robin rotation of service answers; pass -1 to advance each
// service's own counter.
func (s *Snapshot) Respond(req *dns.Msg, tr Transport, rot int) *dns.Msg {
	if req.Response {
		return nil
	}
	resp := new(dns.Msg)
	resp.Id = req.Id
	resp.Response = true
	resp.Opcode = req.Opcode
	resp.RecursionDesired = req.RecursionDesired
	resp.CheckingDisabled = req.CheckingDisabled
	resp.Compress = true
	resp.Question = req.Question

	// EDNS (RFC 6891): at most one OPT; answer with OPT only if asked with one.
	var opt *dns.OPT
	nopt := 0
	for _, rr := range req.Extra {
		if o, ok := rr.(*dns.OPT); ok {
			nopt++
			opt = o
		}
	}
	if nopt > 1 || (opt != nil && opt.Hdr.Name != ".") {
		resp.Rcode = dns.RcodeFormatError
		return resp
	}
	limit := dns.MinMsgSize
	var ropt *dns.OPT
	if opt != nil {
		limit = max(dns.MinMsgSize, min(int(opt.UDPSize()), s.udpSize))
		ropt = &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}}
		ropt.SetUDPSize(uint16(s.udpSize))
		ropt.SetDo(opt.Do())
	}
	finish := func(rcode int) *dns.Msg {
		resp.Rcode = rcode
		if ropt != nil {
			resp.Extra = append(resp.Extra, ropt) // Pack sets the extended rcode
		}
		if tr == UDP {
			fit(resp, limit)
		}
		return resp
	}
	if opt != nil && opt.Version() > 0 {
		return finish(dns.RcodeBadVers)
	}
	if req.Opcode != dns.OpcodeQuery {
		return finish(dns.RcodeNotImplemented)
	}
	if len(req.Question) != 1 || len(req.Answer) > 0 || len(req.Ns) > 0 {
		return finish(dns.RcodeFormatError)
	}
	q := req.Question[0]
	if q.Qclass != dns.ClassINET && q.Qclass != dns.ClassANY {
		return finish(dns.RcodeRefused)
	}
	name := strings.ToLower(q.Name)
	z := s.zoneFor(name)
	if z == nil {
		return finish(dns.RcodeRefused) // never recursion
	}
	switch q.Qtype {
	case dns.TypeAXFR, dns.TypeIXFR:
		return finish(dns.RcodeRefused) // zone transfers: to no one here
	case dns.TypeOPT, dns.TypeMAILA, dns.TypeMAILB:
		return finish(dns.RcodeFormatError)
	}
	resp.Authoritative = true
	z.resolve(resp, name, q.Qtype, rot, 0)
	return finish(resp.Rcode)
}

// fit truncates an answer that does not fit the UDP limit: the client
// sees TC=1 and asks again over TCP (RFC 7766). Optional additional
// records go first; if answer and authority still do not fit, they are
// left out as a whole rather than in part (RFC 2181 9).
func fit(resp *dns.Msg, limit int) {
	var opt []dns.RR
	if n := len(resp.Extra); n > 0 && resp.Extra[n-1].Header().Rrtype == dns.TypeOPT {
		opt = resp.Extra[n-1:]
	}
	withOpt := func() int {
		return resp.Len() + optLen(opt)
	}
	if withOpt() <= limit {
		return
	}
	resp.Extra = nil
	if withOpt() <= limit {
		return
	}
	resp.Answer, resp.Ns = nil, nil
	resp.Truncated = true
}

func optLen(opt []dns.RR) int {
	if len(opt) == 0 {
		return 0
	}
	return dns.Len(opt[0])
}

// resolve fills resp for name and qtype inside z, following CNAMEs
// within the zone.
func (z *zone) resolve(resp *dns.Msg, name string, qtype uint16, rot, depth int) {
	// A delegation on the way down: refer (RFC 1034 4.3.2 step 3b),
	// except for DS at the cut itself, which the parent answers.
	if z.hasCuts {
		for cut := name; cut != z.origin; {
			if n, ok := z.nodes[cut]; ok && n.cut && !(cut == name && qtype == dns.TypeDS) {
				if depth == 0 {
					resp.Authoritative = false
				}
				resp.Ns = append(resp.Ns, n.rrsets[dns.TypeNS]...)
				z.glue(resp, n.rrsets[dns.TypeNS])
				return
			}
			i, end := dns.NextLabel(cut, 0)
			if end {
				break
			}
			cut = cut[i:]
		}
	}
	n, ok := z.nodes[name]
	if !ok && z.hasWild {
		n, ok = z.wildcard(name)
	}
	if !ok {
		resp.Rcode = dns.RcodeNameError
		resp.Ns = append(resp.Ns, z.negSOA())
		return
	}
	if qtype == dns.TypeANY {
		if len(n.rrsets) == 0 && n.service == nil {
			resp.Ns = append(resp.Ns, z.negSOA())
			return
		}
		// RFC 8482: one synthesized HINFO instead of everything.
		resp.Answer = append(resp.Answer, &dns.HINFO{
			Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeHINFO, Class: dns.ClassINET, Ttl: z.negTTL},
			Cpu: "RFC8482",
		})
		return
	}
	if n.hasCNAME && qtype != dns.TypeCNAME {
		cn := n.owned(name, dns.TypeCNAME)
		resp.Answer = append(resp.Answer, cn...)
		target := strings.ToLower(cn[0].(*dns.CNAME).Target)
		if depth < maxCNAMEChain && dns.IsSubDomain(z.origin, target) {
			z.resolve(resp, target, qtype, rot, depth+1)
			if resp.Rcode == dns.RcodeSuccess && len(resp.Answer) > len(cn) {
				return
			}
			// The chain's end has no data of that type: the negative
			// answer's SOA is already in authority.
		}
		return
	}
	var ans []dns.RR
	if n.service != nil && (qtype == dns.TypeA || qtype == dns.TypeAAAA) {
		r := rot
		if r < 0 {
			r = int(n.service.rr.Add(1) - 1)
		}
		ans = n.service.answer(qtype, r, n.service.cfg.MaxAnswers)
	} else {
		ans = n.owned(name, qtype)
	}
	if len(ans) == 0 {
		resp.Ns = append(resp.Ns, z.negSOA()) // NODATA (RFC 2308 2.2)
		return
	}
	resp.Answer = append(resp.Answer, ans...)
	switch qtype {
	case dns.TypeNS:
		z.glue(resp, ans)
	case dns.TypeMX, dns.TypeSRV:
		z.glue(resp, ans)
	case dns.TypeSOA:
		z.glue(resp, []dns.RR{z.soa})
	}
}

// wildcard finds the wildcard node that synthesizes name, a name with no
// node of its own (RFC 4592 3.3.1): "*." and the closest encloser, the
// longest existing ancestor of name (empty non-terminals included).
func (z *zone) wildcard(name string) (*node, bool) {
	for ce := name; ce != z.origin; {
		i, end := dns.NextLabel(ce, 0)
		if end {
			return nil, false
		}
		ce = ce[i:]
		if _, ok := z.nodes[ce]; ok || ce == z.origin {
			n, ok := z.nodes["*."+ce]
			return n, ok
		}
	}
	return nil, false
}

// owned returns the node's records of qtype as records of name: the
// node's own, or copies renamed when the node is a wildcard answering
// for name.
func (n *node) owned(name string, qtype uint16) []dns.RR {
	set := n.rrsets[qtype]
	if name == n.name || len(set) == 0 {
		return set
	}
	out := make([]dns.RR, len(set))
	for i, rr := range set {
		out[i] = dns.Copy(rr)
		out[i].Header().Name = name
	}
	return out
}

// negSOA is the SOA for a negative answer, its TTL the negative-caching
// TTL (RFC 2308 3).
func (z *zone) negSOA() dns.RR {
	soa := *z.soa
	soa.Hdr.Ttl = z.negTTL
	return &soa
}

// glue adds in-zone addresses of the names that rrs point to (NS, MX,
// SRV targets) to the additional section.
func (z *zone) glue(resp *dns.Msg, rrs []dns.RR) {
	for _, rr := range rrs {
		var target string
		switch r := rr.(type) {
		case *dns.NS:
			target = r.Ns
		case *dns.MX:
			target = r.Mx
		case *dns.SRV:
			target = r.Target
		case *dns.SOA:
			target = r.Ns
		default:
			continue
		}
		target = strings.ToLower(target)
		n, ok := z.nodes[target]
		if !ok {
			continue
		}
		for _, t := range []uint16{dns.TypeA, dns.TypeAAAA} {
			if n.service != nil {
				resp.Extra = append(resp.Extra, n.service.answer(t, 0, n.service.cfg.MaxAnswers)...)
				continue
			}
			resp.Extra = append(resp.Extra, n.rrsets[t]...)
		}
	}
}
