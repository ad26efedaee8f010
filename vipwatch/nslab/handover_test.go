package nslab

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestHandoverDrill moves VIP1 from fe1 to fe2 with `vipwatch handover`
// and back with `vipwatch takeback` while a client sends a UDP request
// to VIP1 every 10ms (500ms timeout): not one may fail. It also sends an
// HTTP request every 10ms, each on a new connection; see checkProbes
// for the one way such a request can fail.
func TestHandoverDrill(t *testing.T) {
	d := newDrill(t, "h")
	// The admin API needs a token: the CLI reads it from the config's
	// token_file, a request without it is refused.
	d.v.AdminTokenFile = filepath.Join(t.TempDir(), "admin.token")
	if err := os.WriteFile(d.v.AdminTokenFile, []byte("lab admin token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	d.startPair()
	cfg, err := d.lab.Config(d.v, "fe1", true)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	// 1000 probes at 10ms bound the run to a little over 10s.
	p, hp, waitAnswers := startProbes(ctx, t, d)
	waitAnswers("fe1", 20)

	if out, err := d.lab.Run(ctx, d.lab.FE1, "curl", "-s", "-m", "2", "-X", "POST", "http://127.0.0.1:8054/v1/handover"); err != nil || !strings.Contains(out, "admin token") {
		t.Errorf("handover without the admin token answered %q, %v; want a token error", out, err)
	}
	d.holders(VIP1, "fe1")
	out, err := d.lab.Run(ctx, d.lab.FE1, d.v.Binary, "handover", "--config", cfg)
	if err != nil {
		t.Fatalf("vipwatch handover: %v", err)
	}
	if !strings.Contains(out, "giving to the partner: 198.51.100.10/24") {
		t.Errorf("handover printed no status saying what fe1 gives:\n%s", out)
	}
	d.holders(VIP1, "fe2")
	waitAnswers("fe2", 30)
	// The handover lasts while both daemons run.
	d.holders(VIP1, "fe2")

	if _, err := d.lab.Run(ctx, d.lab.FE1, d.v.Binary, "takeback", "--config", cfg); err != nil {
		t.Fatalf("vipwatch takeback: %v", err)
	}
	d.holders(VIP1, "fe1")
	waitAnswers("fe1", 30)
	d.holders(VIP2, "fe2")

	checkProbes(t, p, hp, 2)
}

// startProbes starts a UDP and an HTTP prober of VIP1 from the client,
// one probe every 10 ms (1000 at most, so a little over 10 s), and
// returns them with waitAnswers, which waits until node has answered n
// more UDP probes.
func startProbes(ctx context.Context, t *testing.T, d *drill) (udp, http *Prober, waitAnswers func(node string, n int)) {
	t.Helper()
	udp, err := d.lab.StartUDPProber(ctx, d.lab.Client, VIP1.Addr(), 10*time.Millisecond, 500*time.Millisecond, 1000)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(udp.Stop)
	http = d.lab.StartProber(ctx, d.lab.Client, VIP1.Addr(), 10*time.Millisecond, 500*time.Millisecond, 1000)
	t.Cleanup(http.Stop)
	waitAnswers = func(node string, n int) {
		t.Helper()
		base := udp.Answers(node)
		if err := WaitFor(5*time.Second, "probes answered by "+node, func() (bool, error) { return udp.Answers(node) >= base+n, nil }); err != nil {
			t.Fatal(err)
		}
	}
	return udp, http, waitAnswers
}

// checkProbes stops the probers and checks them after moves moves of
// the VIP. UDP requests must all be answered, by fe1 first and then
// fe2. An HTTP request fails only if its connection is open at the
// instant the VIP moves: a segment that reaches the new holder, which
// knows no such connection, is reset; one that reaches the old holder
// just after it let the address go is dropped, and the connection
// times out (the probe's deadline is shorter than TCP's first
// retransmission). That window is a fraction of a millisecond per move,
// inherent in moving an address between machines; the check allows one
// such failure per move and no other.
func checkProbes(t *testing.T, udp, http *Prober, moves int) {
	t.Helper()
	udp.Stop()
	http.Stop()
	sent, failures, order := udp.Result()
	t.Logf("UDP: %d probes; answered by %v", sent, order)
	if len(failures) > 0 {
		t.Errorf("%d of %d UDP probes failed:\n%s", len(failures), sent, strings.Join(failures, "\n"))
	}
	if want := []string{"fe1", "fe2"}; strings.Join(order, ",") != strings.Join(want, ",") {
		t.Errorf("answering nodes in order = %v, want %v", order, want)
	}
	sent, failures, _ = http.Result()
	t.Logf("HTTP: %d probes, %d failed", sent, len(failures))
	for _, f := range failures {
		if !strings.Contains(f, "connection reset by peer") && !strings.Contains(f, "i/o timeout") {
			t.Errorf("HTTP probe failed other than by a reset or a lost segment at the move: %s", f)
		}
	}
	if len(failures) > moves {
		t.Errorf("%d HTTP probes failed in %d moves, want at most one a move:\n%s", len(failures), moves, strings.Join(failures, "\n"))
	}
}
