package authority

import (
	"encoding/binary"
	"sync/atomic"

	"github.com/miekg/dns"
)

// The fast path answers from wire bytes precomputed by Respond. A
// precomputed answer was built for the question in lower case with ID 0,
// RD and CD clear and DO clear; at query time it is copied and patched.
// Everything else — EDNS options, truncation, zone cuts, CNAMEs, odd
// opcodes or classes, malformed packets — goes to Respond.

// fastNode holds the precomputed answers for one name.
type fastNode struct {
	slow  bool // CNAME or delegation: always use Respond
	cut   bool // a delegation point: names below it get referrals
	types []fastAnswer
	other fastAnswer // NODATA for any type not in types
}

// fastAnswer is the answer to one qtype: one wire message per
// round-robin rotation, without and with an OPT record.
type fastAnswer struct {
	qtype uint16
	rcode uint8
	plain [][]byte
	edns  [][]byte
	rr    *atomic.Uint32 // rotation counter; nil for one variant
}

// fastZone holds what a query for a missing name in the zone needs.
type fastZone struct {
	originLen int    // wire length of the origin name
	hasCuts   bool   // missing names may be under a delegation
	hasWild   bool   // missing names may be answered by a wildcard
	nxTail    []byte // SOA RR after its owner name (type .. rdata)
}

// optRR is the OPT record dnslb sends: root owner, its UDP size, no
// options. Bytes 3-4 hold the size; the DO bit is byte 7's top bit.
func optRR(udpSize int) []byte {
	b := []byte{0, 0, 41, 0, 0, 0, 0, 0, 0, 0, 0}
	binary.BigEndian.PutUint16(b[3:], uint16(udpSize))
	return b
}

func (s *Snapshot) buildFast() {
	s.fast = map[string]*fastNode{}
	s.fastZones = map[string]*fastZone{}
	s.opt = optRR(s.udpSize)
	for _, z := range s.zones {
		ow := wireName(z.origin)
		fz := &fastZone{originLen: len(ow), hasCuts: z.hasCuts, hasWild: z.hasWild}
		soa := z.negSOA()
		buf := make([]byte, dns.Len(soa)+64)
		n, err := dns.PackRR(soa, buf, 0, nil, false)
		if err == nil {
			fz.nxTail = buf[len(ow):n]
		}
		s.fastZones[string(ow)] = fz
		for name, n := range z.nodes {
			if _, dup := s.fast[string(wireName(name))]; dup {
				continue // a deeper zone's node (zones are longest first)
			}
			s.fast[string(wireName(name))] = s.buildFastNode(z, n)
		}
	}
}

func (s *Snapshot) buildFastNode(z *zone, n *node) *fastNode {
	fn := &fastNode{cut: n.cut}
	if n.cut || n.hasCNAME || z.hasCuts && s.underCut(z, n.name) {
		fn.slow = true
		return fn
	}
	types := map[uint16]bool{dns.TypeANY: true}
	for t := range n.rrsets {
		types[t] = true
	}
	if n.service != nil {
		types[dns.TypeA] = true
		types[dns.TypeAAAA] = true
	}
	for t := range types {
		fn.types = append(fn.types, s.buildFastAnswer(n, t))
	}
	// Any other type gets this node's NODATA; 65534 is a private-use
	// type no node holds.
	fn.other = s.buildFastAnswer(n, 65534)
	return fn
}

func (s *Snapshot) underCut(z *zone, name string) bool {
	for cut := name; cut != z.origin; {
		if n, ok := z.nodes[cut]; ok && n.cut {
			return true
		}
		i, end := dns.NextLabel(cut, 0)
		if end {
			return false
		}
		cut = cut[i:]
	}
	return false
}

func (s *Snapshot) buildFastAnswer(n *node, qtype uint16) fastAnswer {
	fa := fastAnswer{qtype: qtype}
	variants := 1
	if n.service != nil && (qtype == dns.TypeA || qtype == dns.TypeAAAA) {
		variants = n.service.variants(qtype)
		if variants > 1 {
			fa.rr = n.service.rr
		}
	}
	for rot := range variants {
		for _, edns := range []bool{false, true} {
			req := new(dns.Msg)
			req.Question = []dns.Question{{Name: n.name, Qtype: qtype, Qclass: dns.ClassINET}}
			if edns {
				req.SetEdns0(uint16(s.udpSize), false)
			}
			resp := s.Respond(req, TCP, rot)
			wire, err := resp.Pack()
			if err != nil {
				panic("authority: packing a precomputed answer: " + err.Error())
			}
			fa.rcode = uint8(resp.Rcode)
			if edns {
				fa.edns = append(fa.edns, wire)
			} else {
				fa.plain = append(fa.plain, wire)
			}
		}
	}
	return fa
}

func wireName(name string) []byte {
	b := make([]byte, 256)
	n, err := dns.PackDomainName(name, b, 0, nil, false)
	if err != nil {
		panic("authority: packing name " + name + ": " + err.Error())
	}
	return b[:n]
}

// Query is what the fast path learned of a query, for metrics.
type Query struct {
	Qtype uint16
	Rcode uint8
	// Cookie is the data of the query's DNS COOKIE option (RFC 7873),
	// nil when it had none. The answer then has room left for the
	// server's cookie: the caller adds it with AppendCookie.
	Cookie []byte
}

// cookieRoom is what AppendCookie adds: an option header and a client
// cookie with dnslb's 16-byte server cookie.
const cookieRoom = 4 + 8 + 16

// AppendCookie adds a COOKIE option with data to the OPT record that
// ends a wire answer from Fast.
func AppendCookie(resp, data []byte) []byte {
	n := len(resp)
	rdlen := int(binary.BigEndian.Uint16(resp[n-2:]))
	resp = append(resp, 0, 10, byte(len(data)>>8), byte(len(data)))
	resp = append(resp, data...)
	binary.BigEndian.PutUint16(resp[n-2:], uint16(rdlen+4+len(data)))
	return resp
}

// Header flag bits, in the 16-bit flags word.
const (
	flagQR = 1 << 15
	flagAA = 1 << 10
	flagTC = 1 << 9
	flagRD = 1 << 8
	flagCD = 1 << 4
)

// Fast answers a UDP query from precomputed wire bytes, appending the
// answer to out[:0]. ok is false when the query needs Respond: the
// caller then unpacks it and calls Respond. Fast does not allocate.
func (s *Snapshot) Fast(q, out []byte) (resp []byte, info Query, ok bool) {
	if len(q) < 17 {
		return nil, info, false
	}
	flags := binary.BigEndian.Uint16(q[2:])
	if flags&(flagQR|0x7800) != 0 { // a response, or an opcode other than QUERY
		return nil, info, false
	}
	if binary.BigEndian.Uint16(q[4:]) != 1 || binary.BigEndian.Uint16(q[6:]) != 0 || binary.BigEndian.Uint16(q[8:]) != 0 {
		return nil, info, false
	}
	arcount := binary.BigEndian.Uint16(q[10:])
	if arcount > 1 {
		return nil, info, false
	}
	// The question name, lower-cased into lower.
	var lower [255]byte
	off := 12
	labels := [128]uint8{} // offsets of label starts, relative to 12
	nl := 0
	for {
		if off >= len(q) {
			return nil, info, false
		}
		l := int(q[off])
		if l&0xC0 != 0 || off-12+l+1 > 255 { // compression or over-long
			return nil, info, false
		}
		labels[nl] = uint8(off - 12)
		nl++
		lower[off-12] = q[off]
		if l == 0 {
			off++
			break
		}
		if off+1+l > len(q) {
			return nil, info, false
		}
		for i := off + 1; i <= off+l; i++ {
			c := q[i]
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			lower[i-12] = c
		}
		off += 1 + l
	}
	nameLen := off - 12
	if off+4 > len(q) {
		return nil, info, false
	}
	qtype := binary.BigEndian.Uint16(q[off:])
	qclass := binary.BigEndian.Uint16(q[off+2:])
	info.Qtype = qtype
	off += 4
	if qclass != dns.ClassINET {
		return nil, info, false
	}
	switch qtype {
	case dns.TypeAXFR, dns.TypeIXFR, dns.TypeOPT, dns.TypeMAILA, dns.TypeMAILB:
		return nil, info, false
	}
	limit := dns.MinMsgSize
	edns, do := false, false
	if arcount == 1 {
		// Only an OPT: root owner, version 0, and no option or just a
		// well-formed COOKIE.
		if len(q)-off < 11 || q[off] != 0 || binary.BigEndian.Uint16(q[off+1:]) != dns.TypeOPT ||
			q[off+5] != 0 || q[off+6] != 0 || int(binary.BigEndian.Uint16(q[off+9:])) != len(q)-off-11 {
			return nil, info, false
		}
		if opts := q[off+11:]; len(opts) > 0 {
			if len(opts) < 4 || binary.BigEndian.Uint16(opts) != dns.EDNS0COOKIE ||
				int(binary.BigEndian.Uint16(opts[2:])) != len(opts)-4 {
				return nil, info, false
			}
			c := opts[4:]
			if len(c) != 8 && (len(c) < 16 || len(c) > 40) {
				return nil, info, false // malformed: Respond's caller answers FORMERR
			}
			info.Cookie = c
		}
		edns = true
		do = q[off+7]&0x80 != 0
		limit = max(dns.MinMsgSize, min(int(binary.BigEndian.Uint16(q[off+3:])), s.udpSize))
	} else if off != len(q) {
		return nil, info, false
	}

	name := lower[:nameLen]
	fn := s.fast[string(name)]
	if fn == nil {
		return s.fastMissing(q, out, name, labels[:nl], edns, do, info)
	}
	if fn.slow {
		return nil, info, false
	}
	fa := &fn.other
	for i := range fn.types {
		if fn.types[i].qtype == qtype {
			fa = &fn.types[i]
			break
		}
	}
	variants := fa.plain
	if edns {
		variants = fa.edns
	}
	wire := variants[0]
	if fa.rr != nil {
		wire = variants[int(fa.rr.Add(1)-1)%len(variants)]
	}
	room := 0
	if info.Cookie != nil {
		room = cookieRoom
	}
	if len(wire)+room > limit {
		return nil, info, false // needs truncation
	}
	out = append(out[:0], wire...)
	patchHeader(out, q, flags)
	copy(out[12:], q[12:12+nameLen+4]) // the question as asked: case and type
	if do {
		out[len(out)-4] |= 0x80
	}
	info.Rcode = fa.rcode
	return out, info, true
}

// patchHeader sets the answer's ID and copies RD and CD from the query.
func patchHeader(out, q []byte, qflags uint16) {
	out[0], out[1] = q[0], q[1]
	f := binary.BigEndian.Uint16(out[2:])&^(flagRD|flagCD) | qflags&(flagRD|flagCD)
	binary.BigEndian.PutUint16(out[2:], f)
}

// fastMissing answers a name with no node: NXDOMAIN with the zone's SOA
// if it is in a zone without delegations, REFUSED if it is in no zone.
func (s *Snapshot) fastMissing(q, out, name []byte, labels []uint8, edns, do bool, info Query) ([]byte, Query, bool) {
	var fz *fastZone
	for i, l := range labels {
		if z := s.fastZones[string(name[l:])]; z != nil {
			fz = z
			if z.hasWild {
				return nil, info, false // Respond synthesizes from wildcards
			}
			if z.hasCuts {
				// Under a delegation point the answer is a referral.
				for _, a := range labels[1:i] {
					if n := s.fast[string(name[a:])]; n != nil && n.cut {
						return nil, info, false
					}
				}
			}
			break
		}
	}
	qlen := len(name) + 4
	out = append(out[:0], q[:12+qlen]...)
	var rcode uint16 = dns.RcodeRefused
	var flags uint16 = flagQR
	nscount := 0
	if fz != nil {
		rcode = dns.RcodeNameError
		flags |= flagAA
		nscount = 1
		// The SOA's owner is the zone origin: a pointer to where the
		// origin starts inside the question name.
		ptr := 12 + len(name) - fz.originLen
		out = append(out, byte(0xC0|ptr>>8), byte(ptr))
		out = append(out, fz.nxTail...)
	}
	qflags := binary.BigEndian.Uint16(q[2:])
	binary.BigEndian.PutUint16(out[2:], flags|rcode|qflags&(flagRD|flagCD))
	binary.BigEndian.PutUint16(out[4:], 1)
	binary.BigEndian.PutUint16(out[6:], 0)
	binary.BigEndian.PutUint16(out[8:], uint16(nscount))
	binary.BigEndian.PutUint16(out[10:], 0)
	if edns {
		binary.BigEndian.PutUint16(out[10:], 1)
		out = append(out, s.opt...)
		if do {
			out[len(out)-4] |= 0x80
		}
	}
	info.Rcode = uint8(rcode)
	return out, info, true
}
