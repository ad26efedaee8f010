package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ringfront/ringfront/appnode/api"
	"github.com/ringfront/ringfront/appnode/ring"
	"github.com/ringfront/ringfront/appnode/store"
	"github.com/ringfront/ringfront/internal/daemon"
)

var testSecret = []byte("test cluster secret")

// member is one appnode in a test cluster.
type member struct {
	addr  string
	srv   *Server
	store *store.Store
	ts    *httptest.Server
	space *atomic.Value // store.Space the store sees
	reg   prometheus.Gatherer
}

// metric reads a counter or gauge of m's, with the given label values,
// as a scrape would see it (0 when it has none).
func (m *member) metric(t testing.TB, name string, labels ...string) float64 {
	t.Helper()
	if m.reg == nil {
		t.Fatalf("%s has no metrics registry", m.addr)
	}
	mfs, err := m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, mt := range mf.GetMetric() {
			for i, lp := range mt.GetLabel() {
				if i >= len(labels) || lp.GetValue() != labels[i] {
					continue next
				}
			}
			switch {
			case mt.Counter != nil:
				return mt.GetCounter().GetValue()
			case mt.Gauge != nil:
				return mt.GetGauge().GetValue()
			}
		}
	}
	return 0
}

type clusterOpts struct {
	n       int
	routing Routing
	vnodes  int
	// ring, when set, builds each member's ring from all addresses.
	ring func(i int, addrs []string) *ring.Ring
	// alive, when set, is every member's failure detector.
	alive func(member string) bool
	// secret, when set, is member i's cluster secret (default testSecret).
	secret func(i int) []byte
	// transport, when set, carries the members' requests to each other.
	transport http.RoundTripper
	// registry, when set, gets member i's metrics.
	registry func(i int) prometheus.Registerer
	// writeAcks is every member's Options.WriteAcks.
	writeAcks int
	// readRepair is every member's Options.ReadRepair.
	readRepair bool
	// memberTransport, when set, is member i's transport (over transport).
	memberTransport func(i int) http.RoundTripper
	// memberAlive, when set, is member i's failure detector (over alive).
	memberAlive func(i int) func(member string) bool
	// memFS keeps every store in memory (fast bulk loads; syncs are free).
	memFS bool
	// replicas is the ring's replicas (default 2).
	replicas int
	// httpForward turns member links off (Options.Links): forwards go
	// over HTTP.
	httpForward bool
	// h2c serves and forwards with unencrypted HTTP/2 (links off).
	h2c bool
	// bounds, when set, bound every member's listener as Listen would
	// (Options.Bounds).
	bounds *daemon.HTTPBounds
	// now, when set, is every member's clock (Options.Now).
	now func() time.Time
}

// newCluster starts n members on loopback, each with its own store,
// all sharing one ring.
func newCluster(t testing.TB, o clusterOpts) []*member {
	t.Helper()
	if o.vnodes == 0 {
		o.vnodes = 16
	}
	lns := make([]net.Listener, o.n)
	addrs := make([]string, o.n)
	for i := range lns {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns[i], addrs[i] = ln, ln.Addr().String()
	}
	if o.replicas == 0 {
		o.replicas = 2
	}
	shared, err := ring.New(ring.Config{Members: addrs, VNodes: o.vnodes, Replicas: o.replicas})
	if err != nil {
		t.Fatal(err)
	}
	ms := make([]*member, o.n)
	for i := range ms {
		space := new(atomic.Value)
		space.Store(store.Space{Free: 1 << 40})
		sopts := store.Options{Space: func(string) (store.Space, error) { return space.Load().(store.Space), nil }}
		dir := "/data"
		if o.memFS {
			sopts.FS = vfs.NewMem()
		} else {
			dir = t.TempDir()
		}
		st, err := store.Open(dir, sopts)
		if err != nil {
			t.Fatal(err)
		}
		rg := shared
		if o.ring != nil {
			rg = o.ring(i, addrs)
		}
		var reg prometheus.Registerer = prometheus.NewRegistry()
		if o.registry != nil {
			reg = o.registry(i)
		}
		gatherer, _ := reg.(prometheus.Gatherer)
		secret := testSecret
		if o.secret != nil {
			secret = o.secret(i)
		}
		transport, alive := o.transport, o.alive
		if o.memberTransport != nil {
			transport = o.memberTransport(i)
		}
		if o.h2c {
			var p http.Protocols
			p.SetUnencryptedHTTP2(true)
			transport = &http.Transport{Protocols: &p, MaxIdleConnsPerHost: 256}
			o.httpForward = true
		}
		if o.memberAlive != nil {
			alive = o.memberAlive(i)
		}
		var bounds daemon.HTTPBounds
		if o.bounds != nil {
			bounds = *o.bounds
		}
		srv, err := New(Options{Self: addrs[i], Ring: rg, Routing: o.routing, Store: st, Secret: secret,
			Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Alive: alive, Registry: reg, Transport: transport, WriteAcks: o.writeAcks, ReadRepair: o.readRepair, Links: !o.httpForward,
			Bounds: bounds, Now: o.now})
		if err != nil {
			t.Fatal(err)
		}
		ts := httptest.NewUnstartedServer(srv)
		if o.bounds != nil {
			ts.Config = srv.bounds.Server(clientBodies(srv), nil)
		}
		ts.Listener.Close()
		ts.Listener = lns[i]
		if o.h2c {
			var p http.Protocols
			p.SetHTTP1(true)
			p.SetUnencryptedHTTP2(true)
			ts.Config.Protocols = &p
		}
		ts.Start()
		ms[i] = &member{addr: addrs[i], srv: srv, store: st, ts: ts, space: space, reg: gatherer}
		t.Cleanup(func() {
			srv.tr.Close()
			ts.Close()
			srv.rep.Wait() // background read repairs use the store
			st.Close()
		})
	}
	return ms
}

// answer is what a test client saw.
type answer struct {
	code   int
	header http.Header
	body   []byte
}

func (a answer) decode(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(a.body, v); err != nil {
		t.Fatalf("decoding %s: %v", a.body, err)
	}
}

// errorText returns the "error" of a JSON error body, failing the test
// when the body is not one.
func (a answer) errorText(t testing.TB) string {
	t.Helper()
	var e map[string]string
	if err := json.Unmarshal(a.body, &e); err != nil || e["error"] == "" || len(e) != 1 {
		t.Fatalf("body %q is not {\"error\": ...}", a.body)
	}
	return e["error"]
}

// noRedirects is a client that shows 307s instead of following them.
var noRedirects = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

func do(t testing.TB, c *http.Client, method, url, token string, body any) answer {
	t.Helper()
	return doHeader(t, c, method, url, token, body, nil)
}

// doHeader is do with extra request headers.
func doHeader(t testing.TB, c *http.Client, method, url, token string, body any, h map[string]string) answer {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range h {
		req.Header.Set(k, v)
	}
	if c == nil {
		c = http.DefaultClient
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return answer{resp.StatusCode, resp.Header, b}
}

func (m *member) url(path string) string { return m.ts.URL + path }

// kill stops a member the way a crash would look to the others: its
// listener and every connection to it close, member links included.
func (m *member) kill() {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	m.srv.tr.Drain(ctx) // closes the served links at once
	m.srv.tr.Close()
	m.ts.Close()
}

// owner and notOwner pick members by the ring.
func owner(ms []*member, name string) *member {
	o := ms[0].srv.Ring().Owner(name)
	for _, m := range ms {
		if m.addr == o {
			return m
		}
	}
	panic("no owner for " + name)
}

func notOwner(ms []*member, name string) *member {
	o := owner(ms, name)
	for _, m := range ms {
		if m != o {
			return m
		}
	}
	panic("one member owns everything")
}

func createUser(t testing.TB, m *member, name string) string {
	t.Helper()
	a := do(t, nil, "POST", m.url("/v1/users"), "", api.CreateUserRequest{Name: name})
	if a.code != http.StatusCreated {
		t.Fatalf("creating %s: %d %s", name, a.code, a.body)
	}
	var ans api.CreateUserAnswer
	a.decode(t, &ans)
	return ans.Token
}

func cmpSortStrings() cmp.Option {
	return cmpopts.SortSlices(func(a, b string) bool { return a < b })
}

// waitUntil polls cond every 10ms until it holds, or fails when d has
// passed: the one way these tests wait for what a cluster on loopback
// does in the background, in real time (deliveries, copies, repairs,
// a released port). Each caller checks the outcome after it.
func waitUntil(d time.Duration, cond func() bool) error {
	for end := time.Now().Add(d); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(end) {
			return fmt.Errorf("not within %v", d)
		}
	}
	return nil
}
