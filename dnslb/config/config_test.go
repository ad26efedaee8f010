package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	iconfig "github.com/ringfront/ringfront/internal/config"
)

const goodZone = `
zones:
  - origin: example.org.
    soa: {mname: ns1.example.org., rname: hostmaster.example.org.}
    ns: [{name: ns1.example.org., addresses: ["198.51.100.2"]}]
    records: ["mail 300 IN A 198.51.100.25"]
    services:
      - name: www
        targets: ["198.51.100.10", "2001:db8::10"]
        check: {type: http, port: 80, path: /healthz, interval: 1s, timeout: 500ms}
`

func load(t *testing.T, body string) (*Config, error) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "dnslb.yaml")
	os.WriteFile(p, []byte(body), 0o600)
	var c Config
	err := iconfig.Load(iconfig.Options{File: p}, &c)
	return &c, err
}

func TestValidateDefaults(t *testing.T) {
	c, err := load(t, goodZone)
	if err != nil {
		t.Fatal(err)
	}
	svc := c.Zones[0].Services[0]
	if svc.Name != "www.example.org." || svc.TTL != DefaultServiceTTL || svc.DegradedTTL != svc.TTL ||
		svc.AllDown != AllDownAll || svc.Check.Rise != 2 || svc.Check.Fall != 3 || len(svc.Addrs) != 2 {
		t.Errorf("defaults not filled: %+v", svc)
	}
	if c.UDPSize != 1232 || c.Listen[0] != "127.0.0.1:5353" || c.Admin.Listen != "127.0.0.1:8053" {
		t.Errorf("top-level defaults: %+v", c)
	}
}

func TestValidateErrors(t *testing.T) {
	tests := []struct {
		name, body, want string
	}{
		{"no zones", "listen: [\"127.0.0.1:53\"]\n", "zones: is required"},
		{"bad listen", "listen: [\"localhost\"]\n" + goodZone, `listen[0]: "localhost" is not host:port`},
		{"unknown key", goodZone + "    color: blue\n", "zones[0].color: unknown key"},
		{"bad origin", strings.Replace(goodZone, "origin: example.org.", "origin: \"exa mple..org\"", 1), `zones[0].origin: "exa mple..org" is not a domain name`},
		{"missing soa", strings.Replace(goodZone, "    soa: {mname: ns1.example.org., rname: hostmaster.example.org.}\n", "", 1), "zones[0].soa.mname: is required"},
		{"glue needed", strings.Replace(goodZone, `addresses: ["198.51.100.2"]`, "addresses: []", 1), "zones[0].ns[0].addresses"},
		{"bad glue", strings.Replace(goodZone, `"198.51.100.2"`, `"198.51.100.300"`, 1), `zones[0].ns[0].addresses[0]: "198.51.100.300" is not an IP address`},
		{"bad record", strings.Replace(goodZone, "mail 300 IN A 198.51.100.25", "mail 300 IN A nope", 1), `zones[0].records[0]: "mail 300 IN A nope" is not a zone-file record`},
		{"record out of zone", strings.Replace(goodZone, "mail 300", "mail.example.net. 300", 1), "is outside the zone"},
		{"soa record", strings.Replace(goodZone, "mail 300 IN A 198.51.100.25", "@ IN SOA a. b. 1 2 3 4 5", 1), "set the zone's soa section instead"},
		{"wildcard service", strings.Replace(goodZone, "name: www\n", "name: \"*.www\"\n", 1), `zones[0].services[0].name: "*.www.example.org." is a wildcard`},
		{"dnssec record", strings.Replace(goodZone, "mail 300 IN A 198.51.100.25", "mail 300 IN NSEC a.example.org. A", 1), "is a NSEC record, which dnslb does not serve"},
		{"clash", strings.Replace(goodZone, "mail 300 IN A", "www 300 IN A", 1), "clashes with service www.example.org."},
		{"bad target", strings.Replace(goodZone, `"2001:db8::10"`, `"www.example.org"`, 1), `zones[0].services[0].targets[1]: "www.example.org" is not an IP address`},
		{"dup target", strings.Replace(goodZone, `"2001:db8::10"`, `"198.51.100.10"`, 1), "is listed twice"},
		{"no targets", strings.Replace(goodZone, `targets: ["198.51.100.10", "2001:db8::10"]`, "targets: []", 1), "zones[0].services[0].targets: is required"},
		{"bad check interval", strings.Replace(goodZone, "interval: 1s", "interval: 5", 1), `zones[0].services[0].check.interval: "5" is not a duration`},
		{"bad check type", strings.Replace(goodZone, "type: http", "type: ping", 1), `zones[0].services[0].check.type: "ping" is not a check type`},
		{"timeout over interval", strings.Replace(goodZone, "timeout: 500ms", "timeout: 2s", 1), "zones[0].services[0].check.timeout"},
		{"bad all_down", strings.Replace(goodZone, "      - name: www\n", "      - name: www\n        all_down: some\n", 1), `all_down: "some" is not a policy`},
		{"degraded over ttl", strings.Replace(goodZone, "      - name: www\n", "      - name: www\n        ttl: 10\n        degraded_ttl: 30\n", 1), `degraded_ttl: "30" is longer than ttl`},
		{"negative ttl", strings.Replace(goodZone, "      - name: www\n", "      - name: www\n        ttl: -1\n", 1), "zones[0].services[0].ttl"},
		{"bad max_answers", strings.Replace(goodZone, "      - name: www\n", "      - name: www\n        max_answers: 100\n", 1), "max_answers"},
		{"service out of zone", strings.Replace(goodZone, "name: www\n", "name: www.example.net.\n", 1), "is outside the zone"},
		{"dup zone", goodZone + strings.Replace(goodZone, "zones:\n", "", 1), `zones[1].origin: "example.org." is also zones[0].origin`},
		{"udp size", "udp_size: 100\n" + goodZone, `udp_size: "100" must be between 512 and 65535`},
		{"log format", "log: {format: xml}\n" + goodZone, `log.format: "xml" is not a log format`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := load(t, tt.body)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

// The shipped example must load as it is.
func TestExampleConfig(t *testing.T) {
	var c Config
	if err := iconfig.Load(iconfig.Options{File: "../../configs/dnslb.yaml"}, &c); err != nil {
		t.Fatalf("configs/dnslb.yaml: %v", err)
	}
}
