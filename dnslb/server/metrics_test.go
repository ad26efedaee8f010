package server

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
)

// TestMetricsFromTheStart: every labelled series dnslb knows the labels
// of is exported from the first scrape, at zero, so alerts have a series
// to work on; target health is an enum without magic values; a service
// whose targets are all down says it answers fail-open; a secondary's
// transferred serial follows the zone's.
func TestMetricsFromTheStart(t *testing.T) {
	ts := startTargets(t, 2)
	sec := fmt.Sprintf("127.0.0.1:%d", freeUDPPort(t))
	s := startServer(t, ts, `    secondaries: [{address: "`+sec+`"}]`)
	text := scrape(t, s.admin)
	serial := ask(t, "udp", s.udp, "example.org.", dns.TypeSOA).Answer[0].(*dns.SOA).Serial
	for _, want := range []string{
		`dnslb_target_up{service="www.example.org.",target="127.0.0.21"} 1`,
		`dnslb_target_state{service="www.example.org.",state="up",target="127.0.0.21"} 1`,
		`dnslb_target_state{service="www.example.org.",state="down",target="127.0.0.21"} 0`,
		`dnslb_target_state{service="www.example.org.",state="unknown",target="127.0.0.21"} 0`,
		`dnslb_target_drained{service="www.example.org.",target="127.0.0.22"} 0`,
		`dnslb_service_answered_targets{family="ipv4",service="www.example.org."} 2`,
		`dnslb_service_fail_open{family="ipv4",service="www.example.org."} 0`,
		`dnslb_reloads_total{result="ok"} 0`,
		`dnslb_target_state_changes_total{service="www.example.org.",target="127.0.0.22"} 0`,
		`dnslb_reloads_total{result="rejected"} 0`,
		`dnslb_queries_total{qtype="AAAA",rcode="SERVFAIL",transport="tcp"} 0`,
		`dnslb_queries_total{qtype="A",rcode="REFUSED",transport="udp"} 0`,
		`dnslb_health_check_duration_seconds_count{result="fail",service="www.example.org."} 0`,
		`dnslb_transfers_total{result="ok",type="AXFR",zone="example.org."} 0`,
		`dnslb_transfers_total{result="refused",type="IXFR",zone="example.org."} 0`,
		`dnslb_notifies_total{result="failed",secondary="` + sec + `",zone="example.org."}`,
		`dnslb_secondary_serial{secondary="` + sec + `",zone="example.org."} 0`,
	} {
		if !strings.Contains(text, want+"\n") && !strings.Contains(text, want+" ") {
			t.Errorf("first scrape lacks %s", want)
		}
	}
	if got := metricValue(text, `dnslb_zone_serial{zone="example.org."}`); got != float64(serial) {
		t.Errorf("dnslb_zone_serial = %v, want the SOA's %d", got, serial)
	}
	if strings.Contains(text, "} -1\n") {
		t.Errorf("a gauge uses -1:\n%s", grepLines(text, "dnslb_target"))
	}

	// The secondary (here: this test, from its address) transfers the zone.
	tr := new(dns.Transfer)
	m := new(dns.Msg)
	m.SetAxfr("example.org.")
	env, err := tr.In(m, s.tcp)
	if err != nil {
		t.Fatal(err)
	}
	for e := range env {
		if e.Error != nil {
			t.Fatal(e.Error)
		}
	}
	waitFor(t, "the secondary's serial", 2*time.Second, func() bool {
		return metricValue(scrape(t, s.admin), `dnslb_secondary_serial{secondary="`+sec+`",zone="example.org."}`) == float64(serial)
	})
	// A transfer of a zone that is not ours is counted as "unknown", not
	// by the name asked for.
	m.SetAxfr("example.net.")
	if r := ask(t, "tcp", s.tcp, "example.net.", dns.TypeAXFR); r.Rcode != dns.RcodeRefused {
		t.Errorf("AXFR of example.net.: %v", dns.RcodeToString[r.Rcode])
	}
	if v := metricValue(scrape(t, s.admin), `dnslb_transfers_total{result="refused",type="AXFR",zone="unknown"}`); v != 1 {
		t.Errorf("refused transfers of other zones = %v, want 1", v)
	}

	// Every target down: the service fails open.
	for _, tg := range ts {
		tg.stop()
	}
	waitFor(t, "fail-open in the metrics", 3*time.Second, func() bool {
		return metricValue(scrape(t, s.admin), `dnslb_service_fail_open{family="ipv4",service="www.example.org."}`) == 1
	})
	text = scrape(t, s.admin)
	for series, want := range map[string]float64{
		`dnslb_service_answered_targets{family="ipv4",service="www.example.org."}`:         2,
		`dnslb_target_up{service="www.example.org.",target="127.0.0.22"}`:                  0,
		`dnslb_target_state{service="www.example.org.",state="down",target="127.0.0.22"}`:  1,
		`dnslb_target_state{service="www.example.org.",state="up",target="127.0.0.22"}`:    0,
		`dnslb_target_state_changes_total{service="www.example.org.",target="127.0.0.22"}`: 1,
	} {
		if got := metricValue(text, series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
}

// TestPromlint: dnslb's /metrics follows Prometheus' naming and
// documentation conventions (client_golang's promlint).
func TestPromlint(t *testing.T) {
	ts := startTargets(t, 1)
	s := startServer(t, ts, fmt.Sprintf(`    secondaries: [{address: "127.0.0.1:%d"}]`, freeUDPPort(t)))
	ask(t, "udp", s.udp, "www.example.org.", dns.TypeA)
	problems, err := promlint.New(strings.NewReader(scrape(t, s.admin))).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
}

// TestObserveN: a batch of answers lands in the bucket of its latency,
// an upper bound included (Prometheus's "le"), counted once per answer.
func TestObserveN(t *testing.T) {
	for _, tc := range []struct {
		d      time.Duration
		n      int
		bucket int
	}{
		{0, 1, 0},
		{5 * time.Microsecond, 3, 0},
		{5*time.Microsecond + 1, 3, 1},
		{100 * time.Microsecond, 32, 4},
		{25 * time.Millisecond, 2, 9},
		{25*time.Millisecond + 1, 2, 10},
		{time.Hour, 1, 10},
	} {
		var s stats
		s.observeN(tc.d, tc.n)
		for i := range s.latency {
			want := uint64(0)
			if i == tc.bucket {
				want = uint64(tc.n)
			}
			if got := s.latency[i].Load(); got != want {
				t.Errorf("observeN(%v, %d): bucket %d holds %d, want %d", tc.d, tc.n, i, got, want)
			}
		}
		if got, want := s.latSum.Load(), uint64(tc.n)*uint64(tc.d); got != want {
			t.Errorf("observeN(%v, %d): sum %d, want %d", tc.d, tc.n, got, want)
		}
	}
}
