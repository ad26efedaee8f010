//go:build chaostest

// The chaos run is heavy (five daemons, eight clients, two minutes):
// it runs on its own, after the other tests (make chaostest, part of
// make test), never beside them in go test ./...

package chaos

import (
	"flag"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/ringfront/ringfront/appnode/chaos/cluster"
)

var seed = flag.Uint64("chaos.seed", 1, "seed of the chaos test's schedule and operations")
var availFails = flag.Bool("chaos.availability-fails", false, "fail the test when availability misses its targets (make chaos does)")

// logWriter sends progress lines to the test log.
type logWriter struct{ t *testing.T }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// TestChaos runs the bounded chaos schedule (each fault kind once) on
// both profiles against a real appnode built with -tags chaos. It fails
// on any safety violation; availability figures are printed with their
// verdicts and fail only with -chaos.availability-fails. The report goes
// to the log (go test -v) and, when $ARTIFACTS is set, to
// $ARTIFACTS/chaos-<profile>/report.txt beside the members' logs and
// the history.
func TestChaos(t *testing.T) {
	if err := cluster.RequireTools(); err != nil {
		t.Skip("skipping the chaos test: " + err.Error())
	}
	if testing.Short() {
		t.Skip("skipping the chaos test in -short mode: it takes about a minute per profile")
	}
	ctx, stop := signal.NotifyContext(t.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	bin, err := cluster.BuildAppnode(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []Profile{ProfileA, ProfileB} {
		t.Run("profile"+p.Name, func(t *testing.T) {
			cfg := Bounded(p, *seed)
			cfg.Appnode, cfg.Dir, cfg.Progress = bin, t.TempDir(), logWriter{t}
			if a := os.Getenv("ARTIFACTS"); a != "" {
				cfg.Dir = filepath.Join(a, "chaos-"+p.Name)
				if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			rep, err := Run(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			var b strings.Builder
			rep.Print(&b)
			t.Log("\n" + b.String())
			if os.Getenv("ARTIFACTS") != "" {
				os.WriteFile(filepath.Join(cfg.Dir, "report.txt"), []byte(b.String()), 0o644)
			}
			for _, v := range rep.SafetyViolations() {
				t.Errorf("seed %d: %s", *seed, v)
			}
			if *availFails {
				for _, m := range rep.AvailabilityMisses() {
					t.Errorf("seed %d: availability: %s", *seed, m)
				}
			}
		})
	}
}
