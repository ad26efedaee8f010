package nslab

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestTrackDrill gives each node a tracked service (a TCP listener on
// 127.0.0.1:8081 in its namespace) and a notify hook that appends its
// arguments to a file. Closing fe1's listener makes fe1 give VIP1 to fe2;
// reopening it brings VIP1 back (preempt). A client probing VIP1 every
// 10ms sees no failure (the responder runs throughout; see
// checkProbes), and each node's hook is called once per transition.
func TestTrackDrill(t *testing.T) {
	d := newDrill(t, "t")
	dir := t.TempDir()
	hook := filepath.Join(dir, "hook")
	script := "#!/bin/sh\necho \"$*\" >> " + dir + "/calls-$VIPWATCH_NODE\n"
	if err := os.WriteFile(hook, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	d.v.Extra = fmt.Sprintf("track: {type: tcp, port: 8081, interval: 50ms, timeout: 40ms, rise: 2, fall: 2}\nnotify: {command: [%q], timeout: 2s}\n", hook)

	listen := func(node string) net.Listener {
		t.Helper()
		var ln net.Listener
		err := d.lab.Do(d.lab.NS(node), func() error {
			var err error
			ln, err = net.Listen("tcp", "127.0.0.1:8081")
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return ln
	}
	ln1 := listen("fe1")
	ln2 := listen("fe2")
	defer ln2.Close()
	d.startPair()

	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	p, hp, waitAnswers := startProbes(ctx, t, d)
	waitAnswers("fe1", 20)

	ln1.Close() // fe1's service fails
	d.holders(VIP1, "fe2")
	waitAnswers("fe2", 30)
	ln1 = listen("fe1") // and recovers
	defer ln1.Close()
	d.holders(VIP1, "fe1")
	waitAnswers("fe1", 30)
	d.holders(VIP2, "fe2")

	checkProbes(t, p, hp, 2)

	// Stop both, fe1 first, so that the hooks' files are complete.
	stop := func(node string) {
		t.Helper()
		d.procs[node].Signal(syscall.SIGTERM)
		if err := d.procs[node].Wait(5 * time.Second); err != nil {
			t.Fatalf("%s after SIGTERM: %v", node, err)
		}
	}
	stop("fe1")
	d.holders(VIP1, "fe2")
	stop("fe2")
	calls := func(node string) string {
		raw, err := os.ReadFile(filepath.Join(dir, "calls-"+node))
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(raw))
	}
	wantFE1 := strings.Join([]string{
		"running  from-starting",
		"master 198.51.100.10/24 home",
		"backup 198.51.100.10/24 handed-over",
		"master 198.51.100.10/24 takeback",
		"stopping  from-running",
		"backup 198.51.100.10/24 stopping",
	}, "\n")
	wantFE2 := strings.Join([]string{
		"running  from-starting",
		"master 198.51.100.20/24 home",
		"master 198.51.100.10/24 given",
		"backup 198.51.100.10/24 partner-reclaims",
		"master 198.51.100.10/24 partner-gone",
		"stopping  from-running",
		"backup 198.51.100.10/24 stopping",
		"backup 198.51.100.20/24 stopping",
	}, "\n")
	if got := calls("fe1"); got != wantFE1 {
		t.Errorf("fe1's hook calls:\n%s\nwant:\n%s", got, wantFE1)
	}
	if got := calls("fe2"); got != wantFE2 {
		t.Errorf("fe2's hook calls:\n%s\nwant:\n%s", got, wantFE2)
	}
}
