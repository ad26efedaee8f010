package member

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
)

// writeScript writes an executable shell script into dir.
func writeScript(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestHookRunner runs a real script that appends its arguments and
// environment to a file: events arrive in order, one run each; a
// failing run and a hung one (killed at the timeout) are counted and
// do not stop the next.
func TestHookRunner(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "calls")
	script := writeScript(t, dir, "hook", `
case "$1" in
fail) exit 3 ;;
hang) sleep 30 ;;
esac
echo "args=$* env=$VIPWATCH_STATE|$VIPWATCH_VIP|$VIPWATCH_REASON|$VIPWATCH_NODE" >> `+log+`
`)
	var mu sync.Mutex
	var counts Counters
	r := newHookRunner(NotifyConfig{Command: []string{script}, Timeout: 300 * time.Millisecond}, "fe1",
		slog.New(slog.NewTextHandler(io.Discard, nil)), func(f func(*Counters)) { mu.Lock(); f(&counts); mu.Unlock() })
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); r.Run(ctx, 5*time.Second) }()
	start := time.Now()
	r.Notify(Event{State: "fail", Reason: "test"})
	r.Notify(Event{State: "hang", Reason: "test"})
	r.Notify(Event{State: "master", VIP: "198.51.100.10/24", Reason: "home"})
	r.Notify(Event{State: "running", VIP: "", Reason: "from-starting"})
	r.Notify(Event{State: "backup", VIP: "198.51.100.10/24", Reason: "stopping"})
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Errorf("Notify blocked for %v", d)
	}
	// Cancel at once: what is queued still runs (the drain).
	cancel()
	<-done
	raw, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"args=master 198.51.100.10/24 home env=master|198.51.100.10/24|home|fe1",
		"args=running  from-starting env=running||from-starting|fe1",
		"args=backup 198.51.100.10/24 stopping env=backup|198.51.100.10/24|stopping|fe1",
	}
	if diff := cmp.Diff(want, strings.Split(strings.TrimSpace(string(raw)), "\n")); diff != "" {
		t.Errorf("hook calls (-want +got):\n%s", diff)
	}
	mu.Lock()
	defer mu.Unlock()
	if counts.NotifyRuns != 5 || counts.NotifyFailures != 2 {
		t.Errorf("runs %d failures %d, want 5 and 2 (the failing and the hung one)", counts.NotifyRuns, counts.NotifyFailures)
	}
}

// recordingHook records events as effects.
type recordingHook struct {
	node string
	fx   *effects
}

func (h recordingHook) Notify(ev Event) {
	h.fx.add("%s: notify %s %q %s", h.node, ev.State, ev.VIP, ev.Reason)
}

// TestNotifyEvents checks which events a pair's life produces: one per
// transition, none for the clean-up at boot or for the initial state.
func TestNotifyEvents(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fx, n := newEffects(), newMemNet()
		hook := func(node string) func(*Member) { return func(m *Member) { m.hook = recordingHook{node, fx} } }
		a := startNodeWith(t, n, fx, testConfig("fe1"), hook("fe1"), vip2)
		b := startNodeWith(t, n, fx, testConfig("fe2"), hook("fe2"))
		time.Sleep(time.Second)
		check(t, fx, "ip addr",
			"0.000s fe1: notify running \"\" from-starting",
			"0.000s fe1: notify master \"198.51.100.10/24\" home",
			"0.000s fe2: notify running \"\" from-starting",
			"0.000s fe2: notify master \"198.51.100.20/24\" home",
			"0.000s fe1: garp 198.51.100.10",
			"0.000s fe2: garp 198.51.100.20",
			"0.100s fe1: garp 198.51.100.10",
			"0.100s fe2: garp 198.51.100.20",
		)
		a.links <- false
		time.Sleep(time.Second)
		check(t, fx, "garp",
			"1.000s fe1: ip addr del 198.51.100.10/24 dev eth0",
			"1.000s fe1: notify fault \"\" from-running",
			"1.000s fe1: notify backup \"198.51.100.10/24\" link-down",
			"1.000s fe2: ip addr replace 198.51.100.10/24 dev eth0 label eth0:vw",
			"1.000s fe2: notify master \"198.51.100.10/24\" partner-gone",
		)
		b.stop(t)
		check(t, fx, "garp",
			"2.000s fe2: ip addr del 198.51.100.10/24 dev eth0",
			"2.000s fe2: ip addr del 198.51.100.20/24 dev eth0",
			"2.000s fe2: notify backup \"198.51.100.10/24\" stopping",
			"2.000s fe2: notify backup \"198.51.100.20/24\" stopping",
			"2.000s fe2: notify stopping \"\" from-running",
		)
		a.stop(t)
	})
}
