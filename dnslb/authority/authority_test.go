package authority

import (
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/miekg/dns"

	"github.com/ringfront/ringfront/dnslb/config"
	iconfig "github.com/ringfront/ringfront/internal/config"
)

const testZone = `
zones:
  - origin: example.org.
    ttl: 3600
    soa: {mname: ns1.example.org., rname: hostmaster.example.org., serial: 7, refresh: 3600, retry: 600, expire: 604800, minimum: 60}
    ns: [{name: ns1.example.org., addresses: ["198.51.100.2"]}, {name: ns2.example.org., addresses: ["198.51.100.3", "2001:db8::3"]}]
    records:
      - "mail.example.org. 300 IN A 198.51.100.25"
      - "example.org. 300 IN MX 10 mail.example.org."
      - "a.b.c.example.org. 300 IN TXT \"deep\""
      - "alias 300 IN CNAME www"
      - "outside 300 IN CNAME www.example.net."
      - "sub 300 IN NS ns.sub"
      - "ns.sub 300 IN A 198.51.100.53"
      - "big 300 IN TXT \"` + "%s" + `\""
    services:
      - name: www.example.org.
        ttl: 20
        degraded_ttl: 5
        max_answers: 2
        targets: ["198.51.100.10", "198.51.100.20", "198.51.100.30", "2001:db8::10"]
        check: {type: http, port: 80, path: /healthz}
      - name: strict
        ttl: 20
        all_down: none
        targets: ["198.51.100.40"]
        check: {type: tcp, port: 80}
      - name: many.example.org.
        ttl: 20
        max_answers: 64
        targets: [%s]
        check: {type: tcp, port: 80}
`

func loadConfig(t testing.TB) *config.Config {
	t.Helper()
	var many []string
	for i := 1; i <= 60; i++ {
		many = append(many, netip.AddrFrom4([4]byte{198, 51, 100, byte(100 + i)}).String())
	}
	body := strings.Replace(testZone, "%s", strings.Repeat("x", 200), 1)
	body = strings.Replace(body, "%s", strings.Join(many, ", "), 1)
	p := filepath.Join(t.TempDir(), "dnslb.yaml")
	os.WriteFile(p, []byte(body), 0o600)
	var c config.Config
	if err := iconfig.Load(iconfig.Options{File: p}, &c); err != nil {
		t.Fatal(err)
	}
	return &c
}

// fakeHealth: every target up unless listed as down or drained.
type fakeHealth struct {
	down, drained map[string]bool
}

func (f fakeHealth) Target(service string, a netip.Addr) TargetState {
	id := config.TargetID(service, a)
	return TargetState{Up: !f.down[id], Drained: f.drained[id]}
}

func allUp() fakeHealth { return fakeHealth{} }

func set(ids ...string) map[string]bool {
	m := map[string]bool{}
	for _, id := range ids {
		m[id] = true
	}
	return m
}

func query(name string, qtype uint16) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.RecursionDesired = false
	return m
}

func edns(m *dns.Msg, size uint16, do bool) *dns.Msg {
	m.SetEdns0(size, do)
	return m
}

// summary renders the parts of a response the rules are about.
func summary(m *dns.Msg) string {
	var b strings.Builder
	if m.Rcode == dns.RcodeBadVers {
		b.WriteString("BADVERS") // same number as BADSIG
	} else {
		b.WriteString(dns.RcodeToString[m.Rcode])
	}
	if m.Authoritative {
		b.WriteString(" aa")
	}
	if m.Truncated {
		b.WriteString(" tc")
	}
	for _, sec := range []struct {
		tag string
		rrs []dns.RR
	}{{"an", m.Answer}, {"ns", m.Ns}, {"ar", m.Extra}} {
		for _, rr := range sec.rrs {
			if rr.Header().Rrtype == dns.TypeOPT {
				o := rr.(*dns.OPT)
				b.WriteString(" | ar OPT")
				if o.Do() {
					b.WriteString(" do")
				}
				continue
			}
			s := strings.Join(strings.Fields(rr.String()), " ")
			s = strings.Replace(s, " IN ", " ", 1)
			b.WriteString(" | " + sec.tag + " " + s)
		}
	}
	return b.String()
}

func TestRespond(t *testing.T) {
	cfg := loadConfig(t)
	up := Build(cfg, allUp(), nil, nil)
	wwwDown := Build(cfg, fakeHealth{down: set("www.example.org./198.51.100.10")}, nil, nil)
	allV4Down := Build(cfg, fakeHealth{down: set("www.example.org./198.51.100.10", "www.example.org./198.51.100.20", "www.example.org./198.51.100.30", "strict.example.org./198.51.100.40")}, nil, nil)
	drained := Build(cfg, fakeHealth{drained: set("www.example.org./198.51.100.10", "www.example.org./198.51.100.20", "www.example.org./198.51.100.30"),
		down: set("www.example.org./198.51.100.30")}, nil, nil)
	soaNeg := "example.org. 60 SOA ns1.example.org. hostmaster.example.org. 7 3600 600 604800 60"

	tests := []struct {
		name string
		snap *Snapshot
		req  *dns.Msg
		tr   Transport
		want string
	}{
		{"service A rotated and cut", up, query("www.example.org.", dns.TypeA), UDP,
			"NOERROR aa | an www.example.org. 20 A 198.51.100.10 | an www.example.org. 20 A 198.51.100.20"},
		{"service AAAA", up, query("www.example.org.", dns.TypeAAAA), UDP,
			"NOERROR aa | an www.example.org. 20 AAAA 2001:db8::10"},
		{"down target left out, degraded ttl", wwwDown, query("www.example.org.", dns.TypeA), UDP,
			"NOERROR aa | an www.example.org. 5 A 198.51.100.20 | an www.example.org. 5 A 198.51.100.30"},
		{"degraded ttl for the whole service while any target is down", wwwDown, query("www.example.org.", dns.TypeAAAA), UDP,
			"NOERROR aa | an www.example.org. 5 AAAA 2001:db8::10"},
		{"all down fails open", allV4Down, query("www.example.org.", dns.TypeA), UDP,
			"NOERROR aa | an www.example.org. 5 A 198.51.100.10 | an www.example.org. 5 A 198.51.100.20"},
		{"all down with none policy is NODATA", allV4Down, query("strict.example.org.", dns.TypeA), UDP,
			"NOERROR aa | ns " + soaNeg},
		{"drained never answered, even failing open", drained, query("www.example.org.", dns.TypeA), UDP,
			"NOERROR aa | ns " + soaNeg},
		{"service has no v6 on strict: NODATA", up, query("strict.example.org.", dns.TypeAAAA), UDP,
			"NOERROR aa | ns " + soaNeg},
		{"service MX is NODATA", up, query("www.example.org.", dns.TypeMX), UDP,
			"NOERROR aa | ns " + soaNeg},
		{"static A", up, query("mail.example.org.", dns.TypeA), UDP,
			"NOERROR aa | an mail.example.org. 300 A 198.51.100.25"},
		{"MX with additional", up, query("example.org.", dns.TypeMX), UDP,
			"NOERROR aa | an example.org. 300 MX 10 mail.example.org. | ar mail.example.org. 300 A 198.51.100.25"},
		{"NXDOMAIN with SOA at negative TTL", up, query("nope.example.org.", dns.TypeA), UDP,
			"NXDOMAIN aa | ns " + soaNeg},
		{"empty non-terminal is NODATA", up, query("b.c.example.org.", dns.TypeA), UDP,
			"NOERROR aa | ns " + soaNeg},
		{"below an existing name is NXDOMAIN", up, query("x.mail.example.org.", dns.TypeA), UDP,
			"NXDOMAIN aa | ns " + soaNeg},
		{"out of zone refused without AA", up, query("example.net.", dns.TypeA), UDP, "REFUSED"},
		{"parent of zone refused", up, query("org.", dns.TypeNS), UDP, "REFUSED"},
		{"ANY gets one HINFO", up, query("www.example.org.", dns.TypeANY), UDP,
			"NOERROR aa | an www.example.org. 60 HINFO \"RFC8482\" \"\""},
		{"ANY on missing name", up, query("nope.example.org.", dns.TypeANY), UDP, "NXDOMAIN aa | ns " + soaNeg},
		{"apex SOA with glue", up, query("example.org.", dns.TypeSOA), UDP,
			"NOERROR aa | an example.org. 3600 SOA ns1.example.org. hostmaster.example.org. 7 3600 600 604800 60 | ar ns1.example.org. 3600 A 198.51.100.2"},
		{"apex NS with glue", up, query("example.org.", dns.TypeNS), UDP,
			"NOERROR aa | an example.org. 3600 NS ns1.example.org. | an example.org. 3600 NS ns2.example.org. | ar ns1.example.org. 3600 A 198.51.100.2 | ar ns2.example.org. 3600 A 198.51.100.3 | ar ns2.example.org. 3600 AAAA 2001:db8::3"},
		{"CNAME chased in zone", up, query("alias.example.org.", dns.TypeA), UDP,
			"NOERROR aa | an alias.example.org. 300 CNAME www.example.org. | an www.example.org. 20 A 198.51.100.10 | an www.example.org. 20 A 198.51.100.20"},
		{"CNAME itself", up, query("alias.example.org.", dns.TypeCNAME), UDP,
			"NOERROR aa | an alias.example.org. 300 CNAME www.example.org."},
		{"CNAME out of zone not chased", up, query("outside.example.org.", dns.TypeA), UDP,
			"NOERROR aa | an outside.example.org. 300 CNAME www.example.net."},
		{"referral below a cut", up, query("host.sub.example.org.", dns.TypeA), UDP,
			"NOERROR | ns sub.example.org. 300 NS ns.sub.example.org. | ar ns.sub.example.org. 300 A 198.51.100.53"},
		{"DS at the cut answered by the parent", up, query("sub.example.org.", dns.TypeDS), UDP,
			"NOERROR aa | ns " + soaNeg},
		{"EDNS echoed", up, edns(query("mail.example.org.", dns.TypeA), 4096, false), UDP,
			"NOERROR aa | an mail.example.org. 300 A 198.51.100.25 | ar OPT"},
		{"DO bit copied", up, edns(query("mail.example.org.", dns.TypeA), 4096, true), UDP,
			"NOERROR aa | an mail.example.org. 300 A 198.51.100.25 | ar OPT do"},
		{"BADVERS for EDNS version 1", up, func() *dns.Msg {
			m := edns(query("mail.example.org.", dns.TypeA), 4096, false)
			m.IsEdns0().SetVersion(1)
			return m
		}(), UDP, "BADVERS | ar OPT"},
		{"FORMERR for two OPTs", up, func() *dns.Msg {
			m := edns(query("mail.example.org.", dns.TypeA), 4096, false)
			m.Extra = append(m.Extra, m.Extra[0])
			return m
		}(), UDP, "FORMERR"},
		{"FORMERR for two questions", up, func() *dns.Msg {
			m := query("mail.example.org.", dns.TypeA)
			m.Question = append(m.Question, m.Question[0])
			return m
		}(), UDP, "FORMERR"},
		{"NOTIMP for unknown opcode", up, func() *dns.Msg {
			m := query("mail.example.org.", dns.TypeA)
			m.Opcode = dns.OpcodeUpdate
			return m
		}(), UDP, "NOTIMP"},
		{"AXFR refused", up, query("example.org.", dns.TypeAXFR), TCP, "REFUSED"},
		{"CHAOS class refused", up, func() *dns.Msg {
			m := query("version.bind.", dns.TypeTXT)
			m.Question[0].Qclass = dns.ClassCHAOS
			return m
		}(), UDP, "REFUSED"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := tt.snap.Respond(tt.req, tt.tr, 0)
			// Round-trip through the wire, as a client would see it.
			wire, err := resp.Pack()
			if err != nil {
				t.Fatal(err)
			}
			got := new(dns.Msg)
			if err := got.Unpack(wire); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, summary(got)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			if got.Id != tt.req.Id || !got.Response || len(got.Question) != len(tt.req.Question) {
				t.Errorf("header/question not echoed: %v", got)
			}
			if tt.req.IsEdns0() == nil && got.IsEdns0() != nil {
				t.Errorf("OPT in a reply to a query without one")
			}
		})
	}
}

func TestRespondRoundRobin(t *testing.T) {
	snap := Build(loadConfig(t), allUp(), nil, nil)
	var firsts []string
	for range 6 {
		resp := snap.Respond(query("www.example.org.", dns.TypeA), UDP, -1)
		firsts = append(firsts, resp.Answer[0].(*dns.A).A.String())
		if len(resp.Answer) != 2 {
			t.Fatalf("answers = %d, want max_answers 2", len(resp.Answer))
		}
	}
	want := []string{"198.51.100.10", "198.51.100.20", "198.51.100.30", "198.51.100.10", "198.51.100.20", "198.51.100.30"}
	if diff := cmp.Diff(want, firsts); diff != "" {
		t.Errorf("first answer per query (-want +got):\n%s", diff)
	}
}

func TestRespondTruncation(t *testing.T) {
	snap := Build(loadConfig(t), allUp(), nil, nil)
	// 60 A records: 16 bytes each compressed, over 512 but under 1232.
	resp := snap.Respond(query("many.example.org.", dns.TypeA), UDP, 0)
	if !resp.Truncated || len(resp.Answer) != 0 {
		t.Errorf("plain UDP: tc=%v answers=%d, want TC and no partial answer", resp.Truncated, len(resp.Answer))
	}
	resp = snap.Respond(edns(query("many.example.org.", dns.TypeA), 4096, false), UDP, 0)
	if resp.Truncated || len(resp.Answer) != 60 {
		t.Errorf("EDNS 4096: tc=%v answers=%d, want all 60", resp.Truncated, len(resp.Answer))
	}
	resp = snap.Respond(query("many.example.org.", dns.TypeA), TCP, 0)
	if resp.Truncated || len(resp.Answer) != 60 {
		t.Errorf("TCP: tc=%v answers=%d, want all 60", resp.Truncated, len(resp.Answer))
	}
	// EDNS size above the configured 1232 is capped.
	wire, _ := snap.Respond(edns(query("many.example.org.", dns.TypeA), 65000, false), UDP, 0).Pack()
	if len(wire) > 1232 {
		t.Errorf("answer of %d bytes exceeds udp_size 1232", len(wire))
	}
}

func TestRespondDropsResponses(t *testing.T) {
	snap := Build(loadConfig(t), allUp(), nil, nil)
	m := query("www.example.org.", dns.TypeA)
	m.Response = true
	if resp := snap.Respond(m, UDP, 0); resp != nil {
		t.Errorf("answered a response: %v", resp)
	}
}

func TestAnswered(t *testing.T) {
	snap := Build(loadConfig(t), fakeHealth{down: set("www.example.org./198.51.100.20")}, nil, nil)
	got := snap.Answered("www.example.org.")
	want := []netip.Addr{netip.MustParseAddr("198.51.100.10"), netip.MustParseAddr("198.51.100.30"), netip.MustParseAddr("2001:db8::10")}
	if !slices.Equal(want, got) {
		t.Errorf("Answered = %v, want %v", got, want)
	}
}

// TestFamilies: per service and family, how many targets are answered
// and whether the service fails open (every target down, all_down: all).
func TestFamilies(t *testing.T) {
	var many []string
	for i := 1; i <= 60; i++ {
		many = append(many, "many.example.org./"+netip.AddrFrom4([4]byte{198, 51, 100, byte(100 + i)}).String())
	}
	tests := []struct {
		name string
		h    fakeHealth
		want []ServiceFamily
	}{
		{"all up", allUp(), []ServiceFamily{
			{"many.example.org.", "ipv4", 60, 60, false},
			{"strict.example.org.", "ipv4", 1, 1, false},
			{"www.example.org.", "ipv4", 3, 3, false},
			{"www.example.org.", "ipv6", 1, 1, false},
		}},
		{"one down, one drained", fakeHealth{down: set("www.example.org./198.51.100.20"), drained: set("www.example.org./198.51.100.30")}, []ServiceFamily{
			{"many.example.org.", "ipv4", 60, 60, false},
			{"strict.example.org.", "ipv4", 1, 1, false},
			{"www.example.org.", "ipv4", 2, 1, false},
			{"www.example.org.", "ipv6", 1, 1, false},
		}},
		{"all down: fail open, or NODATA with all_down none", fakeHealth{down: set(append(many,
			"www.example.org./198.51.100.10", "www.example.org./198.51.100.20", "www.example.org./198.51.100.30", "strict.example.org./198.51.100.40")...)}, []ServiceFamily{
			{"many.example.org.", "ipv4", 60, 60, true},
			{"strict.example.org.", "ipv4", 1, 0, false},
			{"www.example.org.", "ipv4", 3, 3, true},
			{"www.example.org.", "ipv6", 1, 1, false},
		}},
		{"every target drained: nothing to fail open to", fakeHealth{drained: set("strict.example.org./198.51.100.40")}, []ServiceFamily{
			{"many.example.org.", "ipv4", 60, 60, false},
			{"strict.example.org.", "ipv4", 0, 0, false},
			{"www.example.org.", "ipv4", 3, 3, false},
			{"www.example.org.", "ipv6", 1, 1, false},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Build(loadConfig(t), tt.h, nil, nil).Families()
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Families (-want +got):\n%s", diff)
			}
		})
	}
}
