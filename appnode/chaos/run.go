package chaos

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/ringfront/ringfront/appnode/chaos/cluster"
	"github.com/ringfront/ringfront/appnode/chaos/history"
	"github.com/ringfront/ringfront/appnode/client"
)

// Profile is a cluster shape the chaos test runs.
type Profile struct {
	Name     string
	Replicas int
}

// The profiles of issue 13.
var (
	ProfileA = Profile{Name: "A", Replicas: 3}
	ProfileB = Profile{Name: "B", Replicas: 2}
)

// Config is one run of one profile.
type Config struct {
	Profile Profile
	// Seed draws the fault schedule, the setup follows and every
	// worker's operations.
	Seed    uint64
	Members int
	// Rounds is how often the schedule has each fault kind.
	Rounds int
	// Baseline is the fault-free window before the first fault;
	// Window each fault's length; Quiet the load without faults after
	// each fault has healed and the members agree.
	Baseline, Window, Quiet time.Duration
	// ConvergeWait is how long the checker waits after each heal for
	// the members to agree (beyond MaxConvergence is a violation);
	// FinalWait how long it waits at the end for fan-out to settle and
	// the members to agree.
	ConvergeWait, FinalWait time.Duration
	Users                   int
	PlainWorkers            int
	SmartWorkers            int
	// Interval is the least time between two operations of a worker.
	Interval time.Duration
	// Appnode is the binary, built with -tags chaos.
	Appnode string
	// Dir receives the members' configs, data and logs and the history.
	Dir string
	// Progress receives a line per step; nil means none.
	Progress io.Writer
}

// Bounded is the run inside `go test`: each fault kind once.
func Bounded(p Profile, seed uint64) Config {
	return Config{Profile: p, Seed: seed, Members: 5, Rounds: 1,
		Baseline: 4 * time.Second, Window: 5 * time.Second, Quiet: 2 * time.Second,
		ConvergeWait: history.MaxConvergence + time.Second, FinalWait: history.MaxConvergence + 2*time.Second,
		Users: 24, PlainWorkers: 4, SmartWorkers: 4, Interval: 50 * time.Millisecond}
}

// Full is the run of `make chaos`: each fault kind twice.
func Full(p Profile, seed uint64) Config {
	c := Bounded(p, seed)
	c.Rounds, c.Baseline, c.Quiet, c.FinalWait = 2, 5*time.Second, 3*time.Second, 30*time.Second
	return c
}

func (c *Config) validate() error {
	switch {
	case c.Members < 3:
		return fmt.Errorf("members: %d is fewer than 3 (a partition needs a majority and a minority)", c.Members)
	case c.Profile.Replicas < 1 || c.Profile.Replicas > c.Members:
		return fmt.Errorf("replicas: %d is not from 1 to members (%d)", c.Profile.Replicas, c.Members)
	case c.Rounds < 1:
		return fmt.Errorf("rounds: %d is fewer than 1", c.Rounds)
	case c.Users < 2 || c.Users > 1000:
		return fmt.Errorf("users: %d is not from 2 to 1000", c.Users)
	case c.PlainWorkers < 0 || c.SmartWorkers < 0 || c.PlainWorkers+c.SmartWorkers == 0:
		return fmt.Errorf("workers: %d plain and %d smart, need at least one", c.PlainWorkers, c.SmartWorkers)
	case c.Interval <= 0 || c.Baseline <= 0 || c.Window <= 0 || c.Quiet < 0 || c.ConvergeWait <= 0 || c.FinalWait <= 0:
		return errors.New("interval, baseline, window, converge and final waits must be positive")
	case c.Appnode == "":
		return errors.New("appnode: no binary given")
	case c.Dir == "":
		return errors.New("dir: no directory given")
	}
	return nil
}

// setupFollows is how many others each user follows before the faults.
const setupFollows = 3

// Run runs one profile: it builds the LAN, starts the members, makes
// the users, runs the load through the baseline and every fault of the
// schedule, then checks. Whatever happens it removes every process and
// namespace it made before it returns. An error means the run could not
// be made (or was cancelled); what it found is in the Report.
func Run(ctx context.Context, cfg Config) (rep *Report, err error) {
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("chaos config: %w", err)
	}
	if err := cluster.CheckBinary(cfg.Appnode); err != nil {
		return nil, err
	}
	r := &run{cfg: cfg, h: &history.History{}}
	if err := cluster.CleanStale(); err != nil {
		r.say("removing what killed runs left: %v", err)
	}
	topo, err := cluster.NewTopology(strings.ToLower(cfg.Profile.Name), cfg.Members)
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, topo.Close()) }()
	if r.cl, err = cluster.New(topo, cfg.Appnode, cfg.Dir, cfg.Profile.Replicas); err != nil {
		return nil, err
	}
	// Before the topology goes: nothing may still run in it.
	defer func() { err = errors.Join(err, r.cl.Close()) }()
	r.addrs = r.cl.Addrs()

	rep = &Report{Config: cfg, Schedule: Schedule(cfg.Seed, cfg.Rounds, cfg.Members), Started: time.Now()}
	r.say("starting %d members (replicas %d) in %s*", cfg.Members, cfg.Profile.Replicas, strings.TrimSuffix(topo.Bridge, "br"))
	g, gctx := errgroup.WithContext(ctx)
	for i := range cfg.Members {
		g.Go(func() error { return r.cl.Start(gctx, i) })
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}

	transport := &http.Transport{DialContext: topo.DialContext, MaxIdleConnsPerHost: 16, IdleConnTimeout: 30 * time.Second}
	defer transport.CloseIdleConnections()
	tokens := map[string]string{}
	// No per-attempt timeout of our own: the operation's 3 s deadline
	// bounds the client, which goes on to the next member when an
	// attempt fails (refused, reset), as it ships.
	sc, err := client.New(r.addrs, client.Options{HTTP: &http.Client{Transport: transport}})
	if err != nil {
		return nil, err
	}
	smart := &smartClient{c: sc, tokens: tokens}
	plain := &plainClient{http: &http.Client{Transport: transport, Timeout: ClientTimeout}, tokens: tokens}
	if r.users, err = setup(ctx, cfg, smart, r.h); err != nil {
		return nil, err
	}
	owners := map[string]string{}
	prefs := map[string][]string{}
	for _, u := range r.users {
		pref, err := sc.Lookup(ctx, u)
		if err != nil {
			return nil, fmt.Errorf("looking up %s's owner: %w", u, err)
		}
		owners[u], prefs[u] = pref[0], pref
	}
	r.rd = &reader{http: &http.Client{Transport: transport}, tokens: tokens}
	r.ne = newNemesis(r.cl, r.addrs, time.Now)

	// From here tokens is only read.
	stop := r.startLoad(plain, smart)
	defer stop()
	windows, lastHeal, err := r.faults(ctx, rep.Schedule)
	if err != nil {
		return nil, err
	}
	stop()
	if err := r.finish(ctx, rep, lastHeal); err != nil {
		return nil, err
	}
	ops := r.h.Ops()
	rep.Windows = history.Availability(ops, windows, r.ne.Outages(), func(u string) []string { return prefs[u] })
	rep.Clock, rep.ClockErrors = history.ClockSeen(ops, windows, r.addrs, owners)
	return rep, nil
}

// run is the state of one run once its members serve.
type run struct {
	cfg   Config
	cl    *cluster.Cluster
	addrs []string // the members' API addresses
	users []string
	h     *history.History
	rd    *reader
	ne    *nemesis
	gt    gate
	// known is the difference the last agreement check gave up on
	// ("" when the members agreed).
	known string
}

func (r *run) say(format string, args ...any) {
	if r.cfg.Progress != nil {
		fmt.Fprintf(r.cfg.Progress, "%s chaos %s: %s\n", time.Now().Format("15:04:05.000"), r.cfg.Profile.Name, fmt.Sprintf(format, args...))
	}
}

// startLoad starts the workers; the function it returns stops them and
// waits until they have (it may be called twice).
func (r *run) startLoad(plain *plainClient, smart *smartClient) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	tag := fmt.Sprintf("chaos%s-%d", r.cfg.Profile.Name, r.cfg.Seed)
	for i := range r.cfg.PlainWorkers + r.cfg.SmartWorkers {
		kind, req := history.Plain, requester(plain)
		if i >= r.cfg.PlainWorkers {
			kind, req = history.Smart, smart
		}
		gen := newGenerator(r.cfg.Seed, kind, i, r.users, r.addrs, tag)
		wg.Go(func() { worker(ctx, gen, req, r.h, &r.gt, r.cfg.Interval) })
	}
	return sync.OnceFunc(func() { cancel(); wg.Wait() })
}

// faults runs the baseline window, then each fault of the schedule:
// inject, wait a window, heal, pause the load while the members are
// read until they agree, then a quiet gap. It returns the windows and
// when the last fault was healed.
func (r *run) faults(ctx context.Context, schedule []history.Fault) ([]history.Window, time.Time, error) {
	r.say("baseline %v", r.cfg.Baseline)
	w := history.Window{Name: "baseline", Start: time.Now()}
	if err := sleep(ctx, r.cfg.Baseline); err != nil {
		return nil, time.Time{}, err
	}
	w.End = time.Now()
	windows := []history.Window{w}
	lastHeal := w.End
	r.known = ""
	for i, f := range schedule {
		r.say("fault %d/%d: %s for %v", i+1, len(schedule), f, r.cfg.Window)
		w := history.Window{Name: f.String(), Fault: &schedule[i], Start: time.Now()}
		if err := r.ne.Apply(ctx, f); err != nil {
			return nil, time.Time{}, fmt.Errorf("applying %s: %w", f, err)
		}
		if err := sleep(ctx, r.cfg.Window); err != nil {
			return nil, time.Time{}, err
		}
		w.End = time.Now()
		if err := r.ne.Heal(ctx, f); err != nil {
			return nil, time.Time{}, fmt.Errorf("healing %s: %w", f, err)
		}
		lastHeal = w.End
		r.gt.Pause() // waits for the operations under way
		w.Converged, w.Agreed, w.Why = converge(ctx, r.rd, r.addrs, r.users, readFollows, w.End, r.cfg.ConvergeWait, r.known)
		r.gt.Resume()
		r.known = strings.TrimPrefix(w.Why, "still: ")
		if w.Agreed {
			r.say("healed; members agree %.1f s after healing", w.Converged.Seconds())
		} else {
			r.say("healed; members still disagree %.1f s after healing: %s", w.Converged.Seconds(), w.Why)
		}
		windows = append(windows, w)
		if err := sleep(ctx, r.cfg.Quiet); err != nil {
			return nil, time.Time{}, err
		}
	}
	return windows, lastHeal, nil
}

// finish runs once the load has stopped: it waits for fan-out to
// settle and the members to agree, reads everything through every
// member, checks it against the history and saves the history.
func (r *run) finish(ctx context.Context, rep *Report, lastHeal time.Time) error {
	stopped := time.Now()
	rep.SinceLastHeal = stopped.Sub(lastHeal)
	r.say("load stopped; waiting for fan-out to settle")
	rep.FanoutSettled, rep.FanoutWait = settle(ctx, r.cl, r.cfg.Members, r.cfg.FinalWait)
	rep.FinalConverged, rep.FinalAgreed, rep.FinalWhy = converge(ctx, r.rd, r.addrs, r.users, readFollows|readPosts, stopped, r.cfg.FinalWait, r.known)
	r.say("reading everything through every member")
	snap := r.rd.snapshot(ctx, r.addrs, r.users, readFollows|readPosts|readTimelines)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	ops := r.h.Ops()
	rep.HistoryFile = filepath.Join(r.cfg.Dir, "history.jsonl")
	if err := r.h.WriteFile(rep.HistoryFile); err != nil {
		r.say("%v", err)
		rep.HistoryFile = ""
	}
	rep.Duration = time.Since(rep.Started)
	rep.Ops = len(ops)
	rep.Outcomes = map[history.Outcome]int{}
	for _, o := range ops {
		rep.Outcomes[o.Outcome]++
	}
	rep.Safety = history.Check(ops, snap, r.users)
	return nil
}

// setup makes the users and their first follows through the smart
// client, one at a time, before any fault; it returns the user names.
func setup(ctx context.Context, cfg Config, smart *smartClient, h *history.History) ([]string, error) {
	users := make([]string, cfg.Users)
	for i := range users {
		users[i] = fmt.Sprintf("u%03d", i)
	}
	rnd := rand.New(rand.NewPCG(cfg.Seed, 0x7365747570)) // "setup"
	var ops []history.Op
	for _, u := range users {
		ops = append(ops, history.Op{Client: history.Smart, Kind: history.CreateUser, User: u, Setup: true})
	}
	for i, u := range users {
		n := 0
		for _, j := range rnd.Perm(len(users)) {
			if j == i {
				continue
			}
			ops = append(ops, history.Op{Client: history.Smart, Kind: history.Follow, User: u, Other: users[j], Setup: true})
			if n++; n == setupFollows {
				break
			}
		}
	}
	for _, o := range ops {
		octx, cancel := context.WithTimeout(ctx, ClientTimeout)
		smart.do(octx, &o)
		cancel()
		h.Add(o)
		if o.Outcome != history.OK {
			return nil, fmt.Errorf("setting up before any fault: %s", o)
		}
	}
	return users, nil
}

// converge reads through every member until they all agree or wait has
// passed since from; it returns the time from from to the agreeing
// read (or to the last one) and, when they did not agree, why. When the
// first difference is known, the one an earlier check gave up on, it
// does not wait for it again: that difference outlived a whole wait
// already and is reported with its first window.
func converge(ctx context.Context, rd *reader, addrs, users []string, what int, from time.Time, wait time.Duration, known string) (time.Duration, bool, string) {
	for {
		snap := rd.snapshot(ctx, addrs, users, what)
		ok, why := history.Agreement(snap, users)
		took := time.Since(from)
		if !ok && known != "" && why == known {
			return took, false, "still: " + why
		}
		if ok || took >= wait || ctx.Err() != nil {
			return took, ok, why
		}
		if sleep(ctx, 200*time.Millisecond) != nil {
			return took, false, why
		}
	}
}

// settle waits until no member has fan-out deliveries waiting, or wait
// has passed; it returns whether they settled and how long it took.
func settle(ctx context.Context, cl *cluster.Cluster, members int, wait time.Duration) (bool, time.Duration) {
	start := time.Now()
	for {
		busy := false
		for i := range members {
			if n, err := cl.OutboxEntries(ctx, i); err != nil || n > 0 {
				busy = true
				break
			}
		}
		if !busy {
			return true, time.Since(start)
		}
		if time.Since(start) >= wait || sleep(ctx, 200*time.Millisecond) != nil {
			return false, time.Since(start)
		}
	}
}

// sleep waits d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
