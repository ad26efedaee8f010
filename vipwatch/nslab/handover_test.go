package nslab

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestHandoverDrill moves VIP1 from fe1 to fe2 with `vipwatch handover`
// and back with `vipwatch takeback` while a client sends an HTTP
// request to VIP1 every 10ms, each on a new connection with a 500ms
// timeout. Not one request may fail.
func TestHandoverDrill(t *testing.T) {
	d := newDrill(t, "h")
	d.start("fe1", true)
	d.start("fe2", true)
	d.settle()
	cfg, err := d.lab.Config(d.v, "fe1", true)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	// 1000 probes at 10ms bound the run to a little over 10s.
	p := d.lab.StartProber(ctx, d.lab.Client, VIP1.Addr(), 10*time.Millisecond, 500*time.Millisecond, 1000)
	defer p.Stop()
	waitAnswers := func(node string, n int) {
		t.Helper()
		base := p.Answers(node)
		if err := WaitFor(5*time.Second, "probes answered by "+node, func() (bool, error) { return p.Answers(node) >= base+n, nil }); err != nil {
			t.Fatal(err)
		}
	}
	waitAnswers("fe1", 20)

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

	p.Stop()
	sent, failures, order := p.Result()
	t.Logf("%d probes; answered by %v", sent, order)
	if len(failures) > 0 {
		t.Errorf("%d of %d probes failed across handover and takeback:\n%s", len(failures), sent, strings.Join(failures, "\n"))
	}
	if want := []string{"fe1", "fe2"}; strings.Join(order, ",") != strings.Join(want, ",") {
		t.Errorf("answering nodes in order = %v, want %v", order, want)
	}
}
