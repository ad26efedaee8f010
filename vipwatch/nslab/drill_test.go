package nslab

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestMain(m *testing.M) {
	MaybeRespond()
	os.Exit(m.Run())
}

// buildVIPWatch builds the vipwatch binary into dir.
func buildVIPWatch(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "vipwatch")
	gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
	out, err := exec.Command(gobin, "build", "-o", bin, "github.com/ringfront/ringfront/vipwatch").CombinedOutput()
	if err != nil {
		t.Fatalf("building vipwatch: %v\n%s", err, out)
	}
	return bin
}

type drill struct {
	t     *testing.T
	lab   *Lab
	v     VIPWatch
	procs map[string]*Proc // running vipwatch per node
	macs  map[string]string
}

func newDrill(t *testing.T, letter string) *drill {
	t.Helper()
	if err := RequireRoot(); err != nil {
		t.Skipf("skipping: %v", err)
	}
	dir := t.TempDir()
	lab, err := New(fmt.Sprintf("%d%s", os.Getpid()%100000, letter), dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := lab.Close(); err != nil {
			t.Errorf("removing the lab: %v", err)
		}
	})
	d := &drill{
		t:     t,
		lab:   lab,
		v:     VIPWatch{Binary: buildVIPWatch(t, dir), Interval: 100 * time.Millisecond, DeadAfter: 300 * time.Millisecond, GARPCount: 3, GARPInterval: 100 * time.Millisecond},
		procs: map[string]*Proc{},
		macs:  map[string]string{},
	}
	for _, node := range []string{"fe1", "fe2"} {
		if _, err := lab.StartResponder(lab.NS(node), node); err != nil {
			t.Fatal(err)
		}
		mac, err := lab.MAC(lab.NS(node))
		if err != nil {
			t.Fatal(err)
		}
		d.macs[node] = mac
	}
	// On failure, show what the daemons said.
	t.Cleanup(func() {
		if t.Failed() {
			for node, p := range d.procs {
				t.Logf("--- %s log:\n%s", node, p.Output())
			}
		}
	})
	return d
}

func (d *drill) start(node string, preempt bool) {
	d.t.Helper()
	p, err := d.lab.StartVIPWatch(d.v, node, preempt)
	if err != nil {
		d.t.Fatal(err)
	}
	d.procs[node] = p
}

// startPair starts both daemons with preempt on and settles.
func (d *drill) startPair() {
	d.t.Helper()
	d.start("fe1", true)
	d.start("fe2", true)
	d.settle()
}

// settle waits until each VIP is on its home machine alone and the
// client reaches fe1 through VIP1 (which also fills the client's
// neighbour entry that the next failover's GARP must change).
func (d *drill) settle() {
	d.t.Helper()
	d.holders(VIP1, "fe1")
	d.holders(VIP2, "fe2")
	d.request("fe1")
}

// holders waits until exactly the named machine holds vip.
func (d *drill) holders(vip netip.Prefix, node string) {
	d.t.Helper()
	want := []string{d.lab.NS(node)}
	var got []string
	err := WaitFor(5*time.Second, fmt.Sprintf("%v on %s alone", vip, node), func() (bool, error) {
		var err error
		got, err = d.lab.Holders(vip)
		return slices.Equal(got, want), err
	})
	if err != nil {
		d.t.Fatalf("%v (holders now: %v)", err, got)
	}
}

// neighbour waits until the client's neighbour entry for VIP1 has
// node's MAC. The client sends nothing meanwhile, so only a gratuitous
// ARP can have changed it.
func (d *drill) neighbour(node string) {
	d.t.Helper()
	var mac, state string
	err := WaitFor(3*time.Second, "the client's neighbour entry for VIP1 to name "+node, func() (bool, error) {
		var err error
		mac, state, err = d.lab.Neighbour(d.lab.Client, VIP1.Addr())
		return mac == d.macs[node], err
	})
	if err != nil {
		d.t.Fatalf("%v (entry now: %q %s; fe1 %s, fe2 %s)", err, mac, state, d.macs["fe1"], d.macs["fe2"])
	}
}

// request checks that the client's HTTP request to VIP1 is answered by
// node.
func (d *drill) request(node string) {
	d.t.Helper()
	var body string
	err := WaitFor(3*time.Second, "an answer from "+node+" on VIP1", func() (bool, error) {
		out, err := d.lab.Run(context.Background(), d.lab.Client, "curl", "-s", "-m", "0.5", fmt.Sprintf("http://%s/", VIP1.Addr()))
		body = strings.TrimSpace(out)
		return err == nil && body == node, err
	})
	if err != nil {
		d.t.Fatalf("%v (last answer %q)", err, body)
	}
}

// failedOverTo asserts the three things a drill must leave: VIP1 on
// node alone, the client's neighbour entry naming node's MAC, and the
// client's requests to VIP1 answered (by node).
func (d *drill) failedOverTo(node string) {
	d.t.Helper()
	d.holders(VIP1, node)
	d.neighbour(node)
	d.request(node)
	d.holders(VIP1, node) // and still alone afterwards
}

func (d *drill) releaseAll(node string, args ...string) string {
	d.t.Helper()
	if len(args) == 0 {
		args = []string{"--interface", Dev}
	}
	out, err := d.lab.Run(context.Background(), d.lab.NS(node), append([]string{d.v.Binary, "release-all"}, args...)...)
	if err != nil {
		d.t.Fatal(err)
	}
	return out
}

// TestDrills runs the failover drills of issue 3 on one lab, in order:
// each leaves fe1 holding its VIP again for the next.
func TestDrills(t *testing.T) {
	d := newDrill(t, "d")
	d.startPair()

	t.Run("sigkill with ExecStopPost release-all", func(t *testing.T) {
		d.t = t
		d.procs["fe1"].Signal(syscall.SIGKILL)
		d.procs["fe1"].Wait(5 * time.Second)
		// fe2 claims; the killed daemon could not remove its address,
		// so for now both machines have it (what keepalived leaves)...
		err := WaitFor(3*time.Second, "fe2 to claim VIP1", func() (bool, error) { return d.lab.Holds(d.lab.FE2, VIP1) })
		if err != nil {
			t.Fatal(err)
		}
		if ok, _ := d.lab.Holds(d.lab.FE1, VIP1); !ok {
			t.Log("fe1 no longer had VIP1 right after SIGKILL (unexpected but harmless)")
		}
		// ...until systemd runs ExecStopPost=vipwatch release-all, here
		// with a config broken by an edit (maybe why the daemon died):
		// it cleans every interface.
		broken := filepath.Join(t.TempDir(), "vipwatch.yaml")
		if err := os.WriteFile(broken, []byte("interface: [not, a, name]\nbogus_key: 1\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		out := d.releaseAll("fe1", "--config", broken)
		if !strings.Contains(out, "removed 198.51.100.10/24 from "+Dev) {
			t.Errorf("release-all with a broken config said %q, want it to remove VIP1 from %s", out, Dev)
		}
		d.failedOverTo("fe2")
	})

	t.Run("hand-back after restart", func(t *testing.T) {
		d.t = t
		d.start("fe1", true)
		d.failedOverTo("fe1")
		d.holders(VIP2, "fe2")
	})

	t.Run("sigkill then restart cleans up first", func(t *testing.T) {
		d.t = t
		d.procs["fe1"].Signal(syscall.SIGKILL)
		d.procs["fe1"].Wait(5 * time.Second)
		err := WaitFor(3*time.Second, "fe2 to claim VIP1", func() (bool, error) { return d.lab.Holds(d.lab.FE2, VIP1) })
		if err != nil {
			t.Fatal(err)
		}
		// No release-all this time: the restarted daemon (preempt off,
		// so VIP1 stays with fe2) must remove the stale address itself.
		d.start("fe1", false)
		d.failedOverTo("fe2")
		if !strings.Contains(d.procs["fe1"].Output(), "removed stale vipwatch address") {
			t.Errorf("restarted fe1 did not log its clean-up:\n%s", d.procs["fe1"].Output())
		}
		// preempt off: fe1 leaves VIP1 with fe2 while both run.
		time.Sleep(500 * time.Millisecond)
		d.holders(VIP1, "fe2")
		// Back to preempt on (SIGTERM, restart) for the next drills.
		d.procs["fe1"].Signal(syscall.SIGTERM)
		if err := d.procs["fe1"].Wait(5 * time.Second); err != nil {
			t.Fatalf("fe1 after SIGTERM: %v", err)
		}
		d.start("fe1", true)
		d.failedOverTo("fe1")
	})

	t.Run("link down", func(t *testing.T) {
		d.t = t
		if err := d.lab.SetCable(d.lab.FE1, false); err != nil {
			t.Fatal(err)
		}
		// fe1 loses carrier, goes to fault and releases VIP1 itself;
		// fe2 claims it after the dead interval.
		d.failedOverTo("fe2")
		if err := d.lab.SetCable(d.lab.FE1, true); err != nil {
			t.Fatal(err)
		}
		d.failedOverTo("fe1")
	})

	t.Run("sigterm", func(t *testing.T) {
		d.t = t
		d.procs["fe1"].Signal(syscall.SIGTERM)
		if err := d.procs["fe1"].Wait(5 * time.Second); err != nil {
			t.Fatalf("fe1 after SIGTERM: %v", err)
		}
		d.failedOverTo("fe2")
		d.start("fe1", true)
		d.failedOverTo("fe1")
	})

	t.Run("status", func(t *testing.T) {
		d.t = t
		cfg, err := d.lab.Config(d.v, "fe2", true)
		if err != nil {
			t.Fatal(err)
		}
		out, err := d.lab.Run(context.Background(), d.lab.FE2, d.v.Binary, "status", "--config", cfg)
		if err != nil {
			t.Fatal(err)
		}
		// fe1's machine refused heartbeats while its daemon was dead.
		for _, want := range []string{"node fe2  state running", "partner fe1", "refused by the partner's machine", "198.51.100.10/24     fe1        fe1", "198.51.100.20/24     fe2        fe2"} {
			if !strings.Contains(out, want) {
				t.Errorf("status lacks %q:\n%s", want, out)
			}
		}
		metrics, err := d.lab.Run(context.Background(), d.lab.FE2, "curl", "-s", "-m", "2", "http://127.0.0.1:8054/metrics")
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{`vipwatch_state{state="running"} 1`, "vipwatch_vips_held 1", `vipwatch_heartbeats_dropped_total{reason="bad_mac"} 0`,
			"vipwatch_claims_total", "vipwatch_releases_total", "vipwatch_garps_sent_total", "vipwatch_partner_last_heard_seconds"} {
			if !strings.Contains(metrics, want) {
				t.Errorf("/metrics lacks %q", want)
			}
		}
		if ready, err := d.lab.Run(context.Background(), d.lab.FE2, "curl", "-s", "-f", "-m", "2", "http://127.0.0.1:8054/readyz"); err != nil || !strings.Contains(ready, "ready") {
			t.Errorf("/readyz = %q, %v", ready, err)
		}
		if strings.Contains(out, "refused by the partner's machine 0 ") {
			t.Errorf("fe2 saw no refused heartbeats after fe1's daemon was killed:\n%s", out)
		}
	})
}
