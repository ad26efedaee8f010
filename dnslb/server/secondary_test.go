package server

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
)

const nsdBin = "/usr/sbin/nsd"

// TestSecondaryNSD runs Debian's NSD on loopback as a secondary of
// dnslb and checks that health changes reach NSD's answers through
// NOTIFY and IXFR within two seconds.
func TestSecondaryNSD(t *testing.T) {
	if _, err := os.Stat(nsdBin); err != nil {
		t.Skip("NSD is not installed (.ci/deps installs it): ", err)
	}
	if testing.Short() {
		t.Skip("starts NSD; not in -short")
	}
	ts := startTargets(t, 3)
	dir := t.TempDir()
	secret := make([]byte, 32)
	rand.Read(secret)
	b64 := base64.StdEncoding.EncodeToString(secret)
	keyFile := filepath.Join(dir, "xfr.key")
	// The secret file in tsig-keygen's own format.
	os.WriteFile(keyFile, []byte(fmt.Sprintf("key \"xfr-key\" {\n\talgorithm hmac-sha256;\n\tsecret \"%s\";\n};\n", b64)), 0o600)
	nsdPort := freeUDPPort(t)

	cfgPath := filepath.Join(dir, "dnslb.yaml")
	var ips []string
	for _, tg := range ts {
		ips = append(ips, `"`+tg.ip+`"`)
	}
	body := fmt.Sprintf(`listen: ["127.0.0.1:0"]
admin: {listen: "127.0.0.1:0"}
tsig_keys: [{name: xfr-key, algorithm: hmac-sha256, secret_file: %q}]
zones:
  - origin: example.org.
    soa: {mname: ns1.example.org., rname: hostmaster.example.org.}
    ns: [{name: ns1, addresses: ["198.51.100.2"]}]
    records: ["mail 300 IN A 198.51.100.25"]
    secondaries: [{address: "127.0.0.1:%d", tsig_key: xfr-key}]
    services:
      - name: www
        ttl: 20
        targets: [%s]
        check: {type: http, port: %d, path: /, interval: 100ms, timeout: 80ms, rise: 1, fall: 1}
`, keyFile, nsdPort, strings.Join(ips, ", "), ts[0].port)
	os.WriteFile(cfgPath, []byte(body), 0o600)
	cfg, err := loadFile(cfgPath)()
	if err != nil {
		t.Fatal(err)
	}
	srv := mustOpen(t, cfg, Options{Load: loadFile(cfgPath)})
	ctx, cancel := context.WithCancel(context.Background())
	if err := srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); srv.Wait() }()
	_, dnslbPort, _ := net.SplitHostPort(srv.TCPAddrs()[0])

	nsdConf := fmt.Sprintf(`server:
  ip-address: 127.0.0.1@%d
  port: %d
  server-count: 1
  username: ""
  chroot: ""
  zonesdir: %q
  pidfile: %q
  database: ""
  zonelistfile: %q
  xfrdfile: %q
  xfrdir: %q
  logfile: %q
  verbosity: 2
  rrl-ratelimit: 0
  xfrd-reload-timeout: 0
remote-control:
  control-enable: no
key:
  name: xfr-key
  algorithm: hmac-sha256
  secret: %q
zone:
  name: example.org
  zonefile: example.org.zone
  request-xfr: 127.0.0.1@%s xfr-key
  allow-notify: 127.0.0.1 xfr-key
`, nsdPort, nsdPort, dir, filepath.Join(dir, "nsd.pid"), filepath.Join(dir, "zone.list"),
		filepath.Join(dir, "xfrd.state"), dir, filepath.Join(dir, "nsd.log"), b64, dnslbPort)
	os.WriteFile(filepath.Join(dir, "nsd.conf"), []byte(nsdConf), 0o600)
	nsd := exec.Command(nsdBin, "-d", "-c", filepath.Join(dir, "nsd.conf"))
	nsd.Stderr = os.Stderr
	if err := nsd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		nsd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { nsd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			nsd.Process.Kill()
			<-done
		}
		if t.Failed() {
			log, _ := os.ReadFile(filepath.Join(dir, "nsd.log"))
			t.Logf("nsd.log:\n%s", log)
		}
	}()
	nsdAddr := fmt.Sprintf("127.0.0.1:%d", nsdPort)
	nsdAnswer := func() []string {
		c := &dns.Client{Timeout: 300 * time.Millisecond}
		m := new(dns.Msg)
		m.SetQuestion("www.example.org.", dns.TypeA)
		r, _, err := c.Exchange(m, nsdAddr)
		if err != nil || r.Rcode != dns.RcodeSuccess {
			return nil
		}
		return answered(r)
	}
	all := []string{"127.0.0.21", "127.0.0.22", "127.0.0.23"}
	waitFor(t, "NSD serves the zone after its first transfer", 15*time.Second, func() bool {
		return slices.Equal(all, nsdAnswer())
	})

	// Several health changes, each must reach NSD within 2 seconds.
	steps := []struct {
		do   func()
		want []string
	}{
		{func() { ts[0].stop() }, []string{"127.0.0.22", "127.0.0.23"}},
		{func() { ts[1].stop() }, []string{"127.0.0.23"}},
		{func() { ts[0].start(t) }, []string{"127.0.0.21", "127.0.0.23"}},
		{func() { ts[1].start(t) }, all},
	}
	for i, step := range steps {
		step.do()
		took := waitFor(t, fmt.Sprintf("change %d reaches NSD", i+1), 5*time.Second, func() bool {
			return slices.Equal(step.want, nsdAnswer())
		})
		t.Logf("change %d: %v reached NSD in %v", i+1, step.want, took.Round(time.Millisecond))
		if took > 2*time.Second {
			t.Errorf("change %d took %v to reach NSD, want at most 2s", i+1, took)
		}
	}
	// NSD and dnslb agree on the serial, and NSD used IXFR after its
	// first AXFR.
	soa := func(addr string) uint32 {
		r := ask(t, "udp", addr, "example.org.", dns.TypeSOA)
		return r.Answer[0].(*dns.SOA).Serial
	}
	if a, b := soa(srv.UDPAddrs()[0]), soa(nsdAddr); a != b {
		t.Errorf("serial: dnslb %d, NSD %d", a, b)
	}
	metrics := scrape(t, srv.AdminAddr())
	if n := metricValue(metrics, `dnslb_transfers_total{result="ok",type="AXFR",zone="example.org."}`); n < 1 {
		t.Errorf("no AXFR counted:\n%s", grepLines(metrics, "dnslb_transfers_total"))
	}
	if n := metricValue(metrics, `dnslb_transfers_total{result="ok",type="IXFR",zone="example.org."}`); n < float64(len(steps)) {
		t.Errorf("IXFR count %v, want one per change (%d):\n%s", n, len(steps), grepLines(metrics, "dnslb_transfers_total"))
	}
	if n := metricValue(metrics, `dnslb_notifies_total{result="ok",secondary="127.0.0.1:`+strconv.Itoa(nsdPort)+`",zone="example.org."}`); n < float64(len(steps)) {
		t.Errorf("NOTIFY acknowledged %v times, want at least %d", n, len(steps))
	}
}

// TestTransferRefused: AXFR from an address that is not a secondary, or
// without the key, is refused.
func TestTransferRefused(t *testing.T) {
	ts := startTargets(t, 1)
	s := startServer(t, ts, "")
	for _, qt := range []uint16{dns.TypeAXFR, dns.TypeIXFR} {
		r := ask(t, "tcp", s.tcp, "example.org.", qt)
		if r.Rcode != dns.RcodeRefused || len(r.Answer) != 0 {
			t.Errorf("%s from a stranger: %v", dns.TypeToString[qt], r)
		}
	}
	if r := ask(t, "udp", s.udp, "example.org.", dns.TypeAXFR); r.Rcode != dns.RcodeRefused {
		t.Errorf("AXFR over UDP: %v", r)
	}
}

func freeUDPPort(t *testing.T) int {
	t.Helper()
	for range 50 {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			continue
		}
		p := c.LocalAddr().(*net.UDPAddr).Port
		c.Close()
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			continue
		}
		l.Close()
		return p
	}
	t.Fatal("no free port")
	return 0
}

func scrape(t *testing.T, admin string) string {
	t.Helper()
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func metricValue(text, series string) float64 {
	re := regexp.MustCompile("(?m)^" + regexp.QuoteMeta(series) + ` ([0-9.e+]+)$`)
	m := re.FindStringSubmatch(text)
	if m == nil {
		return 0
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	return v
}

func grepLines(text, prefix string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
