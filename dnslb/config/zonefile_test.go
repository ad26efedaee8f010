package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	iconfig "github.com/ringfront/ringfront/internal/config"
)

const fileZone = `$ORIGIN example.org.
$TTL 300
@ IN SOA ns1 hostmaster (
     42 ; serial
     3600 600 604800
     120 )
  IN NS ns1
  IN NS ns.example.net.
ns1 IN A 198.51.100.2
ns1 IN AAAA 2001:db8::2
www IN A 192.0.2.80
mail IN A 198.51.100.25
`

const fileYAML = `
zones:
  - origin: example.org.
    zone_file: %s
    services:
      - name: www
        targets: ["198.51.100.10"]
        check: {type: tcp, port: 80}
`

// loadDir writes files into a fresh config directory (dnslb.yaml among
// them) and loads dnslb.yaml.
func loadDir(t *testing.T, files map[string]string) (*Config, error) {
	t.Helper()
	dir := t.TempDir()
	os.Symlink("/etc/hostname", filepath.Join(dir, "link"))
	for name, body := range files {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o700)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return Load(iconfig.Options{File: filepath.Join(dir, "dnslb.yaml")})
}

func TestZoneFileFillsSOAAndNS(t *testing.T) {
	c, err := loadDir(t, map[string]string{
		"dnslb.yaml":        strings.Replace(fileYAML, "%s", "zones/example.org", 1),
		"zones/example.org": fileZone,
	})
	if err != nil {
		t.Fatal(err)
	}
	z := c.Zones[0]
	wantSOA := SOA{MName: "ns1.example.org.", RName: "hostmaster.example.org.", Serial: 42, Refresh: 3600, Retry: 600, Expire: 604800, Minimum: 120}
	if diff := cmp.Diff(wantSOA, z.SOA); diff != "" {
		t.Errorf("soa (-want +got)\n%s", diff)
	}
	wantNS := []NS{{Name: "ns1.example.org.", Addresses: []string{"198.51.100.2", "2001:db8::2"}}, {Name: "ns.example.net."}}
	if diff := cmp.Diff(wantNS, z.NS); diff != "" {
		t.Errorf("ns (-want +got)\n%s", diff)
	}
	var got []string
	for _, rr := range z.FileRecords {
		got = append(got, strings.Join(strings.Fields(rr.String()), " "))
	}
	want := []string{"ns1.example.org. 300 IN A 198.51.100.2", "ns1.example.org. 300 IN AAAA 2001:db8::2", "mail.example.org. 300 IN A 198.51.100.25"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("records (-want +got)\n%s", diff)
	}
	if len(z.Warnings) != 1 || !strings.Contains(z.Warnings[0], "services[0] (www.example.org.) overrides") || !strings.Contains(z.Warnings[0], "192.0.2.80") {
		t.Errorf("warnings = %q", z.Warnings)
	}
}

// A zone file may come beside records: and the soa and ns sections. A
// record without a TTL takes the one before it (RFC 1035 5.1).
func TestZoneFileBesideRecords(t *testing.T) {
	yaml := strings.Replace(goodZone, "    records:", "    zone_file: extra.zone\n    records:", 1)
	c, err := loadDir(t, map[string]string{
		"dnslb.yaml": yaml,
		"extra.zone": "api 60 IN A 198.51.100.30\n_ldap._tcp IN SRV 0 0 389 api\n",
	})
	if err != nil {
		t.Fatal(err)
	}
	if z := c.Zones[0]; len(z.FileRecords) != 2 || len(z.Records) != 1 || z.FileRecords[1].Header().Ttl != 60 {
		t.Errorf("file records %v, records %v", z.FileRecords, z.Records)
	}
}

func TestZoneFileErrors(t *testing.T) {
	withFile := strings.Replace(fileYAML, "%s", "db.example", 1)
	tests := []struct {
		name  string
		files map[string]string
		want  string
	}{
		{"missing file", map[string]string{"dnslb.yaml": withFile},
			`zones[0].zone_file: "db.example" cannot be read: openat db.example: no such file or directory`},
		{"malformed", map[string]string{"dnslb.yaml": withFile, "db.example": fileZone + "bad IN A 300.1.2.3\n"},
			`zones[0].zone_file: "db.example" is not a valid zone file: db.example: dns: bad A A: "300.1.2.3" at line: 13:`},
		{"bad include line", map[string]string{"dnslb.yaml": withFile, "db.example": fileZone + "$INCLUDE more/hosts\n", "more/hosts": "ok IN A 192.0.2.1\nbroken IN MX mail\n"},
			`more/hosts: dns: bad MX Pref: "mail" at line: 2:`},
		{"include outside", map[string]string{"dnslb.yaml": withFile, "db.example": fileZone + "$INCLUDE ../secrets\n"},
			"failed to open `../secrets': ../secrets is outside the config directory"},
		{"include through a link", map[string]string{"dnslb.yaml": withFile, "db.example": fileZone + "$INCLUDE link\n"},
			"path escapes from parent"},
		{"include absolute", map[string]string{"dnslb.yaml": withFile, "db.example": fileZone + "$INCLUDE /etc/passwd\n"},
			`failed to open`},
		{"file outside", map[string]string{"dnslb.yaml": strings.Replace(fileYAML, "%s", "../db.example", 1)},
			`zones[0].zone_file: "../db.example" is outside the config directory`},
		{"out of zone", map[string]string{"dnslb.yaml": withFile, "db.example": fileZone + "www.example.net. IN A 192.0.2.1\n"},
			`holds "www.example.net. 300 IN A 192.0.2.1", which is outside the zone example.org.`},
		{"dnssec", map[string]string{"dnslb.yaml": withFile, "db.example": fileZone + "@ IN DNSKEY 257 3 13 AAAA\n"},
			"which is a DNSKEY record, which dnslb does not serve"},
		{"two soa", map[string]string{"dnslb.yaml": withFile, "db.example": fileZone + "@ IN SOA a b 1 2 3 4 5\n"},
			"holds a second SOA record"},
		{"soa twice", map[string]string{"dnslb.yaml": strings.Replace(withFile, "    zone_file:", "    soa: {mname: ns1, rname: hostmaster}\n    zone_file:", 1), "db.example": fileZone},
			"zones[0].soa: \"ns1\" is set both here and by the SOA record in zone_file db.example: keep one"},
		{"no soa anywhere", map[string]string{"dnslb.yaml": withFile, "db.example": "www IN A 192.0.2.1\n"},
			"zones[0].soa.mname: is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := loadDir(t, tt.files)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %v\nwant it to contain %q", err, tt.want)
			}
		})
	}
}
