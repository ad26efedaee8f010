package server

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"net/netip"

	"github.com/miekg/dns"

	"github.com/ringfront/ringfront/dnslb/cookie"
	"github.com/ringfront/ringfront/dnslb/rrl"
)

// cookieOf finds the COOKIE option in a query's OPT record.
func cookieOf(req *dns.Msg) (data []byte, present bool) {
	opt := req.IsEdns0()
	if opt == nil {
		return nil, false
	}
	for _, o := range opt.Option {
		if c, ok := o.(*dns.EDNS0_COOKIE); ok {
			b, err := hex.DecodeString(c.Cookie)
			if err != nil {
				return []byte{}, true // odd hex: malformed
			}
			return b, true
		}
	}
	return nil, false
}

// cookieAnswer checks a query's COOKIE option data from client and
// returns the option data for the answer (the client cookie with a server
// cookie: the same one while it is fresh, else a new one) and what kind
// of cookie the query had. A malformed option is cookieMalformed.
func (s *Server) cookieAnswer(data []byte, client netip.Addr) (out []byte, kind int) {
	res, err := s.cookies.Check(data, client)
	if errors.Is(err, cookie.ErrMalformed) {
		return nil, cookieMalformed
	}
	switch {
	case res.Valid && res.Fresh:
		return data, cookieValid // echoed unchanged
	case res.Valid:
		return s.cookies.Issue(res.Client, client), cookieValid
	case len(data) > cookie.ClientLen:
		return s.cookies.Issue(res.Client, client), cookieInvalid
	}
	return s.cookies.Issue(res.Client, client), cookieClient
}

// applyCookie checks the query's DNS cookie and puts the server's cookie
// into the answer's OPT record (RFC 7873 5.2). It returns which kind of
// cookie the query had; for a malformed one the answer becomes FORMERR.
func (s *Server) applyCookie(req, resp *dns.Msg, client netip.Addr) int {
	data, present := cookieOf(req)
	if !present {
		return cookieNone
	}
	out, kind := s.cookieAnswer(data, client)
	if kind == cookieMalformed {
		resp.Rcode = dns.RcodeFormatError
		resp.Answer, resp.Ns, resp.Extra = nil, nil, nil
		if o := req.IsEdns0(); o != nil {
			ropt := &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}}
			ropt.SetUDPSize(uint16(s.udpSize()))
			resp.Extra = []dns.RR{ropt}
		}
		return kind
	}
	if ropt := resp.IsEdns0(); ropt != nil {
		ropt.Option = append(ropt.Option, &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: hex.EncodeToString(out)})
	}
	return kind
}

// truncated turns the answer in wire form into an empty TC=1 answer
// with just the question: the "slip" of rate limiting.
func truncated(resp []byte) []byte {
	if len(resp) < 12 {
		return nil
	}
	// The question is the first name after the header, then 4 bytes.
	off := 12
	for off < len(resp) {
		l := int(resp[off])
		if l == 0 {
			off++
			break
		}
		if l&0xC0 != 0 {
			return nil
		}
		off += 1 + l
	}
	off += 4
	if off > len(resp) {
		return nil
	}
	out := resp[:off]
	flags := binary.BigEndian.Uint16(out[2:])
	flags |= 1 << 9 // TC
	flags &^= 0xF   // rcode NOERROR
	binary.BigEndian.PutUint16(out[2:], flags)
	binary.BigEndian.PutUint16(out[6:], 0)
	binary.BigEndian.PutUint16(out[8:], 0)
	binary.BigEndian.PutUint16(out[10:], 0)
	return out
}

// apply carries out a rate-limiting verdict on an answer.
func (s *Server) apply(v rrl.Verdict, resp []byte, st *stats) []byte {
	switch v {
	case rrl.Drop:
		st.drops[dropRateLimited].Add(1)
		return nil
	case rrl.Truncate:
		st.slipped.Add(1)
		return truncated(resp)
	}
	return resp
}
