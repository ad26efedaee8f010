package member

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// Event is one state change a notify hook hears about.
type Event struct {
	// State is the daemon's new state (running, fault, stopping) with
	// VIP empty, or a VIP's: master (this node now holds it) or backup
	// (it no longer does).
	State  string
	VIP    string
	Reason string
}

// States of a VIP in Events.
const (
	EventMaster = "master"
	EventBackup = "backup"
)

// hook hears every state change. Notify must not block.
type hook interface {
	Notify(Event)
}

// maxQueuedHooks bounds the events waiting for a slow hook: far more
// than the transitions of any failover, small enough that a hook that
// always hangs cannot grow the daemon's memory.
const maxQueuedHooks = 256

// hookRunner runs the notify command for each event, one at a time in
// the order of the events, on its own goroutine: Notify only queues,
// so a slow or hung command never delays the daemon loop. Each run is
// killed after the timeout. Create it with newHookRunner and run Run.
type hookRunner struct {
	argv    []string
	timeout time.Duration
	node    string
	log     *slog.Logger
	counts  func(func(*Counters))

	mu     sync.Mutex // guards queue
	queue  []Event
	wake   chan struct{} // holds a token while the queue is not empty
	closed chan struct{}
}

func newHookRunner(cfg NotifyConfig, node string, log *slog.Logger, counts func(func(*Counters))) *hookRunner {
	return &hookRunner{argv: cfg.Command, timeout: cfg.Timeout, node: node, log: log, counts: counts,
		wake: make(chan struct{}, 1), closed: make(chan struct{})}
}

// Notify queues ev. It never blocks; past maxQueuedHooks waiting
// events, ev is dropped and counted as a failure.
func (n *hookRunner) Notify(ev Event) {
	n.mu.Lock()
	if len(n.queue) >= maxQueuedHooks {
		n.mu.Unlock()
		n.counts(func(c *Counters) { c.NotifyFailures++ })
		n.log.Error("notify hook queue full; event dropped", "op", "notify", "state", ev.State, "ip", ev.VIP, "reason", ev.Reason)
		return
	}
	n.queue = append(n.queue, ev)
	n.mu.Unlock()
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

// Run runs queued hooks until ctx is done, then runs what is still
// queued (each bounded by the timeout, all by drain) and returns.
func (n *hookRunner) Run(ctx context.Context, drain time.Duration) {
	for {
		select {
		case <-n.wake:
			n.runQueued(context.WithoutCancel(ctx))
		case <-ctx.Done():
			// The last events (released VIPs, stopping) matter most.
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), drain)
			defer cancel()
			n.runQueued(dctx)
			return
		}
	}
}

func (n *hookRunner) runQueued(ctx context.Context) {
	for {
		n.mu.Lock()
		if len(n.queue) == 0 {
			n.mu.Unlock()
			return
		}
		ev := n.queue[0]
		n.queue = n.queue[1:]
		n.mu.Unlock()
		if ctx.Err() != nil {
			n.counts(func(c *Counters) { c.NotifyFailures++ })
			n.log.Error("notify hook not run: shutting down", "op", "notify", "state", ev.State, "ip", ev.VIP, "reason", ev.Reason)
			continue
		}
		n.run(ctx, ev)
	}
}

// run runs the command once for ev.
func (n *hookRunner) run(ctx context.Context, ev Event) {
	ctx, cancel := context.WithTimeout(ctx, n.timeout)
	defer cancel()
	args := append(append([]string(nil), n.argv[1:]...), ev.State, ev.VIP, ev.Reason)
	cmd := exec.CommandContext(ctx, n.argv[0], args...)
	cmd.Env = append(os.Environ(),
		"VIPWATCH_STATE="+ev.State, "VIPWATCH_VIP="+ev.VIP, "VIPWATCH_REASON="+ev.Reason, "VIPWATCH_NODE="+n.node)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = time.Second // a child that keeps the output open does not hold us
	start := time.Now()
	err := cmd.Run()
	n.counts(func(c *Counters) {
		c.NotifyRuns++
		if err != nil {
			c.NotifyFailures++
		}
	})
	if err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			err = fmt.Errorf("killed after %v: %w", n.timeout, err)
		}
		n.log.Error("notify hook failed", "op", "notify", "state", ev.State, "ip", ev.VIP, "reason", ev.Reason,
			"output", strings.TrimSpace(lastBytes(out.String(), 512)), "err", fmt.Errorf("running %s: %w", n.argv[0], err))
		return
	}
	n.log.Debug("notify hook ran", "op", "notify", "state", ev.State, "ip", ev.VIP, "reason", ev.Reason, "duration_s", time.Since(start).Seconds())
}

func lastBytes(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
