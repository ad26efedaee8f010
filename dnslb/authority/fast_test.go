package authority

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// randomCase mixes the case of name, as resolvers using 0x20 do.
func randomCase(r *rand.Rand, name string) string {
	b := []byte(name)
	for i, c := range b {
		if 'a' <= c && c <= 'z' && r.IntN(2) == 0 {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}

// compareFast checks that whenever Fast answers q, the answer says the
// same as Respond's.
func compareFast(t *testing.T, snap *Snapshot, wire []byte) (answered bool) {
	t.Helper()
	fast, info, ok := snap.Fast(wire, make([]byte, 0, 4096))
	if !ok {
		return false
	}
	req := new(dns.Msg)
	if err := req.Unpack(wire); err != nil {
		t.Fatalf("Fast answered a query that does not unpack: %x", wire)
	}
	got := new(dns.Msg)
	if err := got.Unpack(fast); err != nil {
		t.Fatalf("Fast's answer does not unpack: %v\n%x", err, fast)
	}
	// Find the rotation Respond must use to give the same first record.
	var want *dns.Msg
	for rot := range 64 {
		want = snap.Respond(req, UDP, rot)
		if strings.EqualFold(summary(want), summary(got)) {
			break
		}
	}
	// Names compressed against the question take its case; DNS names
	// compare without case.
	if !strings.EqualFold(summary(want), summary(got)) {
		t.Errorf("query %v:\nfast:    %s\nrespond: %s", req.Question, summary(got), summary(want))
	}
	if got.Id != req.Id || got.RecursionDesired != req.RecursionDesired || got.CheckingDisabled != req.CheckingDisabled ||
		got.Opcode != req.Opcode || !got.Response {
		t.Errorf("header not patched: query %+v, answer %+v", req.MsgHdr, got.MsgHdr)
	}
	if len(got.Question) != 1 || got.Question[0] != req.Question[0] {
		t.Errorf("question %v, want %v (case preserved)", got.Question, req.Question)
	}
	if int(info.Rcode) != got.Rcode || info.Qtype != req.Question[0].Qtype {
		t.Errorf("info = %+v, answer rcode %d", info, got.Rcode)
	}
	return true
}

func TestFastMatchesRespond(t *testing.T) {
	cfg := loadConfig(t)
	snaps := map[string]*Snapshot{
		"up":   Build(cfg, allUp(), nil, nil),
		"down": Build(cfg, fakeHealth{down: set("www.example.org./198.51.100.10", "strict.example.org./198.51.100.40")}, nil, nil),
	}
	names := []string{"www.example.org.", "example.org.", "mail.example.org.", "strict.example.org.", "b.c.example.org.",
		"a.b.c.example.org.", "nope.example.org.", "x.mail.example.org.", "example.net.", "org.", ".",
		"alias.example.org.", "host.sub.example.org.", "many.example.org.", "big.example.org.", "ns2.example.org."}
	types := []uint16{dns.TypeA, dns.TypeAAAA, dns.TypeMX, dns.TypeNS, dns.TypeSOA, dns.TypeTXT, dns.TypeANY,
		dns.TypeCNAME, dns.TypeDS, dns.TypeSRV, 65000, dns.TypeAXFR}
	r := rand.New(rand.NewPCG(1, 2))
	fastCount, total := 0, 0
	for sname, snap := range snaps {
		for _, name := range names {
			for _, qt := range types {
				for _, e := range []int{0, 512, 1232, 4096} {
					for _, do := range []bool{false, true} {
						if e == 0 && do {
							continue
						}
						m := new(dns.Msg)
						m.SetQuestion(randomCase(r, name), qt)
						m.Id = uint16(r.Uint32())
						m.RecursionDesired = r.IntN(2) == 0
						m.CheckingDisabled = r.IntN(2) == 0
						if e > 0 {
							m.SetEdns0(uint16(e), do)
						}
						wire, err := m.Pack()
						if err != nil {
							t.Fatal(err)
						}
						t.Run(sname, func(t *testing.T) {
							total++
							if compareFast(t, snap, wire) {
								fastCount++
							}
						})
					}
				}
			}
		}
	}
	// The point of the fast path is to answer most queries itself.
	if fastCount < total/2 {
		t.Errorf("fast path answered %d of %d queries", fastCount, total)
	}
}

func TestFastRefusesOddQueries(t *testing.T) {
	snap := Build(loadConfig(t), allUp(), nil, nil)
	base := func() *dns.Msg { return query("www.example.org.", dns.TypeA) }
	pack := func(m *dns.Msg) []byte { b, _ := m.Pack(); return b }
	tests := map[string][]byte{
		"response":      pack(func() *dns.Msg { m := base(); m.Response = true; return m }()),
		"notify opcode": pack(func() *dns.Msg { m := base(); m.Opcode = dns.OpcodeNotify; return m }()),
		"truncated":     pack(base())[:20],
		"trailing junk": append(pack(base()), 1, 2, 3),
		"edns option": pack(func() *dns.Msg {
			m := edns(base(), 1232, false)
			m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_PADDING{Padding: make([]byte, 8)})
			return m
		}()),
		"malformed cookie": pack(func() *dns.Msg {
			m := edns(base(), 1232, false)
			m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0102"})
			return m
		}()),
		"edns version": pack(func() *dns.Msg { m := edns(base(), 1232, false); m.IsEdns0().SetVersion(1); return m }()),
		"chaos class":  pack(func() *dns.Msg { m := base(); m.Question[0].Qclass = dns.ClassCHAOS; return m }()),
		"big answer":   pack(query("many.example.org.", dns.TypeA)),
		"cname":        pack(query("alias.example.org.", dns.TypeA)),
		"referral":     pack(query("x.sub.example.org.", dns.TypeA)),
	}
	for name, wire := range tests {
		t.Run(name, func(t *testing.T) {
			if _, _, ok := snap.Fast(wire, nil); ok {
				t.Errorf("Fast answered %s", name)
			}
		})
	}
}

func TestFastCookie(t *testing.T) {
	snap := Build(loadConfig(t), allUp(), nil, nil)
	m := edns(query("mail.example.org.", dns.TypeA), 1232, false)
	m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0102030405060708"})
	w, _ := m.Pack()
	resp, info, ok := snap.Fast(w, make([]byte, 0, 1232))
	if !ok || string(info.Cookie) != "\x01\x02\x03\x04\x05\x06\x07\x08" {
		t.Fatalf("Fast with a client cookie: ok=%v cookie=%x", ok, info.Cookie)
	}
	data := make([]byte, 24)
	copy(data, info.Cookie)
	data[8] = 1
	resp = AppendCookie(resp, data)
	got := new(dns.Msg)
	if err := got.Unpack(resp); err != nil {
		t.Fatalf("answer with cookie does not unpack: %v", err)
	}
	opt := got.IsEdns0()
	if opt == nil || len(opt.Option) != 1 || opt.Option[0].(*dns.EDNS0_COOKIE).Cookie != "010203040506070801"+strings.Repeat("00", 15) {
		t.Errorf("cookie option = %v", opt)
	}
	if len(got.Answer) != 1 {
		t.Errorf("answer = %v", got.Answer)
	}
}

func TestFastDoesNotAllocate(t *testing.T) {
	snap := Build(loadConfig(t), allUp(), nil, nil)
	var wires [][]byte
	for _, m := range []*dns.Msg{query("WWW.example.org.", dns.TypeA), query("nope.example.org.", dns.TypeA),
		edns(query("www.example.org.", dns.TypeAAAA), 1232, true), query("example.com.", dns.TypeA)} {
		w, _ := m.Pack()
		wires = append(wires, w)
	}
	out := make([]byte, 0, 4096)
	allocs := testing.AllocsPerRun(1000, func() {
		for _, w := range wires {
			if _, _, ok := snap.Fast(w, out); !ok {
				t.Fatal("not answered")
			}
		}
	})
	if allocs != 0 {
		t.Errorf("Fast allocates %v times per 4 queries", allocs)
	}
}

func BenchmarkFast(b *testing.B) {
	snap := Build(loadConfig(b), allUp(), nil, nil)
	m := edns(query("www.Example.org.", dns.TypeA), 1232, false)
	w, _ := m.Pack()
	out := make([]byte, 0, 4096)
	b.ReportAllocs()
	for b.Loop() {
		snap.Fast(w, out)
	}
}

func BenchmarkRespond(b *testing.B) {
	snap := Build(loadConfig(b), allUp(), nil, nil)
	m := edns(query("www.Example.org.", dns.TypeA), 1232, false)
	w, _ := m.Pack()
	b.ReportAllocs()
	for b.Loop() {
		req := new(dns.Msg)
		req.Unpack(w)
		resp := snap.Respond(req, UDP, -1)
		resp.Pack()
	}
}

func FuzzFast(f *testing.F) {
	for _, m := range []*dns.Msg{query("www.example.org.", dns.TypeA), query("nope.example.org.", dns.TypeMX),
		edns(query("example.org.", dns.TypeSOA), 1232, true), query("example.net.", dns.TypeA)} {
		w, _ := m.Pack()
		f.Add(w)
	}
	f.Add([]byte(strings.Repeat("\x00", 17)))
	cfg := loadConfig(f)
	snap := Build(cfg, allUp(), nil, nil)
	f.Fuzz(func(t *testing.T, wire []byte) {
		compareFast(t, snap, wire)
		// Respond must never panic on anything that unpacks.
		req := new(dns.Msg)
		if req.Unpack(wire) == nil {
			if resp := snap.Respond(req, UDP, -1); resp != nil {
				if _, err := resp.Pack(); err != nil {
					t.Errorf("answer does not pack: %v", err)
				}
			}
		}
	})
}
