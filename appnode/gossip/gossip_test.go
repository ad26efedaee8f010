package gossip

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

var secret = []byte("test cluster secret")

// fast is a probe profile for tests, on the in-memory network nw: dead
// within about a second instead of several.
func fast(nw *memNet, name string) Config {
	return Config{
		Name: name, Bind: "127.0.0.1:0", Secret: secret, transport: nw.transport(),
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

// addrBook is what members answer when asked for their gossip address
// (the server's hello call in a real member).
type addrBook struct {
	mu    sync.Mutex
	addrs map[string]string
}

func (b *addrBook) set(name, addr string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.addrs[name] = addr
}

func (b *addrBook) learn(ctx context.Context, name string) (string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if a, ok := b.addrs[name]; ok {
		return a, nil
	}
	return "", fmt.Errorf("%s does not answer", name)
}

// cluster starts members named names, each on a gossip port of its own
// (no convention relates a member's name to its gossip port): they find
// each other by asking (Learn).
func cluster(t *testing.T, nw *memNet, names []string, book *addrBook) []*running {
	rs := make([]*running, len(names))
	for i, n := range names {
		cfg := fast(nw, n)
		cfg.Peers = names
		cfg.Learn = book.learn
		rs[i] = start(t, cfg)
		book.set(n, rs[i].d.Addr())
	}
	return rs
}

// TestDeadAndBack runs three members on loopback, stops one without a
// leave message (as a crash), and checks that the other two see it
// dead, then alive again once it is back on another gossip port.
func TestDeadAndBack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		nw := newNet(t)
		names := []string{"127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003"}
		book := &addrBook{addrs: map[string]string{}}
		rs := cluster(t, nw, names, book)
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
		if a, m := rs[0].d.AliveCount(); a != 3 || m != 3 {
			t.Errorf("AliveCount = %d of %d, want 3 of 3", a, m)
		}

		rs[2].halt()
		took := waitFor(t, 10*time.Second, "member 2 dead to the others", func() bool {
			return rs[0].d.Liveness(names[2]) == Dead && rs[1].d.Liveness(names[2]) == Dead
		})
		t.Logf("member stopped: seen dead after %v", took.Round(time.Millisecond))

		// Back on another gossip port: the others learn it again.
		cfg := fast(nw, names[2])
		cfg.Peers, cfg.Learn = names, book.learn
		rs[2] = start(t, cfg)
		book.set(names[2], rs[2].d.Addr())
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
# HELP appnode_member_alive 1 when the failure detector sees the member alive, 0 when dead or not seen yet.
# TYPE appnode_member_alive gauge
appnode_member_alive{member=%q} 1
appnode_member_alive{member=%q} 1
appnode_member_alive{member=%q} 1
# HELP appnode_members_alive Members the failure detector sees alive, this one included.
# TYPE appnode_members_alive gauge
appnode_members_alive 3
# HELP appnode_member_state 1 for the state the failure detector sees the member in (unknown: not seen yet since this member started; alive; dead), 0 for the others.
# TYPE appnode_member_state gauge
`, names[0], names[1], names[2])
		for _, n := range names {
			want += fmt.Sprintf("appnode_member_state{member=%q,state=\"alive\"} 1\n", n)
			want += fmt.Sprintf("appnode_member_state{member=%q,state=\"dead\"} 0\n", n)
			want += fmt.Sprintf("appnode_member_state{member=%q,state=\"unknown\"} 0\n", n)
		}
		if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "appnode_member_alive", "appnode_members_alive", "appnode_member_state"); err != nil {
			t.Error(err)
		}
		if n := testutil.ToFloat64(rs[0].d.changes); n < 4 {
			t.Errorf("liveness changes on member 0 = %v, want at least 4 (two first sightings, one death, one return)", n)
		}
	})
}

// TestCatchingUpGossiped checks that a member's catch-up state reaches
// the others through its gossip metadata, and that probes measure a
// round trip.
func TestCatchingUpGossiped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		nw := newNet(t)
		names := []string{"a:1", "b:1"}
		rs := cluster(t, nw, names, &addrBook{addrs: map[string]string{}})
		waitFor(t, 5*time.Second, "both alive", func() bool { return rs[0].d.Alive("b:1") && rs[1].d.Alive("a:1") })
		rs[1].d.SetCatchingUp(true)
		if !rs[1].d.CatchingUp("b:1") {
			t.Error("a member does not see its own catch-up state")
		}
		waitFor(t, 5*time.Second, "a sees b catching up", func() bool { return rs[0].d.CatchingUp("b:1") })
		rs[1].d.SetCatchingUp(false)
		waitFor(t, 5*time.Second, "a sees b caught up", func() bool { return !rs[0].d.CatchingUp("b:1") })
		waitFor(t, 5*time.Second, "a round trip measured", func() bool { return rs[0].d.RTT("b:1") > 0 })
	})
}

// TestCatchingUpFlipsSettle: a member that flips its catch-up state
// quickly (a catch-up that finds nothing to do) ends with the others
// seeing its last state, not an older announcement numbered after it.
func TestCatchingUpFlipsSettle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		nw := newNet(t)
		names := []string{"a:1", "b:1"}
		rs := cluster(t, nw, names, &addrBook{addrs: map[string]string{}})
		waitFor(t, 5*time.Second, "both alive", func() bool { return rs[0].d.Alive("b:1") && rs[1].d.Alive("a:1") })
		for range 200 {
			rs[1].d.SetCatchingUp(true)
			rs[1].d.SetCatchingUp(false)
		}
		waitFor(t, 5*time.Second, "a sees b caught up", func() bool { return !rs[0].d.CatchingUp("b:1") })
		// And it stays so: no older announcement arrives late.
		time.Sleep(time.Second)
		if rs[0].d.CatchingUp("b:1") {
			t.Error("a sees b catching up again after b's last announcement said it was caught up")
		}
	})
}

// TestIsolated checks that a member whose peers cannot be reached says
// so, and why, once IsolatedAfter has passed, and stops saying so once
// it hears from one.
func TestIsolated(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		nw := newNet(t)
		book := &addrBook{addrs: map[string]string{}}
		cfg := fast(nw, "a:1")
		cfg.Peers, cfg.Learn, cfg.IsolatedAfter = []string{"a:1", "b:1", "c:1"}, book.learn, 300*time.Millisecond
		a := start(t, cfg)
		// b answers with a gossip address where nothing listens; c does not
		// answer at all.
		book.set("b:1", "127.0.0.1:1")
		<-a.d.Joined()
		if iso, _ := a.d.Isolated(); iso {
			t.Error("isolated before IsolatedAfter passed")
		}
		var why string
		waitFor(t, 5*time.Second, "isolated", func() bool {
			var iso bool
			iso, why = a.d.Isolated()
			return iso && strings.Contains(why, "c:1: could not learn") && strings.Contains(why, "b:1: joining its gossip address 127.0.0.1:1")
		})
		t.Logf("isolated: %s", why)
		for _, st := range a.d.States() {
			if st.Member != "a:1" && (st.State != Unknown || st.Problem == "") {
				t.Errorf("state of a peer never seen: %+v, want unknown with a problem", st)
			}
		}
		bcfg := fast(nw, "b:1")
		bcfg.Peers, bcfg.Learn = cfg.Peers, book.learn
		b := start(t, bcfg)
		book.set("b:1", b.d.Addr())
		waitFor(t, 5*time.Second, "a hears b", func() bool { return a.d.Alive("b:1") })
		if iso, why := a.d.Isolated(); iso {
			t.Errorf("still isolated after hearing b: %s", why)
		}
	})
}

// TestWrongKey checks that a member with another cluster secret is
// never seen alive: gossip is encrypted with the secret's key.
func TestWrongKey(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		nw := newNet(t)
		book := &addrBook{addrs: map[string]string{}}
		ca := fast(nw, "a:1")
		ca.Peers, ca.Learn = []string{"a:1", "b:1"}, book.learn
		a := start(t, ca)
		cb := fast(nw, "b:1")
		cb.Peers, cb.Learn = []string{"a:1", "b:1"}, book.learn
		cb.Secret = []byte("another secret")
		b := start(t, cb)
		book.set("a:1", a.d.Addr())
		book.set("b:1", b.d.Addr())
		time.Sleep(time.Second)
		if a.d.Alive("b:1") || b.d.Alive("a:1") {
			t.Errorf("members with different secrets see each other alive")
		}
		if !a.d.Alive("a:1") || a.d.Liveness("nobody:1") != Dead {
			t.Errorf("self must be alive, members not configured dead")
		}
	})
}

// TestStatesDuringUpdates: States (what appnode status and /metrics
// read) is called over and over while memberlist reports updates of a
// peer (its catch-up state flipping): neither waits on the other. States
// used to ask memberlist for this member's address while it held the
// detector's lock, and memberlist holds its node lock while it reports
// an update, which takes the detector's lock: the two deadlocked, and
// with them the member's status, its metrics and its failure detector.
// In real time, not a bubble: a deadlock on mutexes is not a durable
// block there.
func TestStatesDuringUpdates(t *testing.T) {
	// On loopback (the in-memory network lives in a bubble).
	names := []string{"a:1", "b:1"}
	book := &addrBook{addrs: map[string]string{}}
	rs := make([]*running, len(names))
	for i, n := range names {
		rs[i] = start(t, Config{Name: n, Bind: "127.0.0.1:0", Secret: secret, Peers: names, Learn: book.learn,
			ProbeInterval: 100 * time.Millisecond, ProbeTimeout: 50 * time.Millisecond, RejoinInterval: 200 * time.Millisecond,
			Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
		book.set(n, rs[i].d.Addr())
	}
	waitFor(t, 5*time.Second, "both alive", func() bool { return rs[0].d.Alive("b:1") && rs[1].d.Alive("a:1") })
	stop := make(chan struct{})
	states := make(chan int, 1)
	go func() {
		n := 0
		defer func() { states <- n }()
		for {
			select {
			case <-stop:
				return
			default:
			}
			rs[0].d.States()
			n++
		}
	}()
	deadline := time.Now().Add(2 * time.Second)
	for i := 0; time.Now().Before(deadline) && i < 2000; i++ {
		rs[1].d.SetCatchingUp(i%2 == 0)
		time.Sleep(time.Millisecond)
	}
	rs[1].d.SetCatchingUp(false)
	close(stop)
	select {
	case n := <-states:
		t.Logf("%d States calls during the updates", n)
	case <-time.After(5 * time.Second):
		t.Fatal("States did not return within 5s: it deadlocked with memberlist's update")
	}
	waitFor(t, 5*time.Second, "a sees b caught up", func() bool { return !rs[0].d.CatchingUp("b:1") })
}
