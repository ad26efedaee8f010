package monitoring

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/ringfront/ringfront/vipwatch/nslab"
)

// prometheusSeries are series Prometheus itself makes, which no daemon
// exports: up per scrape target, ALERTS per alert.
var prometheusSeries = map[string][]string{
	"up":     nil,
	"ALERTS": {"alertname", "alertstate", "severity"},
}

// targetLabels are the labels Prometheus adds to every series it
// scrapes.
var targetLabels = []string{"job", "instance"}

// exported maps each series name a daemon exported to the label names
// its series carry.
type exported map[string]map[string]bool

// TestQueriesUseExportedMetrics runs each daemon as it ships (the built
// binaries, as children on loopback; vipwatch as a pair in network
// namespaces, as root), scrapes its /metrics, and checks that every
// metric the alert rules and the dashboards use is exported, with the
// labels their matchers and groupings name. Each scrape also passes
// promlint. The daemons' series are initialised at zero where their
// labels are known, so a fresh daemon exports them all.
func TestQueriesUseExportedMetrics(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts the daemons; not in -short")
	}
	bin := buildDaemons(t)
	scrapes := map[string]string{} // daemon -> its /metrics
	scrapes["dnslb"] = scrapeDNSLB(t, bin)
	scrapes["appnode"] = scrapeAppnode(t, bin)
	if err := nslab.RequireRoot(); err != nil {
		t.Logf("vipwatch's metrics are not checked: %v (CI runs as root)", err)
	} else {
		scrapes["vipwatch"] = scrapeVIPWatch(t, bin)
	}
	all := exported{}
	for daemon, text := range scrapes {
		problems, err := promlint.New(strings.NewReader(text)).Lint()
		if err != nil {
			t.Fatalf("%s: promlint: %v", daemon, err)
		}
		for _, p := range problems {
			t.Errorf("%s: promlint: %s: %s", daemon, p.Metric, p.Text)
		}
		for name, labels := range parseExposition(t, daemon, text) {
			if all[name] == nil {
				all[name] = map[string]bool{}
			}
			for l := range labels {
				all[name][l] = true
			}
		}
	}
	for name, labels := range prometheusSeries {
		all[name] = map[string]bool{}
		for _, l := range labels {
			all[name][l] = true
		}
	}
	queries := ruleQueries(t)
	queries = append(queries, dashboardQueries(t)...)
	if len(queries) < 50 {
		t.Fatalf("found only %d queries in rules/ and dashboards/", len(queries))
	}
	for _, q := range queries {
		names, err := parseQuery(q.expr)
		if err != nil {
			t.Errorf("%s: %v", q.where, err)
			continue
		}
		checkQuery(t, q, append(names.Selectors, q.extra...), names.Grouping, all, scrapes)
	}
}

// checkQuery checks one query's metrics and labels against what the
// daemons export. Metrics of a daemon that was not scraped (vipwatch,
// without root) are not checked.
func checkQuery(t *testing.T, q query, sels []selector, grouping []string, all exported, scrapes map[string]string) {
	t.Helper()
	have := map[string]bool{} // labels of the query's metrics
	for _, l := range targetLabels {
		have[l] = true
	}
	for _, s := range sels {
		if s.Metric == "" {
			t.Errorf("%s: a selector without a metric name in %q", q.where, q.expr)
			continue
		}
		daemon, _, _ := strings.Cut(s.Metric, "_")
		if _, scraped := scrapes[daemon]; !scraped && slices.Contains([]string{"dnslb", "vipwatch", "appnode"}, daemon) {
			continue
		}
		labels, ok := all[s.Metric]
		if !ok {
			t.Errorf("%s: %s is exported by no daemon (in %q)", q.where, s.Metric, q.expr)
			continue
		}
		for l := range labels {
			have[l] = true
		}
		for _, l := range s.Labels {
			if !labels[l] && !slices.Contains(targetLabels, l) && l != "__name__" {
				t.Errorf("%s: %s has no label %s (it has %v) in %q", q.where, s.Metric, l, sortedKeys(labels), q.expr)
			}
		}
	}
	for _, l := range grouping {
		if !have[l] {
			t.Errorf("%s: groups by %s, which none of its metrics has, in %q", q.where, l, q.expr)
		}
	}
}

// query is one PromQL expression of a rule or dashboard, and where it
// is; extra are selectors found outside the expression (a template
// variable's label).
type query struct {
	where, expr string
	extra       []selector
}

func ruleQueries(t *testing.T) []query {
	var out []query
	for _, f := range ruleFiles(t) {
		for _, r := range readRules(t, f) {
			out = append(out, query{where: f + ": " + r.Alert + r.Record, expr: r.Expr})
		}
	}
	return out
}

// labelValues is Grafana's label_values(metric, label) and
// label_values(label).
var labelValues = regexp.MustCompile(`^\s*label_values\(\s*(?:(.*),\s*)?([a-zA-Z_][a-zA-Z0-9_]*)\s*\)\s*$`)

func dashboardQueries(t *testing.T) []query {
	var out []query
	for _, f := range dashboardFiles(t) {
		d := readDashboard(t, f)
		for _, p := range d.allPanels() {
			for _, tg := range p.Targets {
				out = append(out, query{where: fmt.Sprintf("%s: panel %q", f, p.Title), expr: tg.Expr})
			}
		}
		for _, v := range d.Templating.List {
			if v.Type != "query" {
				continue
			}
			where := fmt.Sprintf("%s: variable %s", f, v.Name)
			m := labelValues.FindStringSubmatch(v.Definition)
			if m == nil {
				out = append(out, query{where: where, expr: v.Definition})
				continue
			}
			if m[1] == "" {
				t.Errorf("%s: label_values(%s) without a metric: name the metric", where, m[2])
				continue
			}
			// The label belongs to the metric: check it as a matcher.
			names, err := parseQuery(m[1])
			if err != nil || len(names.Selectors) != 1 {
				t.Errorf("%s: %q is not one metric selector (%v)", where, m[1], err)
				continue
			}
			sel := names.Selectors[0]
			sel.Labels = append(sel.Labels, m[2])
			out = append(out, query{where: where, extra: []selector{sel}})
		}
	}
	return out
}

// parseExposition returns the series names of a /metrics page with the
// label names each carries (histograms as their _bucket, _sum and
// _count series).
func parseExposition(t *testing.T, daemon, text string) exported {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatalf("%s: parsing /metrics: %v", daemon, err)
	}
	out := exported{}
	add := func(name string, m *dto.Metric, extra ...string) {
		if out[name] == nil {
			out[name] = map[string]bool{}
		}
		for _, l := range m.GetLabel() {
			out[name][l.GetName()] = true
		}
		for _, l := range extra {
			out[name][l] = true
		}
	}
	for name, mf := range mfs {
		for _, m := range mf.GetMetric() {
			switch mf.GetType() {
			case dto.MetricType_HISTOGRAM:
				add(name+"_bucket", m, "le")
				add(name+"_sum", m)
				add(name+"_count", m)
			case dto.MetricType_SUMMARY:
				add(name, m, "quantile")
				add(name+"_sum", m)
				add(name+"_count", m)
			default:
				add(name, m)
			}
		}
	}
	return out
}

// buildDaemons builds the three daemons into a temporary directory.
func buildDaemons(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
	args := []string{"build", "-o", dir + "/"}
	for _, d := range []string{"dnslb", "vipwatch", "appnode"} {
		args = append(args, "github.com/ringfront/ringfront/"+d)
	}
	if out, err := exec.Command(gobin, args...).CombinedOutput(); err != nil {
		t.Fatalf("building the daemons: %v\n%s", err, out)
	}
	return dir
}

// freePort returns a loopback port that is free for TCP and UDP.
func freePort(t *testing.T) int {
	t.Helper()
	for range 100 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		if c, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
			c.Close()
			return port
		}
	}
	t.Fatal("no free port")
	return 0
}

// startDaemon runs a daemon as a child in its own process group, with
// its output in a file, and stops it (SIGTERM, then SIGKILL) when the
// test ends.
func startDaemon(t *testing.T, name string, args ...string) {
	t.Helper()
	logf, err := os.Create(filepath.Join(t.TempDir(), name+".log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// The daemons read no overrides but the test's own.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "DNSLB_") && !strings.HasPrefix(kv, "APPNODE_") && !strings.HasPrefix(kv, "VIPWATCH_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("%s's log:\n%s", name, b)
		}
	})
}

// waitReady polls admin's /readyz until it answers 200.
func waitReady(t *testing.T, name, admin string) {
	t.Helper()
	c := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := c.Get("http://" + admin + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s is not ready within 30s: %v", name, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func scrape(t *testing.T, admin string) string {
	t.Helper()
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func writeFile(t *testing.T, path, body string, mode os.FileMode) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), mode); err != nil {
		t.Fatal(err)
	}
	return path
}

// scrapeDNSLB runs dnslb with a service of two targets (one up, one
// down) and a secondary with a TSIG key, and scrapes it.
func scrapeDNSLB(t *testing.T, bin string) string {
	t.Helper()
	dir := t.TempDir()
	key := writeFile(t, filepath.Join(dir, "xfr.key"), "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0Cg==\n", 0o600)
	target, err := net.Listen("tcp", "127.0.0.1:0") // the target that is up
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { target.Close() })
	go func() {
		for {
			c, err := target.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	admin := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	cfg := writeFile(t, filepath.Join(dir, "dnslb.yaml"), fmt.Sprintf(`listen: ["127.0.0.1:%d"]
admin: {listen: %q}
tsig_keys: [{name: xfr, secret_file: %s}]
zones:
  - origin: example.org.
    soa: {mname: ns1.example.org., rname: hostmaster.example.org.}
    ns: [{name: ns1, addresses: ["198.51.100.2"]}]
    secondaries: [{address: "127.0.0.1:%d", tsig_key: xfr}]
    services:
      - name: www
        targets: ["127.0.0.1", "127.0.0.2"]
        check: {type: tcp, port: %d, interval: 200ms, timeout: 100ms, rise: 1, fall: 1}
`, freePort(t), admin, key, freePort(t), target.Addr().(*net.TCPAddr).Port), 0o600)
	startDaemon(t, "dnslb", filepath.Join(bin, "dnslb"), "serve", "-c", cfg)
	waitReady(t, "dnslb", admin)
	return scrape(t, admin)
}

// scrapeAppnode runs a two-member appnode cluster and scrapes one
// member once it sees the other alive.
func scrapeAppnode(t *testing.T, bin string) string {
	t.Helper()
	dir := t.TempDir()
	key := writeFile(t, filepath.Join(dir, "cluster.key"), "cluster secret\n", 0o600)
	ports := []int{freePort(t), freePort(t)}
	var members []string
	for _, p := range ports {
		members = append(members, fmt.Sprintf("%q", fmt.Sprintf("127.0.0.1:%d", p)))
	}
	var admins []string
	for i, p := range ports {
		admin := fmt.Sprintf("127.0.0.1:%d", freePort(t))
		admins = append(admins, admin)
		cfg := writeFile(t, filepath.Join(dir, fmt.Sprintf("appnode%d.yaml", i)), fmt.Sprintf(`listen: "127.0.0.1:%d"
members: [%s]
data_dir: %s
cluster_secret_file: %s
admin: {listen: %q}
gossip: {bind: "127.0.0.1:%d", probe_interval: 50ms}
`, p, strings.Join(members, ", "), filepath.Join(dir, fmt.Sprint("data", i)), key, admin, freePort(t)), 0o600)
		startDaemon(t, fmt.Sprint("appnode", i), filepath.Join(bin, "appnode"), "serve", "-c", cfg)
	}
	for i, a := range admins {
		waitReady(t, fmt.Sprint("appnode", i), a)
	}
	var text string
	deadline := time.Now().Add(20 * time.Second)
	for {
		text = scrape(t, admins[0])
		if strings.Contains(text, "\nappnode_members_alive 2\n") {
			return text
		}
		if time.Now().After(deadline) {
			t.Fatalf("appnode0 does not see both members alive within 20s:\n%s", grepLines(text, "appnode_member"))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// scrapeVIPWatch runs a vipwatch pair with a witness in network
// namespaces and scrapes fe1 once each holds its home VIP.
func scrapeVIPWatch(t *testing.T, bin string) string {
	t.Helper()
	lab, err := nslab.New(fmt.Sprintf("%dm", os.Getpid()%100000), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := lab.Close(); err != nil {
			t.Errorf("removing the namespaces: %v", err)
		}
	})
	v := nslab.VIPWatch{Binary: filepath.Join(bin, "vipwatch"), Interval: 50 * time.Millisecond, DeadAfter: 200 * time.Millisecond,
		GARPCount: 1, GARPInterval: 50 * time.Millisecond,
		Extra: fmt.Sprintf("witness: {targets: [%q], interval: 200ms, timeout: 100ms}\n", nslab.WitnessIP.Addr())}
	for _, node := range []string{"fe1", "fe2"} {
		if _, err := lab.StartVIPWatch(v, node, true); err != nil {
			t.Fatal(err)
		}
	}
	for node, vip := range map[string]netip.Prefix{"fe1": nslab.VIP1, "fe2": nslab.VIP2} {
		if err := nslab.WaitFor(10*time.Second, node+" holding its VIP", func() (bool, error) { return lab.Holds(lab.NS(node), vip) }); err != nil {
			t.Fatal(err)
		}
	}
	out, err := lab.Run(context.Background(), lab.FE1, "curl", "-sf", "-m", "5", "http://127.0.0.1:8054/metrics")
	if err != nil {
		t.Fatal(err)
	}
	return out
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

// dashboard is the part of a Grafana dashboard the tests read.
type dashboard struct {
	UID        string   `json:"uid"`
	Title      string   `json:"title"`
	Tags       []string `json:"tags"`
	Panels     []panel  `json:"panels"`
	Templating struct {
		List []struct {
			Name       string `json:"name"`
			Type       string `json:"type"`
			Query      any    `json:"query"`
			Definition string `json:"definition"`
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID         int                      `json:"id"`
	Type       string                   `json:"type"`
	Title      string                   `json:"title"`
	Datasource json.RawMessage          `json:"datasource"`
	GridPos    struct{ H, W, X, Y int } `json:"gridPos"`
	Targets    []struct {
		RefID      string          `json:"refId"`
		Expr       string          `json:"expr"`
		Datasource json.RawMessage `json:"datasource"`
	} `json:"targets"`
	Panels []panel `json:"panels"` // a collapsed row's
}

func (d *dashboard) allPanels() []panel {
	var out []panel
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			out = append(out, p)
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return out
}

func dashboardFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("dashboards/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no dashboards in dashboards/: %v", err)
	}
	return files
}

func readDashboard(t *testing.T, path string) *dashboard {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return &d
}

// TestDashboards: each dashboard has a unique uid and title, the
// ringfront tag, a Prometheus data source variable that every query
// uses, unique panel ids, panels inside the 24-column grid, and a query
// in every panel.
func TestDashboards(t *testing.T) {
	uids, titles := map[string]string{}, map[string]string{}
	for _, f := range dashboardFiles(t) {
		d := readDashboard(t, f)
		if d.UID == "" || d.Title == "" {
			t.Errorf("%s: no uid or title", f)
		}
		if other, dup := uids[d.UID]; dup {
			t.Errorf("%s: uid %s is also %s's", f, d.UID, other)
		}
		if other, dup := titles[d.Title]; dup {
			t.Errorf("%s: title %q is also %s's", f, d.Title, other)
		}
		uids[d.UID], titles[d.Title] = f, f
		if !slices.Contains(d.Tags, "ringfront") {
			t.Errorf("%s: no ringfront tag (the dashboards link to each other by it)", f)
		}
		if len(d.Templating.List) == 0 || d.Templating.List[0].Name != "datasource" || d.Templating.List[0].Type != "datasource" {
			t.Errorf("%s: the first variable is not the Prometheus data source", f)
		}
		ids := map[int]bool{}
		for _, p := range d.allPanels() {
			where := fmt.Sprintf("%s: panel %d %q", f, p.ID, p.Title)
			if ids[p.ID] {
				t.Errorf("%s: id used twice", where)
			}
			ids[p.ID] = true
			if p.Title == "" {
				t.Errorf("%s: no title", where)
			}
			if p.GridPos.W < 1 || p.GridPos.X < 0 || p.GridPos.X+p.GridPos.W > 24 || p.GridPos.H < 1 {
				t.Errorf("%s: gridPos %+v outside the 24-column grid", where, p.GridPos)
			}
			if p.Type == "row" {
				continue
			}
			if !strings.Contains(string(p.Datasource), `"${datasource}"`) {
				t.Errorf("%s: data source %s, want the ${datasource} variable", where, p.Datasource)
			}
			if len(p.Targets) == 0 {
				t.Errorf("%s: no query", where)
			}
			for _, tg := range p.Targets {
				if strings.TrimSpace(tg.Expr) == "" {
					t.Errorf("%s: query %s is empty", where, tg.RefID)
				}
			}
		}
	}
}
