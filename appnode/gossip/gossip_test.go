package gossip

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

var secret = []byte("test cluster secret")

// fast is a probe profile for loopback tests: dead within about a
// second instead of several.
func fast(name, bind string) Config {
	return Config{
		Name: name, Bind: bind, Secret: secret,
		ProbeInterval: 100 * time.Millisecond, ProbeTimeout: 50 * time.Millisecond,
		RejoinInterval: 200 * time.Millisecond,
		Log:            slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
}

type running struct {
	d    *Detector
	stop context.CancelFunc
	done chan struct{}
}

func start(t *testing.T, cfg Config) *running {
	t.Helper()
	d, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{d: d, stop: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		d.Run(ctx)
	}()
	t.Cleanup(r.halt)
	return r
}

func (r *running) halt() {
	r.stop()
	<-r.done
}

// waitFor polls cond for up to limit.
func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for time.Since(start) < limit {
		if cond() {
			return time.Since(start)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s: not within %v", what, limit)
	return 0
}

// TestDeadAndBack runs three members on loopback, stops one without a
// leave message (as a crash), and checks that the other two see it
// dead, then alive again once it is back on the same address.
func TestDeadAndBack(t *testing.T) {
	names := []string{"127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003"}
	cfgs := make([]Config, 3)
	rs := make([]*running, 3)
	peers := map[string]string{}
	for i, n := range names {
		cfgs[i] = fast(n, "127.0.0.1:0")
		rs[i] = start(t, cfgs[i])
		peers[n] = fmt.Sprintf("127.0.0.1:%d", rs[i].d.Port())
	}
	for _, r := range rs {
		r.d.SetPeers(peers)
	}
	allAlive := func(ids ...int) func() bool {
		return func() bool {
			for _, i := range ids {
				for _, n := range names {
					if !rs[i].d.Alive(n) {
						return false
					}
				}
			}
			return true
		}
	}
	waitFor(t, 5*time.Second, "all alive", allAlive(0, 1, 2))

	rs[2].halt()
	took := waitFor(t, 10*time.Second, "member 2 dead to the others", func() bool {
		return !rs[0].d.Alive(names[2]) && !rs[1].d.Alive(names[2])
	})
	t.Logf("member stopped: seen dead after %v", took.Round(time.Millisecond))

	cfgs[2].Bind = peers[names[2]]
	cfgs[2].Peers = peers
	rs[2] = start(t, cfgs[2])
	// Once the first round of joins is over, the returning member sees
	// the others alive at once: it can serve.
	select {
	case <-rs[2].d.Joined():
	case <-time.After(5 * time.Second):
		t.Fatal("first join round did not finish")
	}
	if !rs[2].d.Alive(names[0]) || !rs[2].d.Alive(names[1]) {
		t.Errorf("after joining, the returning member sees %v", rs[2].d.States())
	}
	took = waitFor(t, 10*time.Second, "member 2 alive again", allAlive(0, 1, 2))
	t.Logf("member back: seen alive after %v", took.Round(time.Millisecond))

	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(rs[0].d.Collector())
	want := fmt.Sprintf(`
# HELP appnode_member_alive 1 when the failure detector sees the member alive, 0 when dead.
# TYPE appnode_member_alive gauge
appnode_member_alive{member=%q} 1
appnode_member_alive{member=%q} 1
appnode_member_alive{member=%q} 1
`, names[0], names[1], names[2])
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "appnode_member_alive"); err != nil {
		t.Error(err)
	}
	if n := testutil.ToFloat64(rs[0].d.changes); n < 4 {
		t.Errorf("liveness changes on member 0 = %v, want at least 4 (two first sightings, one death, one return)", n)
	}
}

// TestWrongKey checks that a member with another cluster secret is
// never seen alive: gossip is encrypted with the secret's key.
func TestWrongKey(t *testing.T) {
	a := start(t, fast("a:1", "127.0.0.1:0"))
	cb := fast("b:1", "127.0.0.1:0")
	cb.Secret = []byte("another secret")
	b := start(t, cb)
	peers := map[string]string{"a:1": fmt.Sprintf("127.0.0.1:%d", a.d.Port()), "b:1": fmt.Sprintf("127.0.0.1:%d", b.d.Port())}
	a.d.SetPeers(peers)
	b.d.SetPeers(peers)
	time.Sleep(time.Second)
	if a.d.Alive("b:1") || b.d.Alive("a:1") {
		t.Errorf("members with different secrets see each other alive")
	}
	if !a.d.Alive("a:1") || a.d.Alive("nobody:1") {
		t.Errorf("self must be alive, unknown members never")
	}
}
