package main

import (
	"bytes"
	"fmt"
	"html"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// syntheticRun is a drill as the lab would record it, without the lab:
// 8 s of load (a lookup and a request every 10 ms, four users) with a
// fault from 2 s to 5 s. ns1 stops answering from 2 s to 4 s (lookups
// go to ns2, and fail outright from 2.5 s to 2.8 s); user d_1's requests
// fail from 2.2 s to 3 s, and one write of d_0 fails at 4 s. fe1's VIP
// goes to fe2 at 2.4 s, is held by nobody for 0.3 s before and by both
// for 0.2 s when it comes back at 5.2 s.
func syntheticRun(t0 time.Time) *drillRun {
	d := &drillRun{users: "d", start: t0, faultAt: t0.Add(2 * time.Second), healAt: t0.Add(5 * time.Second),
		healedAt: t0.Add(5500 * time.Millisecond), end: t0.Add(8 * time.Second)}
	d.report.DNSByServer = map[string]int{}
	sec := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	in := func(at time.Time, from, to float64) bool { return !at.Before(sec(from)) && at.Before(sec(to)) }
	for n := 0; n < 800; n++ {
		at := t0.Add(time.Duration(n) * 10 * time.Millisecond)
		dns := op{At: at, Took: time.Millisecond, Kind: "dns", OK: true, Server: "ns1"}
		switch {
		case in(at, 2.5, 2.8):
			dns = op{At: at, Took: 8 * time.Millisecond, Kind: "dns", Err: "no server answered"}
		case in(at, 2, 4):
			dns.Server = "ns2"
		}
		d.report.Ops = append(d.report.Ops, dns)
		if !dns.OK {
			continue
		}
		d.report.DNSByServer[dns.Server]++
		user := fmt.Sprintf("d_%d", n%4)
		kind := []string{"write", "read"}[n%2]
		ok := !(user == "d_1" && in(at, 2.2, 3)) && !(user == "d_0" && in(at, 4, 4.01))
		o := op{At: at.Add(4 * time.Millisecond), Took: 2 * time.Millisecond, Kind: kind, OK: ok, User: user}
		if !ok {
			o.Err = "connection refused"
		}
		d.report.Ops = append(d.report.Ops, o)
		if ok && kind == "write" {
			d.report.Acked++
		}
	}
	for s := 0.0; s < 8; s += 0.1 {
		h := map[string][]string{"198.51.100.20": {"fe2"}, "198.51.100.30": {"fe3"}, "198.51.100.40": {"fe4"}}
		switch {
		case s >= 2.1 && s < 2.4:
		case s >= 2.4 && s < 5.2:
			h["198.51.100.10"] = []string{"fe2"}
		case s >= 5.2 && s < 5.4:
			h["198.51.100.10"] = []string{"fe1", "fe2"}
		default:
			h["198.51.100.10"] = []string{"fe1"}
		}
		d.samples = append(d.samples, holderSample{At: sec(s), Holders: h})
	}
	d.before, d.during, d.after = d.samples[0].Holders, d.samples[40].Holders, d.samples[79].Holders
	d.note("a note")
	d.tally()
	return d
}

var figureRE = regexp.MustCompile(`<td class="n" data-key="([a-z-]+)">([^<]*)</td>`)

// figuresOf reads the numbers of a report's table.
func figuresOf(t *testing.T, html string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, m := range figureRE.FindAllStringSubmatch(html, -1) {
		out[m[1]] = m[2]
	}
	if len(out) == 0 {
		t.Fatalf("no figures in the report:\n%s", html)
	}
	return out
}

// tableFigures reads the same numbers from the printed text table.
func tableFigures(t *testing.T, text string) map[string]string {
	t.Helper()
	out := map[string]string{}
	patterns := map[string]string{
		`client HTTP\s+(\d+) of (\d+) requests failed; longest outage \(one user\) ([\d.]+s)`:           "http-failed http-total http-outage",
		`client DNS\s+(\d+) of (\d+) lookups failed; longest outage ([\d.]+s); answered by map\[(.*)\]`: "dns-failed dns-total dns-outage dns-answered",
		`writes\s+(\d+) acknowledged, (\d+) lost`:                                                       "writes-acked writes-lost",
		`VIPs before\s+(.*)`:   "vips-before",
		`VIPs in fault\s+(.*)`: "vips-fault",
		`VIPs after\s+(.*)`:    "vips-after",
	}
	for pat, keys := range patterns {
		m := regexp.MustCompile(pat).FindStringSubmatch(text)
		if m == nil {
			t.Fatalf("the table has no line like %s:\n%s", pat, text)
		}
		for i, k := range strings.Fields(keys) {
			out[k] = strings.TrimSpace(m[i+1])
		}
	}
	// The table prints the servers as a Go map: "ns1:12 ns2:3".
	out["dns-answered"] = strings.NewReplacer(":", " ", " ns", ", ns").Replace(out["dns-answered"])
	return out
}

var dataRE = regexp.MustCompile(`class="(req|dns) [a-z0-9]+" data-([a-z0-9]+)="(\d+)" data-([a-z0-9]+)="(\d+)"(?: data-([a-z0-9]+)="(\d+)")?`)

// timelineCounts sums the counts the timeline's rectangles carry:
// "req ok", "req fail", "dns ns1", "dns ns2", "dns fail".
func timelineCounts(html string) map[string]int {
	out := map[string]int{}
	for _, m := range dataRE.FindAllStringSubmatch(html, -1) {
		for i := 2; i+1 < len(m); i += 2 {
			if m[i] == "" {
				continue
			}
			n, _ := strconv.Atoi(m[i+1])
			out[m[1]+" "+m[i]] += n
		}
	}
	return out
}

// TestDrillReport: a drill's HTML report shows the text table's numbers,
// and its timeline accounts for every request and lookup of the table.
func TestDrillReport(t *testing.T) {
	d := syntheticRun(time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC))
	dr := drill{name: "dns-down", what: "SIGKILL dnslb on ns1"}
	html := written(t, "drill-dns-down.html", func(path string) error { return writeReport(path, drillResult{drill: dr, run: d}) })
	var table bytes.Buffer
	d.print(&table)
	want, got := tableFigures(t, table.String()), figuresOf(t, html)
	for k, v := range want {
		if got[k] != v {
			t.Errorf("report %s = %q, the table says %q", k, got[k], v)
		}
	}
	// The table's own numbers, worked out from the synthetic run: d_1's
	// 20 requests from 2.2 s to 3 s fail, but for the 7 whose lookups
	// failed first, and d_0's one; 30 lookups fail.
	if got["http-failed"] != "14" || got["dns-failed"] != "30" || got["http-outage"] != "0.80s" {
		t.Errorf("figures %v", got)
	}
	c := timelineCounts(html)
	failed, _ := strconv.Atoi(got["http-failed"])
	total, _ := strconv.Atoi(got["http-total"])
	dnsFailed, _ := strconv.Atoi(got["dns-failed"])
	dnsTotal, _ := strconv.Atoi(got["dns-total"])
	if c["req fail"] != failed || c["req ok"]+c["req fail"] != total {
		t.Errorf("timeline requests: %d failed of %d, the table %d of %d", c["req fail"], c["req ok"]+c["req fail"], failed, total)
	}
	if c["dns fail"] != dnsFailed || c["dns ns1"]+c["dns ns2"]+c["dns fail"] != dnsTotal ||
		c["dns ns1"] != d.report.DNSByServer["ns1"] || c["dns ns2"] != d.report.DNSByServer["ns2"] {
		t.Errorf("timeline lookups: %v, the table %d failed of %d, by server %v", c, dnsFailed, dnsTotal, d.report.DNSByServer)
	}
	for _, want := range []string{
		`data-vip="198.51.100.10" data-holder="fe1"`, `data-vip="198.51.100.10" data-holder="fe2"`,
		`data-vip="198.51.100.10" data-holder="nobody"`, `data-vip="198.51.100.10" data-holder="fe1+fe2"`,
		`class="fault"`, `>fault</text>`, `>heal</text>`, `>healed</text>`, "<title>drill dns-down: ok</title>", "note: a note",
	} {
		if !strings.Contains(html, want) {
			t.Errorf("the report lacks %s", want)
		}
	}
	// Self-contained: nothing is fetched from anywhere.
	for _, ref := range []string{"src=", "<link", "@import", "url(", "<script"} {
		if strings.Contains(html, ref) {
			t.Errorf("the report refers to something outside it (%s)", ref)
		}
	}
}

// TestDrillSummary: the page of a run of drills has the summary table,
// and each drill's picture and numbers, a failed one included.
func TestDrillSummary(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	ok := syntheticRun(t0)
	bad := syntheticRun(t0.Add(time.Minute))
	bad.fail("an acknowledged write was lost")
	results := []drillResult{
		{drill: drill{name: "dns-down", what: "SIGKILL dnslb on ns1"}, run: ok},
		{drill: drill{name: "link-down", what: "take fe1's link down"}, run: bad},
		{drill: drill{name: "pair-down", what: "kill both"}, err: errNotUp},
	}
	page := written(t, "drills.html", func(path string) error { return writeSummary(path, results) })
	var table bytes.Buffer
	printSummary(&table, results)
	if !strings.Contains(page, html.EscapeString(table.String())) {
		t.Errorf("the page lacks the summary table:\n%s", table.String())
	}
	if n := strings.Count(page, `<svg class="timeline"`); n != 2 {
		t.Errorf("%d timelines on the page, want 2 (the drill that did not start has none)", n)
	}
	for _, want := range []string{`id="dns-down"`, `href="drill-link-down.html"`, "FAILED: an acknowledged write was lost",
		"error: " + errNotUp.Error(), `id="figures-link-down"`} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %s", want)
		}
	}
}

// written runs write with a path in a temporary directory and returns
// what it wrote there.
func written(t *testing.T, name string, write func(path string) error) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := write(path); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
