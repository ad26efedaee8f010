package server

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/ringfront/ringfront/dnslb/config"
	iconfig "github.com/ringfront/ringfront/internal/config"
	"github.com/ringfront/ringfront/internal/daemon"
)

// target is an HTTP health endpoint on a loopback address that a test
// can stop and start.
type target struct {
	ip   string
	port int
	mu   sync.Mutex
	srv  *http.Server
}

func (tg *target) start(t *testing.T) {
	t.Helper()
	tg.mu.Lock()
	defer tg.mu.Unlock()
	ln, err := net.Listen("tcp", fmt.Sprintf("%s:%d", tg.ip, tg.port))
	if err != nil {
		t.Fatalf("target %s: %v", tg.ip, err)
	}
	tg.port = ln.Addr().(*net.TCPAddr).Port
	tg.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "serving")
	})}
	go tg.srv.Serve(ln)
}

func (tg *target) stop() {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	if tg.srv != nil {
		tg.srv.Close()
		tg.srv = nil
	}
}

// startTargets starts HTTP targets on 127.0.0.21.. sharing one port.
func startTargets(t *testing.T, n int) []*target {
	t.Helper()
	for attempt := 0; attempt < 20; attempt++ {
		ts := []*target{{ip: "127.0.0.21"}}
		ts[0].start(t)
		ok := true
		for i := 1; i < n; i++ {
			tg := &target{ip: fmt.Sprintf("127.0.0.%d", 21+i), port: ts[0].port}
			ln, err := net.Listen("tcp", fmt.Sprintf("%s:%d", tg.ip, tg.port))
			if err != nil {
				ok = false
				break
			}
			ln.Close()
			tg.start(t)
			ts = append(ts, tg)
		}
		if ok {
			t.Cleanup(func() {
				for _, tg := range ts {
					tg.stop()
				}
			})
			return ts
		}
		for _, tg := range ts {
			tg.stop()
		}
	}
	t.Fatal("no common free port for targets")
	return nil
}

const serverConfig = `
listen: ["127.0.0.1:0"]
admin: {listen: "127.0.0.1:0"}
sockets: 2
zones:
  - origin: example.org.
    soa: {mname: ns1.example.org., rname: hostmaster.example.org.}
    ns: [{name: ns1, addresses: ["198.51.100.2"]}]
    records:
      - "mail 300 IN A 198.51.100.25"
%s
    services:
      - name: www
        ttl: 20
        degraded_ttl: 5
        max_answers: 4
        targets: [%s]
        check: {type: http, port: %d, path: /healthz, body: serving, interval: 100ms, timeout: 80ms, rise: 2, fall: 3}
`

func writeConfig(t *testing.T, path string, ts []*target, extra string) {
	t.Helper()
	var ips []string
	for _, tg := range ts {
		ips = append(ips, `"`+tg.ip+`"`)
	}
	body := fmt.Sprintf(serverConfig, extra, strings.Join(ips, ", "), ts[0].port)
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
}

func loadFile(path string) func() (*config.Config, error) {
	return func() (*config.Config, error) {
		return config.Load(iconfig.Options{File: path})
	}
}

type testServer struct {
	*Server
	udp, tcp, admin string
	cfgPath         string
}

func startServer(t *testing.T, ts []*target, extra string) *testServer {
	t.Helper()
	return startServerWith(t, ts, "", extra)
}

// startServerWith starts a server with top-level config lines prepended
// and extra zone records.
func startServerWith(t *testing.T, ts []*target, top, extra string) *testServer {
	t.Helper()
	path := filepath.Join(t.TempDir(), "dnslb.yaml")
	writeConfig(t, path, ts, extra)
	if top != "" {
		b, _ := os.ReadFile(path)
		os.WriteFile(path, append([]byte(top), b...), 0o600)
	}
	s, stop, err := startOnce(t, path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	return s
}

func ask(t *testing.T, net, addr, name string, qtype uint16) *dns.Msg {
	t.Helper()
	c := &dns.Client{Net: net, Timeout: 2 * time.Second}
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	r, _, err := c.Exchange(m, addr)
	if err != nil {
		t.Fatalf("%s query %s: %v", net, name, err)
	}
	return r
}

func answered(r *dns.Msg) []string {
	var out []string
	for _, rr := range r.Answer {
		if a, ok := rr.(*dns.A); ok {
			out = append(out, a.A.String())
		}
	}
	slices.Sort(out)
	return out
}

// waitFor polls cond until it holds or the deadline passes, and returns
// how long it took.
func waitFor(t *testing.T, what string, limit time.Duration, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for time.Since(start) < limit {
		if cond() {
			return time.Since(start)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s: not within %v", what, limit)
	return 0
}

func TestServeHealthFailover(t *testing.T) {
	ts := startTargets(t, 3)
	s := startServer(t, ts, "")
	all := []string{"127.0.0.21", "127.0.0.22", "127.0.0.23"}

	// Ready means the first health round is done: the first answer
	// already has every healthy target, over UDP and TCP.
	for _, n := range []string{"udp", "tcp"} {
		r := ask(t, n, s.udp, "www.example.org.", dns.TypeA)
		if got := answered(r); !slices.Equal(all, got) {
			t.Errorf("%s answer = %v, want %v", n, got, all)
		}
		if !r.Authoritative || r.Answer[0].Header().Ttl != 20 {
			t.Errorf("%s: aa=%v ttl=%d, want aa and ttl 20", n, r.Authoritative, r.Answer[0].Header().Ttl)
		}
	}

	// Kill one target: it leaves the answers within interval*fall+interval.
	ts[1].stop()
	killed := time.Now()
	took := waitFor(t, "dead target leaves the answers", 2*time.Second, func() bool {
		return !slices.Contains(answered(ask(t, "udp", s.udp, "www.example.org.", dns.TypeA)), "127.0.0.22")
	})
	if limit := 100*time.Millisecond*3 + 100*time.Millisecond + 80*time.Millisecond; took > limit+50*time.Millisecond {
		t.Errorf("dead target answered for %v after it died, want at most ~%v", took, limit)
	}
	r := ask(t, "udp", s.udp, "www.example.org.", dns.TypeA)
	if got, want := answered(r), []string{"127.0.0.21", "127.0.0.23"}; !slices.Equal(want, got) {
		t.Errorf("answer after kill = %v, want %v", got, want)
	}
	if got := r.Answer[0].Header().Ttl; got != 5 {
		t.Errorf("TTL while degraded = %d, want degraded_ttl 5", got)
	}
	t.Logf("dead target left the answers %v after it died", time.Since(killed).Round(time.Millisecond))

	// Bring it back: it returns after rise=2 checks.
	ts[1].start(t)
	took = waitFor(t, "target returns", 2*time.Second, func() bool {
		return slices.Contains(answered(ask(t, "udp", s.udp, "www.example.org.", dns.TypeA)), "127.0.0.22")
	})
	if took < 100*time.Millisecond {
		t.Errorf("target returned after %v, before rise=2 checks could pass", took)
	}
	if got := ask(t, "udp", s.udp, "www.example.org.", dns.TypeA).Answer[0].Header().Ttl; got != 20 {
		t.Errorf("TTL after recovery = %d, want 20", got)
	}

	// All down: fail open with every target.
	for _, tg := range ts {
		tg.stop()
	}
	waitFor(t, "all targets down", 2*time.Second, func() bool {
		for _, st := range s.targetStatuses() {
			if st.State != "down" {
				return false
			}
		}
		return true
	})
	if got := answered(ask(t, "udp", s.udp, "www.example.org.", dns.TypeA)); !slices.Equal(all, got) {
		t.Errorf("all-down answer = %v, want every target (fail open)", got)
	}
}

func TestServeRoundRobin(t *testing.T) {
	ts := startTargets(t, 3)
	s := startServer(t, ts, "")
	firsts := map[string]int{}
	for range 30 {
		r := ask(t, "udp", s.udp, "www.example.org.", dns.TypeA)
		firsts[r.Answer[0].(*dns.A).A.String()]++
	}
	for _, tg := range ts {
		if firsts[tg.ip] != 10 {
			t.Errorf("first answer counts = %v, want 10 each", firsts)
			break
		}
	}
}

func TestServeDrainAndAdmin(t *testing.T) {
	ts := startTargets(t, 2)
	s := startServer(t, ts, "")
	ctx := t.Context()
	var st TargetStatus
	if err := daemon.AdminRequest(ctx, "POST", s.admin, nil, "/v1/targets/www.example.org./127.0.0.21/drain", &st); err != nil {
		t.Fatal(err)
	}
	if !st.Drained || st.Answered {
		t.Errorf("after drain: %+v", st)
	}
	if got := answered(ask(t, "udp", s.udp, "www.example.org.", dns.TypeA)); !slices.Equal([]string{"127.0.0.22"}, got) {
		t.Errorf("answer with .21 drained = %v", got)
	}
	// Draining overrides even fail-open.
	ts[1].stop()
	waitFor(t, ".22 down", 2*time.Second, func() bool {
		for _, st := range s.targetStatuses() {
			if st.Address == "127.0.0.22" {
				return st.State == "down"
			}
		}
		return false
	})
	waitFor(t, "drained target stays out while the other is down", 2*time.Second, func() bool {
		got := answered(ask(t, "udp", s.udp, "www.example.org.", dns.TypeA))
		return slices.Equal([]string{"127.0.0.22"}, got)
	})
	if err := daemon.AdminRequest(ctx, "POST", s.admin, nil, "/v1/targets/www.example.org./127.0.0.21/undrain", &st); err != nil {
		t.Fatal(err)
	}
	if got := answered(ask(t, "udp", s.udp, "www.example.org.", dns.TypeA)); !slices.Equal([]string{"127.0.0.21"}, got) {
		t.Errorf("answer after undrain = %v", got)
	}
	// Errors: unknown target, bad address.
	err := daemon.AdminRequest(ctx, "POST", s.admin, nil, "/v1/targets/www.example.org./127.0.0.99/drain", nil)
	if err == nil || !strings.Contains(err.Error(), "no target") {
		t.Errorf("drain of unknown target: %v", err)
	}
	err = daemon.AdminRequest(ctx, "POST", s.admin, nil, "/v1/targets/www.example.org./nope/drain", nil)
	if err == nil || !strings.Contains(err.Error(), "not an IP address") {
		t.Errorf("drain of bad address: %v", err)
	}
	var list []TargetStatus
	if err := daemon.AdminRequest(ctx, "GET", s.admin, nil, "/v1/targets", &list); err != nil || len(list) != 2 {
		t.Fatalf("targets = %v, %v", list, err)
	}
	if list[0].LastCheck.IsZero() || list[0].Check == "" {
		t.Errorf("target status lacks check details: %+v", list[0])
	}
	// Metrics carry queries, target health and drains.
	resp, err := http.Get("http://" + s.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`dnslb_queries_total{qtype="A",rcode="NOERROR",transport="udp"}`,
		`dnslb_target_up{service="www.example.org.",target="127.0.0.21"} 1`,
		`dnslb_target_up{service="www.example.org.",target="127.0.0.22"} 0`,
		`dnslb_answer_duration_seconds_bucket`,
		`dnslb_health_check_duration_seconds_bucket`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func TestServeReload(t *testing.T) {
	ts := startTargets(t, 3)
	s := startServer(t, ts[:2], "")
	ctx := t.Context()
	serial := func() uint32 {
		return ask(t, "udp", s.udp, "example.org.", dns.TypeSOA).Answer[0].(*dns.SOA).Serial
	}
	before := serial()
	// Add a record and a target.
	writeConfig(t, s.cfgPath, ts, `      - "new 300 IN A 198.51.100.77"`)
	if err := daemon.AdminRequest(ctx, "POST", s.admin, nil, "/v1/reload", nil); err != nil {
		t.Fatal(err)
	}
	// The new target was checked before the new config took over.
	if got := answered(ask(t, "udp", s.udp, "www.example.org.", dns.TypeA)); len(got) != 3 {
		t.Errorf("answer right after reload = %v, want all 3 targets", got)
	}
	if got := answered(ask(t, "udp", s.udp, "new.example.org.", dns.TypeA)); !slices.Equal([]string{"198.51.100.77"}, got) {
		t.Errorf("new record = %v", got)
	}
	if after := serial(); after <= before {
		t.Errorf("serial %d -> %d, want it to increase on reload", before, after)
	}
	// An invalid config is rejected and the old one keeps serving.
	os.WriteFile(s.cfgPath, []byte("zones: [{origin: example.org., bogus: 1}]\n"), 0o600)
	err := daemon.AdminRequest(ctx, "POST", s.admin, nil, "/v1/reload", nil)
	if err == nil || !strings.Contains(err.Error(), "bogus: unknown key") {
		t.Errorf("reload of a bad config = %v, want an error naming the key", err)
	}
	if got := answered(ask(t, "udp", s.udp, "new.example.org.", dns.TypeA)); len(got) != 1 {
		t.Errorf("old config not serving after a rejected reload: %v", got)
	}
}

func TestServeTruncationAndTCP(t *testing.T) {
	ts := startTargets(t, 1)
	var recs []string
	for i := range 40 {
		recs = append(recs, fmt.Sprintf(`      - "big 300 IN A 198.51.100.%d"`, 100+i))
	}
	s := startServer(t, ts, strings.Join(recs, "\n"))
	r := ask(t, "udp", s.udp, "big.example.org.", dns.TypeA)
	if !r.Truncated {
		t.Fatalf("40 A records over plain UDP: tc=%v answers=%d, want TC", r.Truncated, len(r.Answer))
	}
	r = ask(t, "tcp", s.tcp, "big.example.org.", dns.TypeA)
	if r.Truncated || len(r.Answer) != 40 {
		t.Errorf("over TCP: tc=%v answers=%d, want all 40", r.Truncated, len(r.Answer))
	}
	// Pipelined queries on one TCP connection come back, each to its ID.
	conn, err := dns.Dial("tcp", s.tcp)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for i := range 5 {
		m := new(dns.Msg)
		m.SetQuestion("mail.example.org.", dns.TypeA)
		m.Id = uint16(100 + i)
		if err := conn.WriteMsg(m); err != nil {
			t.Fatal(err)
		}
	}
	conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	for i := range 5 {
		r, err := conn.ReadMsg()
		if err != nil {
			t.Fatal(err)
		}
		if r.Id != uint16(100+i) || len(r.Answer) != 1 {
			t.Errorf("pipelined answer %d: id=%d answers=%d", i, r.Id, len(r.Answer))
		}
	}
}

func TestServeDropsMalformed(t *testing.T) {
	ts := startTargets(t, 1)
	s := startServer(t, ts, "")
	c, err := net.Dial("udp", s.udp)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	junk := [][]byte{{}, {1, 2, 3}, []byte(strings.Repeat("\xff", 300)), {0, 1, 0x80, 0, 0, 1, 0, 0, 0, 0, 0, 0, 3, 'w', 'w', 'w', 0, 0, 1, 0, 1}}
	for _, j := range junk {
		c.Write(j)
	}
	// Still answering, and the drops are counted.
	if r := ask(t, "udp", s.udp, "mail.example.org.", dns.TypeA); len(r.Answer) != 1 {
		t.Errorf("not answering after junk: %v", r)
	}
	waitFor(t, "drops counted", time.Second, func() bool {
		var mal, resp uint64
		s.metrics.mu.Lock()
		for _, st := range s.metrics.all {
			mal += st.drops[dropMalformed].Load()
			resp += st.drops[dropResponse].Load()
		}
		s.metrics.mu.Unlock()
		t.Logf("malformed=%d response=%d", mal, resp)
		// The 0xff packet claims to be a response but does not parse.
		return mal == 3 && resp == 1
	})
}

func TestServeRefusesOutOfZoneOverTCP(t *testing.T) {
	ts := startTargets(t, 1)
	s := startServer(t, ts, "")
	r := ask(t, "tcp", s.tcp, "www.example.com.", dns.TypeA)
	if r.Rcode != dns.RcodeRefused || r.Authoritative || r.RecursionAvailable {
		t.Errorf("out-of-zone over TCP: %v", r)
	}
}

func writeFuzzConfig(tb testing.TB, path string) {
	body := fmt.Sprintf(serverConfig, `      - "big 300 IN TXT \"`+strings.Repeat("y", 250)+`\" \"`+strings.Repeat("z", 250)+`\" \"`+strings.Repeat("w", 250)+`\""`, `"127.0.0.21", "2001:db8::1"`, 80)
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		tb.Fatal(err)
	}
}

// mustOpen opens a server for cfg or fails the test.
func mustOpen(t testing.TB, cfg *config.Config, opts Options) *Server {
	t.Helper()
	srv, err := Open(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	return srv
}
