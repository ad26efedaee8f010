package authority

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/miekg/dns"

	"github.com/ringfront/ringfront/dnslb/config"
	iconfig "github.com/ringfront/ringfront/internal/config"
)

// loadZoneFileConfig loads testdata/example.com.yaml: a zone from a
// real-world master file (SOA and NS from the file, a delegation with
// glue, wildcards, CNAMEs, TXT with quotes and semicolons, a long TXT in
// two strings, SRV, CAA, an $INCLUDE) and one service.
func loadZoneFileConfig(t *testing.T) *config.Config {
	t.Helper()
	cfg, err := config.Load(iconfig.Options{File: "testdata/example.com.yaml"})
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestZoneFileAnswers(t *testing.T) {
	cfg := loadZoneFileConfig(t)
	snap := Build(cfg, allUp(), nil, nil)
	const soa = "ns ex.com. 300 SOA ns1.example.com. hostmaster.example.com. 2024061501 7200 1800 1209600 300"
	tests := []struct {
		name  string
		qtype uint16
		want  string
	}{
		{"www.example.com.", dns.TypeA, "NOERROR aa | an www.example.com. 20 A 198.51.100.10 | an www.example.com. 20 A 198.51.100.20"},
		{"www.example.com.", dns.TypeAAAA, "NOERROR aa | " + soa},
		{"example.com.", dns.TypeNS, "NOERROR aa | an example.com. 3600 NS ns1.example.com. | an example.com. 3600 NS ns2.example.net. | ar ns1.example.com. 3600 A 192.0.2.1 | ar ns1.example.com. 3600 AAAA 2001:db8::1"},
		{"example.com.", dns.TypeCAA, `NOERROR aa | an example.com. 3600 CAA 0 issue "letsencrypt.org" | an example.com. 3600 CAA 0 iodef "mailto:security@example.com"`},
		{"example.com.", dns.TypeTXT, `NOERROR aa | an example.com. 3600 TXT "v=spf1 ip4:192.0.2.0/24 include:_spf.example.net ~all"`},
		{"example.com.", dns.TypeMX, "NOERROR aa | an example.com. 3600 MX 10 mail.example.com. | an example.com. 3600 MX 20 mail.backup.example.net. | ar mail.example.com. 3600 A 192.0.2.25"},
		{"quote.example.com.", dns.TypeTXT, `NOERROR aa | an quote.example.com. 3600 TXT "she said \"hi\"; then left" "second string"`},
		{"_dmarc.example.com.", dns.TypeTXT, `NOERROR aa | an _dmarc.example.com. 3600 TXT "v=DMARC1; p=reject; rua=mailto:dmarc@example.com"`},
		{"_sip._tcp.example.com.", dns.TypeSRV, "NOERROR aa | an _sip._tcp.example.com. 3600 SRV 10 60 5060 sip.example.com. | ar sip.example.com. 3600 A 192.0.2.50"},
		{"shop.example.com.", dns.TypeA, "NOERROR aa | an shop.example.com. 3600 CNAME www.example.com. | an www.example.com. 20 A 198.51.100.10 | an www.example.com. 20 A 198.51.100.20"},
		{"blog.example.com.", dns.TypeA, "NOERROR aa | an blog.example.com. 300 CNAME hosting.example.net."},
		// Wildcards (RFC 4592): synthesized with the query's name, one
		// label or more; the empty non-terminal above stays NODATA.
		{"x.apps.example.com.", dns.TypeA, "NOERROR aa | an x.apps.example.com. 3600 A 192.0.2.90"},
		{"a.b.apps.example.com.", dns.TypeTXT, `NOERROR aa | an a.b.apps.example.com. 3600 TXT "wildcard; with a semicolon"`},
		{"x.apps.example.com.", dns.TypeAAAA, "NOERROR aa | " + soa},
		{"apps.example.com.", dns.TypeA, "NOERROR aa | " + soa},
		{"*.apps.example.com.", dns.TypeA, "NOERROR aa | an *.apps.example.com. 3600 A 192.0.2.90"},
		{"nope.example.com.", dns.TypeA, "NXDOMAIN aa | " + soa},
		// The delegation: a referral with glue, not authoritative.
		{"host.lab.example.com.", dns.TypeA, "NOERROR | ns lab.example.com. 3600 NS ns1.lab.example.com. | ns lab.example.com. 3600 NS ns2.lab.example.com. | ar ns1.lab.example.com. 3600 A 192.0.2.201 | ar ns2.lab.example.com. 3600 AAAA 2001:db8::202"},
		// From the $INCLUDEd file, with its own $ORIGIN and TTL.
		{"db1.hosts.example.com.", dns.TypeA, "NOERROR aa | an db1.hosts.example.com. 3600 A 192.0.2.11"},
		{"db2.hosts.example.com.", dns.TypeA, "NOERROR aa | an db2.hosts.example.com. 600 A 192.0.2.12"},
	}
	for _, tt := range tests {
		t.Run(tt.name+"/"+dns.TypeToString[tt.qtype], func(t *testing.T) {
			got := summary(snap.Respond(query(tt.name, tt.qtype), TCP, 0))
			want := strings.ReplaceAll(tt.want, "ns ex.com.", "ns example.com.")
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("(-want +got)\n%s", diff)
			}
		})
	}
	// The long TXT keeps its two strings.
	r := snap.Respond(query("dkim._domainkey.example.com.", dns.TypeTXT), TCP, 0)
	if len(r.Answer) != 1 || len(r.Answer[0].(*dns.TXT).Txt) != 2 || !strings.HasPrefix(r.Answer[0].(*dns.TXT).Txt[0], "v=DKIM1; k=rsa; p=") {
		t.Errorf("dkim TXT = %v", r.Answer)
	}
}

// The service replaces the file's records of its name, and says so.
func TestZoneFileServiceOverrides(t *testing.T) {
	cfg := loadZoneFileConfig(t)
	got := cfg.Zones[0].Warnings
	want := []string{
		`services[0] (www.example.com.) overrides "www.example.com. 3600 IN A 192.0.2.80" from zone_file example.com.zone`,
		`services[0] (www.example.com.) overrides "www.example.com. 3600 IN AAAA 2001:db8::80" from zone_file example.com.zone`,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("warnings (-want +got)\n%s", diff)
	}
}

// The fast path leaves names a wildcard may answer to Respond and
// agrees with it on everything else.
func TestZoneFileFastMatchesRespond(t *testing.T) {
	snap := Build(loadZoneFileConfig(t), allUp(), nil, nil)
	r := rand.New(rand.NewPCG(3, 4))
	names := []string{"www.example.com.", "example.com.", "x.apps.example.com.", "apps.example.com.", "nope.example.com.",
		"quote.example.com.", "host.lab.example.com.", "db1.hosts.example.com.", "shop.example.com.", "other.org."}
	for _, name := range names {
		for _, qt := range []uint16{dns.TypeA, dns.TypeAAAA, dns.TypeTXT, dns.TypeMX, dns.TypeCAA, dns.TypeNS} {
			m := new(dns.Msg)
			m.SetQuestion(randomCase(r, name), qt)
			m.SetEdns0(1232, false)
			wire, err := m.Pack()
			if err != nil {
				t.Fatal(err)
			}
			compareFast(t, snap, wire)
		}
	}
}
