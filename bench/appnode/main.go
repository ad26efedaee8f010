// Command bench-appnode measures appnode on a 3-member loopback cluster
// beside nginx on the same machine in the same run:
//
//   - posts/s (each synced before it is acknowledged), beside the disk's
//     synced-write rate, which bounds it;
//   - user-feed reads/s sent to the owner (as the smart client does) and
//     to a non-owner that forwards them;
//   - home-timeline reads/s for a user following 100 users (read-time
//     merge);
//   - 307 answers/s from a non-owner in routing: redirect, against nginx
//     answering `return 307`.
//
// -replication, -fanout, -tier and -backup measure other things instead
// (see replication.go, fanout.go, tier.go, backup.go: -tier is the
// redirect tier on one CPU, appnode's 307 and forward against nginx's,
// with wrk as the load; -backup the time to back up a member holding a
// million posts and for it to catch up after a restore).
//
// Everything runs on 127.0.0.1; every load loop stops at -duration or
// -max-requests, whichever comes first. Run it under
// `flock -o /tmp/ringfront-bench.lock` on a shared machine.
package main

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/ringfront/ringfront/appnode/client"
	"github.com/ringfront/ringfront/appnode/ring"
)

type options struct {
	appnode     string
	nginx       string
	duration    time.Duration
	concurrency int
	rounds      int
	maxRequests int
	users       int
	followees   int
	postsEach   int
	out         string
	keep        bool
	maxprocs    int
	replication bool
	fanout      bool
	followers   int
	tier        bool
	wrk         string
	serverCPU   string // taskset -c for the servers; empty: not pinned
	loadCPU     string
	tierRun     time.Duration
	tierProfile bool
	tierRate    int
	backup      bool
	backupPosts int
	latePosts   int
	aeRate      int
}

func main() {
	var o options
	flag.StringVar(&o.appnode, "appnode", "bin/appnode", "appnode binary")
	flag.BoolVar(&o.replication, "replication", false, "measure replication instead: posts with replicas 1, 2 and 3, and reads with a member dead")
	flag.BoolVar(&o.fanout, "fanout", false, "measure fan-out on write instead: timeline reads before (read-time merge) and after, and posts by authors with 1, 1000 and -followers followers")
	flag.BoolVar(&o.tier, "tier", false, "measure the redirect tier instead: appnode's 307 and forward against nginx's, every server pinned to one CPU, wrk on another")
	flag.BoolVar(&o.backup, "backup", false, "measure backup and catch-up instead: appnode backup of a member holding -backup-posts posts, restore, and its catch-up")
	flag.IntVar(&o.backupPosts, "backup-posts", 1_000_000, "posts the backed-up member holds (-backup)")
	flag.IntVar(&o.latePosts, "late-posts", 10_000, "posts the backed-up member misses after the backup, and again while it is down (-backup)")
	flag.IntVar(&o.aeRate, "anti-entropy-rate", 0, "the members' anti_entropy_rate in -backup (0: appnode's default)")
	flag.StringVar(&o.wrk, "wrk", "wrk", "wrk binary (-tier's load)")
	flag.StringVar(&o.serverCPU, "server-cpu", "", "CPU list the servers are pinned to (taskset -c; -tier default 0)")
	flag.StringVar(&o.loadCPU, "load-cpu", "1", "CPU list wrk is pinned to (-tier)")
	flag.DurationVar(&o.tierRun, "tier-run", 3*time.Second, "length of each -tier run")
	flag.IntVar(&o.tierRate, "tier-rate", 4000, "with -tier, also load every row at this many requests/s (below every row's capacity), so CPU per request is compared at one rate (0: skip)")
	flag.BoolVar(&o.tierProfile, "tier-profile", false, "with -tier, also record CPU profiles of the redirecting and the forwarding member (kept in -out)")
	flag.IntVar(&o.followers, "followers", 20_000, "followers of the biggest author in -fanout")
	flag.StringVar(&o.nginx, "nginx", "/usr/sbin/nginx", "nginx binary (empty to skip the nginx peer)")
	flag.DurationVar(&o.duration, "duration", 5*time.Second, "length of each measurement")
	flag.IntVar(&o.concurrency, "concurrency", 32, "concurrent requests in flight")
	flag.IntVar(&o.rounds, "rounds", 3, "alternating rounds for each compared pair (direct/forward, appnode/nginx 307), so drifting load on a shared machine hits both alike")
	flag.IntVar(&o.maxRequests, "max-requests", 2_000_000, "upper bound on requests per measurement")
	flag.IntVar(&o.users, "users", 200, "users to create")
	flag.IntVar(&o.followees, "followees", 100, "users the timeline reader follows")
	flag.IntVar(&o.postsEach, "posts", 20, "posts per user before the read measurements")
	flag.StringVar(&o.out, "out", "bench/appnode/out", "directory for results.md and logs")
	flag.BoolVar(&o.keep, "keep", false, "keep the cluster's data directory")
	flag.IntVar(&o.maxprocs, "gomaxprocs", 0, "GOMAXPROCS for each appnode (0: Go's default, one per CPU)")
	bare := flag.String("bare-307", "", "serve only a bare net/http 307 handler: LISTEN=TARGET (what -tier starts as its floor row)")
	flag.Parse()
	if *bare != "" {
		fmt.Fprintln(os.Stderr, "bench-appnode:", serveBare307(*bare))
		os.Exit(1)
	}
	// SIGINT or SIGTERM ends the measurements; deferred stops then end
	// the children by pid.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	runner := run
	if o.replication {
		runner = runReplication
	}
	if o.fanout {
		runner = runFanout
	}
	if o.backup {
		runner = runBackup
	}
	if o.tier {
		runner = runTier
		if o.serverCPU == "" {
			o.serverCPU = "0"
		}
	}
	if err := runner(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "bench-appnode:", err)
		os.Exit(1)
	}
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// proc is a child process this benchmark started; stop ends it by pid.
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan error
}

func start(name, logPath string, env []string, args ...string) (*proc, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), env...)
	// A child must not outlive the benchmark (and keep holding ports,
	// or an inherited lock file descriptor) if the benchmark dies.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan error, 1)}
	go func() { p.done <- cmd.Wait(); logf.Close() }()
	return p, nil
}

func (p *proc) stop() {
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
}

func waitHTTP(url string, procs ...*proc) error {
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		for _, p := range procs {
			select {
			case err := <-p.done:
				return fmt.Errorf("%s exited: %v", p.name, err)
			default:
			}
		}
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode < 500 {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s did not answer within 20s", url)
}

type cluster struct {
	replicas int    // 0 means 2
	extra    string // more config keys, one per line (e.g. fanout_limit)
	dir      string
	members  []string
	admins   []string
	configs  []string
	procs    []*proc
}

func (c *cluster) writeConfigs(routing string) error {
	for i := range c.members {
		body := fmt.Sprintf(`node: app%d
listen: %q
advertise: %q
members: [%s]
vnodes: 128
replicas: %d
routing: %s
data_dir: %q
cluster_secret_file: %q
admin: {listen: %q}
log: {level: warn}
%s`, i+1, c.members[i], c.members[i], `"`+strings.Join(c.members, `", "`)+`"`, cmp.Or(c.replicas, 2), routing,
			c.dataDir(i), filepath.Join(c.dir, "cluster.key"), c.admins[i], c.extra)
		if err := os.WriteFile(c.configs[i], []byte(body), 0o600); err != nil {
			return err
		}
	}
	return nil
}

func startCluster(o options, dir string) (*cluster, error) {
	return startClusterWith(o, dir, 2)
}

// startClusterWith starts 3 members keeping replicas copies of each user.
func startClusterWith(o options, dir string, replicas int) (*cluster, error) {
	return startClusterExtra(o, dir, replicas, "")
}

// startClusterExtra starts 3 members with extra config keys.
func startClusterExtra(o options, dir string, replicas int, extra string) (*cluster, error) {
	c, err := newCluster(dir, replicas, extra)
	if err != nil {
		return nil, err
	}
	for i := range c.members {
		p, err := c.startMember(o, i)
		if err != nil {
			c.stop()
			return nil, err
		}
		c.procs = append(c.procs, p)
	}
	for _, a := range c.admins {
		if err := waitHTTP("http://"+a+"/readyz", c.procs...); err != nil {
			c.stop()
			return nil, err
		}
	}
	return c, nil
}

// newCluster picks the addresses of 3 members and writes their configs
// and cluster key, without starting them.
func newCluster(dir string, replicas int, extra string) (*cluster, error) {
	c := &cluster{dir: dir, replicas: replicas, extra: extra}
	key := make([]byte, 32)
	rand.Read(key)
	if err := os.WriteFile(filepath.Join(dir, "cluster.key"), []byte(base64.StdEncoding.EncodeToString(key)), 0o600); err != nil {
		return nil, err
	}
	for i := range 3 {
		p, err := freePort()
		if err != nil {
			return nil, err
		}
		a, err := freePort()
		if err != nil {
			return nil, err
		}
		c.members = append(c.members, fmt.Sprintf("127.0.0.1:%d", p))
		c.admins = append(c.admins, fmt.Sprintf("127.0.0.1:%d", a))
		c.configs = append(c.configs, filepath.Join(dir, fmt.Sprintf("appnode%d.yaml", i+1)))
	}
	if err := c.writeConfigs("forward"); err != nil {
		return nil, err
	}
	return c, nil
}

// dataDir is member i's data directory.
func (c *cluster) dataDir(i int) string { return filepath.Join(c.dir, fmt.Sprintf("data%d", i+1)) }

// startMember starts member i (its log appended to in -out).
func (c *cluster) startMember(o options, i int) (*proc, error) {
	var env []string
	if o.maxprocs > 0 {
		env = append(env, fmt.Sprintf("GOMAXPROCS=%d", o.maxprocs))
	}
	args := []string{o.appnode, "serve", "-c", c.configs[i]}
	if o.serverCPU != "" {
		// taskset execs appnode: the pid stays the member's.
		args = append([]string{"taskset", "-c", o.serverCPU}, args...)
	}
	return start(fmt.Sprintf("appnode%d", i+1), filepath.Join(o.out, fmt.Sprintf("appnode%d.log", i+1)), env, args...)
}

// pids are the members' process ids.
func (c *cluster) pids() []int {
	var out []int
	for _, p := range c.procs {
		out = append(out, p.cmd.Process.Pid)
	}
	return out
}

func (c *cluster) stop() {
	for _, p := range c.procs {
		p.stop()
	}
}

// setRouting rewrites the configs and reloads every member (SIGHUP).
func (c *cluster) setRouting(routing string) error {
	if err := c.writeConfigs(routing); err != nil {
		return err
	}
	for _, p := range c.procs {
		p.cmd.Process.Signal(syscall.SIGHUP)
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, m := range c.members {
		for {
			var info struct {
				Routing string `json:"routing"`
			}
			resp, err := http.Get("http://" + m + "/v1/ring")
			if err == nil {
				err = jsonDecode(resp, &info)
			}
			if err == nil && info.Routing == routing {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s did not switch to routing %s", m, routing)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return nil
}

// result is one measurement.
type result struct {
	name     string
	requests int
	errors   int
	elapsed  time.Duration
	lat      []time.Duration
	firstErr error
	// serverCPU is the CPU time the serving processes used during the
	// measurement (zero when not measured).
	serverCPU time.Duration
}

// cpuPerRequest is the serving processes' CPU time per request: unlike
// requests/s, other work on a shared machine barely disturbs it.
func (r result) cpuPerRequest() time.Duration {
	if r.requests == 0 {
		return 0
	}
	return r.serverCPU / time.Duration(r.requests)
}

func (r result) rate() float64 { return float64(r.requests) / r.elapsed.Seconds() }

func (r result) pct(p float64) time.Duration {
	if len(r.lat) == 0 {
		return 0
	}
	i := int(math.Ceil(p*float64(len(r.lat)))) - 1
	return r.lat[max(i, 0)]
}

// measure runs op from conc workers until d has passed or maxReq
// requests were made.
func measure(ctx context.Context, name string, conc int, d time.Duration, maxReq int, op func(i int) error) result {
	var (
		next   atomic.Int64
		mu     sync.Mutex
		res    = result{name: name}
		wg     sync.WaitGroup
		cutoff = time.Now().Add(d)
	)
	start := time.Now()
	for range conc {
		wg.Go(func() {
			var lat []time.Duration
			errs := 0
			var first error
			for time.Now().Before(cutoff) && ctx.Err() == nil {
				i := int(next.Add(1))
				if i > maxReq {
					break
				}
				t0 := time.Now()
				err := op(i)
				lat = append(lat, time.Since(t0))
				if err != nil {
					errs++
					if first == nil {
						first = err
					}
				}
			}
			mu.Lock()
			res.lat = append(res.lat, lat...)
			res.errors += errs
			if res.firstErr == nil {
				res.firstErr = first
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	res.requests = len(res.lat)
	slices.Sort(res.lat)
	return res
}

// measureOn is measure, also recording the CPU time used by the
// processes pids (and their children) meanwhile.
func measureOn(ctx context.Context, pids func() []int, name string, conc int, d time.Duration, maxReq int, op func(i int) error) result {
	before := procCPU(pids())
	r := measure(ctx, name, conc, d, maxReq, op)
	r.serverCPU = procCPU(pids()) - before
	return r
}

func get(hc *http.Client, url string, want int) error {
	resp, err := hc.Get(url)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != want {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return nil
}

// syncRate measures the disk under dir: 512-byte appends, each followed
// by fdatasync, one at a time, for d.
func syncRate(dir string, d time.Duration) (float64, error) {
	f, err := os.Create(filepath.Join(dir, "syncprobe"))
	if err != nil {
		return 0, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	buf := make([]byte, 512)
	n := 0
	start := time.Now()
	for time.Since(start) < d && n < 1_000_000 {
		if _, err := f.Write(buf); err != nil {
			return 0, err
		}
		if err := syscall.Fdatasync(int(f.Fd())); err != nil {
			return 0, err
		}
		n++
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

// workDirs makes -out and a temporary directory for a cluster; done
// removes the latter unless -keep.
func workDirs(o options, prefix string) (dir string, done func(), err error) {
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return "", nil, err
	}
	dir, err = os.MkdirTemp("", prefix)
	if err != nil {
		return "", nil, err
	}
	if o.keep {
		return dir, func() {}, nil
	}
	return dir, func() { os.RemoveAll(dir) }, nil
}

func run(ctx context.Context, o options) error {
	dir, done, err := workDirs(o, "bench-appnode-")
	if err != nil {
		return err
	}
	defer done()
	fmt.Fprintf(os.Stderr, "starting a 3-member cluster in %s\n", dir)
	c, err := startCluster(o, dir)
	if err != nil {
		return err
	}
	defer c.stop()

	hc := &http.Client{
		Timeout:       10 * time.Second,
		Transport:     &http.Transport{MaxIdleConnsPerHost: 2 * o.concurrency, MaxIdleConns: 8 * o.concurrency},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	cl, err := client.New(c.members, client.Options{HTTP: hc})
	if err != nil {
		return err
	}
	rg, err := cl.Ring(ctx)
	if err != nil {
		return err
	}

	fmt.Fprintf(os.Stderr, "creating %d users with %d posts each\n", o.users, o.postsEach)
	users := make([]string, o.users)
	tokens := make([]string, o.users)
	for i := range users {
		users[i] = fmt.Sprintf("user%04d", i)
		ans, err := cl.CreateUser(ctx, users[i])
		if err != nil {
			return fmt.Errorf("creating %s: %w", users[i], err)
		}
		tokens[i] = ans.Token
	}
	reader, err := cl.CreateUser(ctx, "reader")
	if err != nil {
		return err
	}
	for i := range min(o.followees, o.users) {
		if err := cl.Follow(ctx, "reader", reader.Token, users[i]); err != nil {
			return err
		}
	}
	setup := measure(ctx, "setup posts", o.concurrency, 10*time.Minute, o.users*o.postsEach, func(i int) error {
		u := (i - 1) % o.users
		_, err := cl.Post(ctx, users[u], tokens[u], fmt.Sprintf("post %d by %s", i, users[u]))
		return err
	})
	if setup.errors > 0 {
		return fmt.Errorf("setup posts: %d errors, first: %v", setup.errors, setup.firstErr)
	}

	if ctx.Err() != nil {
		return ctx.Err()
	}
	var results []result
	add := func(r result) {
		fmt.Fprintf(os.Stderr, "%-40s %8.0f/s p50 %-9v p99 %-9v errors %d\n", r.name, r.rate(), r.pct(0.5).Round(time.Microsecond), r.pct(0.99).Round(time.Microsecond), r.errors)
		if r.firstErr != nil {
			fmt.Fprintf(os.Stderr, "    first error: %v\n", r.firstErr)
		}
		results = append(results, r)
	}
	conc, d, maxReq := o.concurrency, o.duration, o.maxRequests

	rate, err := syncRate(filepath.Join(dir, "data1"), 2*time.Second)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "disk: %.0f synced 512-byte writes/s (one at a time)\n", rate)

	add(measureOn(ctx, c.pids, "posts (durable, smart client → owner)", conc, d, maxReq, func(i int) error {
		u := i % o.users
		_, err := cl.Post(ctx, users[u], tokens[u], "benchmark post")
		return err
	}))
	owner := func(u string) string { return rg.Owner(u) }
	nonOwner := func(u string) string {
		o := rg.Owner(u)
		for _, m := range rg.Members() {
			if m != o {
				return m
			}
		}
		return o
	}
	feedURL := func(m, u string) string { return "http://" + m + "/v1/users/" + u + "/posts?limit=20" }
	direct, fwd, fwdRounds := pair(o.rounds, d, func(d time.Duration) result {
		return measureOn(ctx, c.pids, "feed reads → owner", conc, d, maxReq, func(i int) error {
			u := users[i%o.users]
			return get(hc, feedURL(owner(u), u), 200)
		})
	}, func(d time.Duration) result {
		return measureOn(ctx, c.pids, "feed reads → non-owner (forward)", conc, d, maxReq, func(i int) error {
			u := users[i%o.users]
			return get(hc, feedURL(nonOwner(u), u), 200)
		})
	})
	add(direct)
	add(fwd)
	add(measureOn(ctx, c.pids, fmt.Sprintf("timeline reads (%d followees) → owner", min(o.followees, o.users)), conc, d, maxReq, func(i int) error {
		_, err := cl.Timeline(ctx, "reader", reader.Token, client.Page{Limit: 20})
		return err
	}))

	if err := c.setRouting("redirect"); err != nil {
		return err
	}
	measureRedirect := func(d time.Duration) result {
		return measureOn(ctx, c.pids, "307 from non-owner (routing: redirect)", conc, d, maxReq, func(i int) error {
			u := users[i%o.users]
			return get(hc, feedURL(nonOwner(u), u), http.StatusTemporaryRedirect)
		})
	}
	var redirect, nginx result
	var redirectRounds []float64
	if o.nginx == "" {
		redirect = measureRedirect(d)
		add(redirect)
	} else {
		measureNginx, stopNginx, err := startNginx(ctx, o, dir, rg, users, hc)
		if err != nil {
			return err
		}
		var nginxRounds []float64
		redirect, nginx, nginxRounds = pair(o.rounds, d, measureRedirect, measureNginx)
		for _, r := range nginxRounds {
			redirectRounds = append(redirectRounds, 1/r) // appnode / nginx
		}
		stopNginx()
		add(redirect)
		add(nginx)
	}
	return report(o, results, rate, direct, fwd, redirect, nginx, fwdRounds, redirectRounds)
}

// startNginx starts nginx on loopback (startTierNginx) answering every
// request with 307 to a member; measure measures it like appnode.
func startNginx(ctx context.Context, o options, dir string, rg *ring.Ring, users []string, hc *http.Client) (measure func(time.Duration) result, stop func(), err error) {
	ng, err := startTierNginx(o, dir, rg.Members()[0])
	if err != nil {
		return nil, nil, err
	}
	pids := func() []int { return withChildren(ng.cmd.Process.Pid) }
	return func(d time.Duration) result {
		return measureOn(ctx, pids, "307 from nginx (return 307)", o.concurrency, d, o.maxRequests, func(i int) error {
			u := users[i%len(users)]
			return get(hc, fmt.Sprintf("http://%s/v1/users/%s/posts?limit=20", ng.redirect, u), http.StatusTemporaryRedirect)
		})
	}, ng.stop, nil
}

// pair measures a and b in n alternating rounds of d/n each (at least
// 1s) and returns each one's rounds combined, with the rate ratio b/a of
// every round: on a shared machine, load that comes and goes then falls
// on both rows of a comparison, not on one.
func pair(n int, d time.Duration, a, b func(time.Duration) result) (ra, rb result, ratios []float64) {
	n = max(n, 1)
	each := max(d/time.Duration(n), time.Second)
	for range n {
		x, y := a(each), b(each)
		ratios = append(ratios, y.rate()/x.rate())
		ra, rb = combine(ra, x), combine(rb, y)
	}
	slices.Sort(ra.lat)
	slices.Sort(rb.lat)
	return ra, rb, ratios
}

// combine adds measurement r to sum (a result of the same row).
func combine(sum, r result) result {
	sum.name = r.name
	sum.requests += r.requests
	sum.errors += r.errors
	sum.elapsed += r.elapsed
	sum.lat = append(sum.lat, r.lat...)
	sum.serverCPU += r.serverCPU
	if sum.firstErr == nil {
		sum.firstErr = r.firstErr
	}
	return sum
}

func report(o options, results []result, syncRate float64, direct, fwd, redirect, nginx result, fwdRounds, redirectRounds []float64) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# bench-appnode, %s\n\n", time.Now().UTC().Format(time.RFC3339))
	procs := "Go's default GOMAXPROCS"
	if o.maxprocs > 0 {
		procs = fmt.Sprintf("GOMAXPROCS=%d", o.maxprocs)
	}
	fmt.Fprintf(&b, "3 members on 127.0.0.1 (%s), nginx with 1 worker, %d concurrent requests, %v per row (compared pairs: %d alternating rounds), %d CPUs.\n\n", procs, o.concurrency, o.duration, o.rounds, numCPU())
	tw := tabwriter.NewWriter(&b, 0, 0, 1, ' ', tabwriter.Debug)
	fmt.Fprintln(tw, "measurement\trequests/s\tp50\tp99\tserver CPU/request\terrors")
	fmt.Fprintf(tw, "disk: synced 512 B writes, one at a time\t%.0f\t\t\t\t\n", syncRate)
	for _, r := range results {
		fmt.Fprintf(tw, "%s\t%.0f\t%v\t%v\t%v\t%d\n", r.name, r.rate(), r.pct(0.5).Round(time.Microsecond), r.pct(0.99).Round(time.Microsecond), r.cpuPerRequest().Round(time.Microsecond), r.errors)
	}
	tw.Flush()
	fmt.Fprintf(&b, "\nServer CPU/request is the CPU time of the serving processes (3 appnodes, or nginx's\nmaster and worker) divided by requests: other load on a shared machine barely moves it.\n\n")
	ratio := func(a, b time.Duration) float64 { return float64(a) / float64(b) }
	rounds := func(rs []float64) string {
		var out []string
		for _, r := range rs {
			out = append(out, fmt.Sprintf("%.2f", r))
		}
		return strings.Join(out, " ")
	}
	fmt.Fprintf(&b, "forwarded / direct feed reads: %.2f by rate (rounds: %s), %.2f by server CPU (target ≥ 0.5)\n",
		fwd.rate()/direct.rate(), rounds(fwdRounds), ratio(direct.cpuPerRequest(), fwd.cpuPerRequest()))
	if nginx.requests > 0 {
		fmt.Fprintf(&b, "appnode 307 / nginx 307: %.2f by rate (rounds: %s), %.2f by server CPU (target ≥ 0.7)\n",
			redirect.rate()/nginx.rate(), rounds(redirectRounds), ratio(nginx.cpuPerRequest(), redirect.cpuPerRequest()))
	}
	fmt.Fprint(os.Stdout, b.String())
	path := filepath.Join(o.out, "results.md")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		return err
	}
	for _, r := range results {
		if r.errors > 0 {
			return errors.New(r.name + " had errors")
		}
	}
	return nil
}
