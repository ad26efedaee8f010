package server

import (
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ringfront/ringfront/dnslb/authority"
	"github.com/ringfront/ringfront/dnslb/config"
	"github.com/ringfront/ringfront/internal/health"
)

// Query-type buckets for metrics: the common types by name, the rest
// as "other", so a flood of random types cannot blow up label sets.
var qtypeBuckets = []uint16{dns.TypeA, dns.TypeAAAA, dns.TypeNS, dns.TypeSOA, dns.TypeMX, dns.TypeTXT,
	dns.TypeCNAME, dns.TypePTR, dns.TypeSRV, dns.TypeDS, dns.TypeDNSKEY, dns.TypeCAA, dns.TypeSVCB,
	dns.TypeHTTPS, dns.TypeANY, dns.TypeAXFR, dns.TypeIXFR}

const (
	nQtypes = 18 // len(qtypeBuckets) + "other"
	nRcodes = 24 // rcodes 0..22, then "other"
)

func qtypeIndex(t uint16) int {
	for i, b := range qtypeBuckets {
		if b == t {
			return i
		}
	}
	return nQtypes - 1
}

func rcodeIndex(r int) int {
	if r < 0 || r >= nRcodes-1 {
		return nRcodes - 1
	}
	return r
}

// Why a packet got no answer.
const (
	dropMalformed   = iota // does not parse as a DNS message
	dropResponse           // a response, not a query (possible reflection)
	dropWrite              // the answer could not be sent
	dropRateLimited        // over the client prefix's response rate
	dropTCPLimit           // a TCP connection over its client\'s limit
	nDrops
)

var dropNames = [nDrops]string{"malformed", "response", "write_error", "rate_limited", "tcp_client_limit"}

// What a query's DNS cookie was.
const (
	cookieNone      = iota // no COOKIE option
	cookieClient           // only a client cookie: a server cookie is issued
	cookieValid            // a valid server cookie: exempt from rate limiting
	cookieInvalid          // a server cookie not ours, or expired: a new one is issued
	cookieMalformed        // impossible length: FORMERR
	nCookies
)

var cookieNames = [nCookies]string{"none", "client_only", "valid", "invalid", "malformed"}

// latencyBuckets (seconds) for the answer latency histogram: answers
// take microseconds, so the buckets start well below a millisecond.
var latencyBuckets = []float64{5e-6, 10e-6, 25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 5e-3, 25e-3}

// latencyNanos are latencyBuckets as durations, for the answer path.
var latencyNanos = func() []time.Duration {
	d := make([]time.Duration, len(latencyBuckets))
	for i, b := range latencyBuckets {
		d[i] = time.Duration(b*1e9 + 0.5)
	}
	return d
}()

// stats counts what one serving goroutine did. Each UDP socket has its
// own, so the hot path only adds to uncontended atomics; a collector sums
// them at scrape time.
type stats struct {
	queries [2][nQtypes][nRcodes]atomic.Uint64 // [transport][qtype][rcode]
	drops   [nDrops]atomic.Uint64
	slipped atomic.Uint64 // rate-limited answers sent truncated
	// waitSwitches counts a UDP reader's moves between waiting in the
	// netpoller and blocking in recvmmsg (udp_linux.go).
	waitSwitches atomic.Uint64
	cookies      [nCookies]atomic.Uint64
	latency      [11]atomic.Uint64 // len(latencyBuckets)+1, last is +Inf
	latSum       atomic.Uint64     // nanoseconds
	_            [64]byte          // keep neighbours off this cache line
}

func (s *stats) count(transport, qtype, rcode int) {
	s.queries[transport][qtypeIndex(uint16(qtype))][rcodeIndex(rcode)].Add(1)
}

func (s *stats) observe(d time.Duration) { s.observeN(d, 1) }

// observeN records n answers that each took d: a UDP batch's answers
// all leave with one sendmmsg, so they share the batch's time and are
// counted with two atomic additions, not two each.
func (s *stats) observeN(d time.Duration, n int) {
	i := 0
	for i < len(latencyNanos) && d > latencyNanos[i] {
		i++
	}
	s.latency[i].Add(uint64(n))
	s.latSum.Add(uint64(n) * uint64(d))
}

// answeredRcodes are the response codes dnslb gives (BADCOOKIE, 23, is
// counted as "other"): their query counters are exported from the
// start, at zero, so a rate() over them has a series to work on.
var answeredRcodes = []int{dns.RcodeSuccess, dns.RcodeFormatError, dns.RcodeServerFailure, dns.RcodeNameError,
	dns.RcodeNotImplemented, dns.RcodeRefused, dns.RcodeNotAuth, dns.RcodeBadVers, nRcodes - 1}

// Target states as dnslb_target_state names them.
var targetStates = []struct {
	state health.State
	name  string
}{{health.Unknown, "unknown"}, {health.Up, "up"}, {health.Down, "down"}}

// metricsView is what the collector reads of the server at scrape time.
type metricsView struct {
	targets     []health.Status
	drained     map[string]bool
	families    []authority.ServiceFamily
	serials     map[string]uint32 // by zone origin
	secondaries []secondarySerial
}

// secondarySerial is the serial a zone's secondary last transferred in
// full (0: none since dnslb started).
type secondarySerial struct {
	zone, secondary string
	serial          uint32
}

// metrics is dnslb's Prometheus collector.
type metrics struct {
	mu  sync.Mutex // guards all
	all []*stats

	queries     *prometheus.Desc
	drops       *prometheus.Desc
	slipped     *prometheus.Desc
	switches    *prometheus.Desc
	cookies     *prometheus.Desc
	latency     *prometheus.Desc
	targetUp    *prometheus.Desc
	targetState *prometheus.Desc
	drained     *prometheus.Desc
	answered    *prometheus.Desc
	failOpen    *prometheus.Desc
	zoneSerial  *prometheus.Desc
	secSerial   *prometheus.Desc

	view func() metricsView

	checkDuration *prometheus.HistogramVec
	reloads       *prometheus.CounterVec
	healthChanges prometheus.Counter
	targetChanges *prometheus.CounterVec
	rebuilds      prometheus.Counter
	transfers     *prometheus.CounterVec
	notifies      *prometheus.CounterVec
}

func newMetrics(view func() metricsView) *metrics {
	return &metrics{
		view:     view,
		queries:  prometheus.NewDesc("dnslb_queries_total", "DNS queries answered, by transport, query type and response code.", []string{"transport", "qtype", "rcode"}, nil),
		drops:    prometheus.NewDesc("dnslb_dropped_total", "Packets dropped without an answer, by reason.", []string{"reason"}, nil),
		slipped:  prometheus.NewDesc("dnslb_rrl_slipped_total", "Rate-limited answers sent truncated (slip) so real clients retry over TCP.", nil, nil),
		switches: prometheus.NewDesc("dnslb_udp_wait_switches_total", "Times a UDP socket's reader moved between waiting in the Go netpoller (quiet) and blocking in recvmmsg (busy).", nil, nil),
		cookies:  prometheus.NewDesc("dnslb_cookies_total", "Queries by the DNS cookie they carried.", []string{"cookie"}, nil),
		latency:  prometheus.NewDesc("dnslb_answer_duration_seconds", "Time from reading a query to sending its answer.", nil, nil),
		targetUp: prometheus.NewDesc("dnslb_target_up", "1 while the target passes its health check, 0 while it fails it or before its first verdict (dnslb_target_state tells them apart).", []string{"service", "target"}, nil),
		targetState: prometheus.NewDesc("dnslb_target_state", "1 for the target's health state (unknown: no verdict yet; up; down), 0 for the others.",
			[]string{"service", "target", "state"}, nil),
		drained: prometheus.NewDesc("dnslb_target_drained", "1 if an operator drained the target.", []string{"service", "target"}, nil),
		answered: prometheus.NewDesc("dnslb_service_answered_targets", "Addresses answers are drawn from (before max_answers), by service and family (ipv4, ipv6).",
			[]string{"service", "family"}, nil),
		failOpen: prometheus.NewDesc("dnslb_service_fail_open", "1 while no target of the family passes its check and the service answers every target anyway (all_down: all).",
			[]string{"service", "family"}, nil),
		zoneSerial: prometheus.NewDesc("dnslb_zone_serial", "The zone's current SOA serial (it moves on every change of the answered addresses and on every reload).", []string{"zone"}, nil),
		secSerial: prometheus.NewDesc("dnslb_secondary_serial", "The serial each configured secondary last transferred from this server (0: none since it started).",
			[]string{"zone", "secondary"}, nil),
		checkDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "dnslb_health_check_duration_seconds", Help: "Duration of health checks, by service and result.",
			Buckets: []float64{.001, .005, .01, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"service", "result"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dnslb_reloads_total", Help: "Config reloads, by result.",
		}, []string{"result"}),
		healthChanges: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dnslb_health_changes_total", Help: "Target state changes seen.",
		}),
		targetChanges: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dnslb_target_state_changes_total", Help: "Times the target went from up to down or back (its first verdict is not counted): a target that flaps moves often.",
		}, []string{"service", "target"}),
		rebuilds: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dnslb_answer_rebuilds_total", Help: "Times the precomputed answers were rebuilt.",
		}),
		transfers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dnslb_transfers_total", Help: "Zone transfers, by zone, kind (AXFR, IXFR, AXFR-for-IXFR) and result.",
		}, []string{"zone", "type", "result"}),
		notifies: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dnslb_notifies_total", Help: "NOTIFY messages sent to secondaries, by result.",
		}, []string{"zone", "secondary", "result"}),
	}
}

func (m *metrics) register(reg prometheus.Registerer) {
	reg.MustRegister(m, m.checkDuration, m.reloads, m.healthChanges, m.targetChanges, m.rebuilds, m.transfers, m.notifies)
}

func (m *metrics) newStats() *stats {
	s := new(stats)
	m.mu.Lock()
	m.all = append(m.all, s)
	m.mu.Unlock()
	return s
}

// onChanges counts the targets' state changes.
func (m *metrics) onChanges(evs []health.Event) {
	m.healthChanges.Add(float64(len(evs)))
	for _, ev := range evs {
		if ev.From == health.Unknown {
			continue
		}
		service, addr, _ := cutTargetID(ev.ID)
		m.targetChanges.WithLabelValues(service, addr).Inc()
	}
}

func (m *metrics) onProbe(t health.Target, r health.Result) {
	service, _, _ := cutTargetID(t.ID)
	res := "ok"
	if !r.OK {
		res = "fail"
	}
	m.checkDuration.WithLabelValues(service, res).Observe(r.Duration.Seconds())
}

// Describe implements prometheus.Collector.
func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{m.queries, m.drops, m.slipped, m.switches, m.cookies, m.latency, m.targetUp, m.targetState, m.drained,
		m.answered, m.failOpen, m.zoneSerial, m.secSerial} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	m.mu.Lock()
	all := append([]*stats(nil), m.all...)
	m.mu.Unlock()
	var q [2][nQtypes][nRcodes]uint64
	var drops [nDrops]uint64
	var cookies [nCookies]uint64
	var slipped, switches uint64
	var lat [11]uint64
	var sum uint64
	for _, s := range all {
		for tr := range 2 {
			for i := range nQtypes {
				for j := range nRcodes {
					q[tr][i][j] += s.queries[tr][i][j].Load()
				}
			}
		}
		for i := range drops {
			drops[i] += s.drops[i].Load()
		}
		for i := range lat {
			lat[i] += s.latency[i].Load()
		}
		for i := range cookies {
			cookies[i] += s.cookies[i].Load()
		}
		slipped += s.slipped.Load()
		switches += s.waitSwitches.Load()
		sum += s.latSum.Load()
	}
	for tr, trName := range []string{"udp", "tcp"} {
		for i := range nQtypes {
			qt := "other"
			if i < len(qtypeBuckets) {
				qt = dns.TypeToString[qtypeBuckets[i]]
			}
			for j := range nRcodes {
				if q[tr][i][j] == 0 && !slices.Contains(answeredRcodes, j) {
					continue
				}
				rc := "other"
				if j < nRcodes-1 {
					rc = dns.RcodeToString[j]
					if j == dns.RcodeBadVers {
						rc = "BADVERS"
					}
					if rc == "" {
						rc = strconv.Itoa(j)
					}
				}
				ch <- prometheus.MustNewConstMetric(m.queries, prometheus.CounterValue, float64(q[tr][i][j]), trName, qt, rc)
			}
		}
	}
	for i, n := range drops {
		ch <- prometheus.MustNewConstMetric(m.drops, prometheus.CounterValue, float64(n), dropNames[i])
	}
	ch <- prometheus.MustNewConstMetric(m.slipped, prometheus.CounterValue, float64(slipped))
	ch <- prometheus.MustNewConstMetric(m.switches, prometheus.CounterValue, float64(switches))
	for i, n := range cookies {
		ch <- prometheus.MustNewConstMetric(m.cookies, prometheus.CounterValue, float64(n), cookieNames[i])
	}
	buckets := map[float64]uint64{}
	var cum, count uint64
	for i, b := range latencyBuckets {
		cum += lat[i]
		buckets[b] = cum
	}
	count = cum + lat[len(latencyBuckets)]
	ch <- prometheus.MustNewConstHistogram(m.latency, count, float64(sum)/1e9, buckets)

	v := m.view()
	for _, st := range v.targets {
		service, addr, _ := cutTargetID(st.ID)
		ch <- prometheus.MustNewConstMetric(m.targetUp, prometheus.GaugeValue, b2f(st.State == health.Up), service, addr)
		for _, ts := range targetStates {
			ch <- prometheus.MustNewConstMetric(m.targetState, prometheus.GaugeValue, b2f(st.State == ts.state), service, addr, ts.name)
		}
		ch <- prometheus.MustNewConstMetric(m.drained, prometheus.GaugeValue, b2f(v.drained[st.ID]), service, addr)
	}
	for _, f := range v.families {
		ch <- prometheus.MustNewConstMetric(m.answered, prometheus.GaugeValue, float64(f.Answered), f.Service, f.Family)
		ch <- prometheus.MustNewConstMetric(m.failOpen, prometheus.GaugeValue, b2f(f.FailOpen), f.Service, f.Family)
	}
	for zone, serial := range v.serials {
		ch <- prometheus.MustNewConstMetric(m.zoneSerial, prometheus.GaugeValue, float64(serial), zone)
	}
	for _, s := range v.secondaries {
		ch <- prometheus.MustNewConstMetric(m.secSerial, prometheus.GaugeValue, float64(s.serial), s.zone, s.secondary)
	}
}

// known creates the labelled series cfg's zones, services and
// secondaries will have, at zero, so that they are exported before
// their first event.
func (m *metrics) known(cfg *config.Config) {
	for _, r := range []string{"ok", "rejected"} {
		m.reloads.WithLabelValues(r)
	}
	for _, z := range cfg.Zones {
		for _, svc := range z.Services {
			for _, r := range []string{"ok", "fail"} {
				m.checkDuration.WithLabelValues(svc.Name, r)
			}
			for _, a := range svc.Addrs {
				m.targetChanges.WithLabelValues(svc.Name, a.String())
			}
		}
		if len(z.Secondaries) == 0 {
			continue
		}
		for _, kind := range []string{"AXFR", "IXFR", "AXFR-for-IXFR"} {
			for _, r := range []string{"ok", "error", "refused"} {
				m.transfers.WithLabelValues(z.Origin, kind, r)
			}
		}
		for _, sec := range z.Secondaries {
			for _, r := range []string{"ok", "failed"} {
				m.notifies.WithLabelValues(z.Origin, sec.AddrPort.String(), r)
			}
		}
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// cutTargetID splits a target ID into service and address.
func cutTargetID(id string) (service, addr string, ok bool) {
	for i := len(id) - 1; i >= 0; i-- {
		if id[i] == '/' {
			return id[:i], id[i+1:], true
		}
	}
	return id, "", false
}
