// Command lab runs the whole ringfront system on one machine, in network
// namespaces: two dnslb servers, four frontends in two vipwatch pairs
// that also run appnode, and a client. It needs root.
//
//	lab up       build the network, start every daemon, wait until the
//	             service answers (idempotent)
//	lab down     stop every daemon the lab started and remove every
//	             namespace and link
//	lab status   what runs where
//	lab drill [NAME...]
//	             run failover drills (all of them when no name is given)
//	             and report what a client saw
//
// The run directory (lab/run by default) holds the rendered configs,
// the logs and the list of started processes.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

func main() {
	run := flag.String("run", "lab/run", "run directory: configs, logs, process list")
	bin := flag.String("bin", "bin", "directory with the dnslb, vipwatch and appnode binaries")
	configs := flag.String("configs", "configs", "directory with the example configs")
	flag.StringVar(&prefix, "prefix", prefix, "prefix of the lab's namespace names")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: lab [flags] up|down|status|drill [NAME...]\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() < 1 {
		flag.Usage()
		os.Exit(2)
	}
	caFile = filepath.Join(abs(*run), "tls", "ca.crt")
	// The client side of a drill, run inside rf-client.
	for name, f := range map[string]func([]string) error{"load": runLoad, "served": runServed} {
		if flag.Arg(0) != name {
			continue
		}
		if err := f(flag.Args()[1:]); err != nil {
			fmt.Fprintf(os.Stderr, "lab %s: %v\n", name, err)
			os.Exit(1)
		}
		return
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "lab: needs root (network namespaces); try: sudo make lab")
		os.Exit(1)
	}
	l := &lab{run: abs(*run), bin: abs(*bin), configs: abs(*configs)}
	var err error
	switch flag.Arg(0) {
	case "up":
		err = l.up(context.Background())
	case "down":
		err = l.down()
	case "status":
		err = l.status()
	case "drill":
		err = l.drillAll(context.Background(), flag.Args()[1:])
	default:
		flag.Usage()
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "lab:", err)
		os.Exit(1)
	}
}

func abs(p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		return p
	}
	return a
}

type lab struct {
	run, bin, configs string
	procs             []proc
}

// up builds the lab, or leaves a healthy one as it is.
func (l *lab) up(ctx context.Context) error {
	ps, err := loadProcs(l.run)
	if err != nil {
		return err
	}
	if len(ps) > 0 && allAlive(ps) && len(namespaces()) == len(hosts)+1 {
		fmt.Println("lab: already up")
		return l.status()
	}
	if len(ps) > 0 || len(namespaces()) > 0 {
		fmt.Println("lab: cleaning up a previous, incomplete lab")
		if err := l.down(); err != nil {
			return err
		}
	}
	for _, b := range []string{"dnslb", "vipwatch", "appnode"} {
		if _, err := os.Stat(filepath.Join(l.bin, b)); err != nil {
			return fmt.Errorf("%s not built (run make build): %w", b, err)
		}
	}
	if err := os.MkdirAll(l.run, 0o755); err != nil {
		return err
	}
	// A half-failed start cleans up after itself.
	ok := false
	defer func() {
		if !ok {
			fmt.Fprintln(os.Stderr, "lab: start failed; removing what was started (logs stay in", l.run+")")
			l.down()
		}
	}()
	fmt.Println("lab: building the network")
	if err := buildNetwork(); err != nil {
		return err
	}
	if err := l.startAll(); err != nil {
		return err
	}
	if err := l.waitServing(ctx, 60*time.Second); err != nil {
		return err
	}
	ok = true
	return l.status()
}

func allAlive(ps []proc) bool {
	for _, p := range ps {
		if !p.alive() {
			return false
		}
	}
	return true
}

// record adds a started process to the list on disk at once, so a crash
// of the lab command itself leaves nothing unaccounted for.
func (l *lab) record(p proc) error {
	l.procs = append(l.procs, p)
	return saveProcs(l.run, l.procs)
}

// down stops the lab's processes (by recorded PID and start time) and
// removes its namespaces.
func (l *lab) down() error {
	ps, err := loadProcs(l.run)
	if err != nil {
		return err
	}
	for _, p := range ps {
		p.stop(syscall.SIGTERM, 5*time.Second)
	}
	os.Remove(procsFile(l.run))
	l.procs = nil
	if err := removeNetwork(); err != nil {
		return err
	}
	if left := namespaces(); len(left) > 0 {
		return fmt.Errorf("namespaces left behind: %s", strings.Join(left, " "))
	}
	fmt.Println("lab: down")
	return nil
}

var errNotUp = errors.New("the lab is not up (make lab)")
