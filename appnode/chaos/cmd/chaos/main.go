// Command chaos runs appnode's Jepsen-style chaos test (package
// appnode/chaos) and prints its report: `make chaos` runs the full
// schedule of both profiles. It needs root, ip and nft.
//
//	chaos [-seed 1] [-profiles A,B] [-bounded] [-appnode bin/appnode-chaos] [-dir DIR]
//
// It exits 0 when every safety check passes (and, with
// -availability-fails, every availability target is met), 1 when one
// does not, 2 when the run could not be made. Ctrl-C stops the run and
// removes everything it made.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/ringfront/ringfront/appnode/chaos"
	"github.com/ringfront/ringfront/appnode/chaos/cluster"
)

func main() {
	os.Exit(run())
}

func run() int {
	seed := flag.Uint64("seed", 1, "seed of the fault schedule and of every client's operations")
	profiles := flag.String("profiles", "A,B", "profiles to run: A (replicas 3), B (replicas 2)")
	bounded := flag.Bool("bounded", false, "run the bounded schedule of go test (each fault once) instead of the full one")
	bin := flag.String("appnode", "", "appnode binary built with -tags chaos (default: build one)")
	dir := flag.String("dir", "", "where to keep configs, data, logs and histories, in DIR/profile-A and -B, emptied first (default: a temporary directory, removed)")
	availFails := flag.Bool("availability-fails", true, "exit 1 when availability misses its targets")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := cluster.RequireTools(); err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		return 2
	}
	work := *dir
	if work == "" {
		tmp, err := os.MkdirTemp("", "ringfront-chaos-")
		if err != nil {
			fmt.Fprintln(os.Stderr, "chaos:", err)
			return 2
		}
		defer os.RemoveAll(tmp)
		work = tmp
	}
	if *bin == "" {
		b, err := cluster.BuildAppnode(ctx, work)
		if err != nil {
			fmt.Fprintln(os.Stderr, "chaos:", err)
			return 2
		}
		*bin = b
	}
	code := 0
	for _, name := range strings.Split(*profiles, ",") {
		var p chaos.Profile
		switch strings.TrimSpace(name) {
		case "A":
			p = chaos.ProfileA
		case "B":
			p = chaos.ProfileB
		default:
			fmt.Fprintf(os.Stderr, "chaos: -profiles: %q is not A or B\n", name)
			return 2
		}
		cfg := chaos.Full(p, *seed)
		if *bounded {
			cfg = chaos.Bounded(p, *seed)
		}
		cfg.Appnode, cfg.Dir, cfg.Progress = *bin, filepath.Join(work, "profile-"+p.Name), os.Stderr
		// A fresh folder: members must not start on an earlier run's data.
		if err := os.RemoveAll(cfg.Dir); err != nil {
			fmt.Fprintln(os.Stderr, "chaos:", err)
			return 2
		}
		if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
			fmt.Fprintln(os.Stderr, "chaos:", err)
			return 2
		}
		rep, err := chaos.Run(ctx, cfg)
		if err != nil {
			fmt.Fprintf(os.Stderr, "chaos: profile %s: %v\n", p.Name, err)
			return 2
		}
		rep.Print(os.Stdout)
		fmt.Println()
		if len(rep.SafetyViolations()) > 0 || *availFails && len(rep.AvailabilityMisses()) > 0 {
			code = 1
		}
	}
	return code
}
