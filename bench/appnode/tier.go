package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ringfront/ringfront/appnode/client"
	"github.com/ringfront/ringfront/bench/internal/cputime"
)

// runTier measures the redirect tier on one CPU: every server (the 3
// appnode members and nginx, one worker) pinned to -server-cpu, the load
// (wrk, one thread, -concurrency connections) to -load-cpu, so each
// row's requests/s is what one core serves and its CPU per request is
// what the processes serving it spent beyond their CPU at rest. Rows,
// in -rounds alternating rounds:
//
//   - direct: a feed read sent to the user's owner;
//   - forward: the same read sent to the member outside the user's
//     preference list, which forwards it (routing: forward, over member
//     links);
//   - nginx proxy: the same read through nginx's proxy_pass to the owner
//     (keep-alive upstream), the forwarding peer;
//   - redirect: the same request to that member under routing: redirect,
//     answered 307 with the owner's URL;
//   - nginx 307: nginx's `return 307` to the owner, the redirecting peer;
//   - bare 307: a Go net/http server whose handler only writes the 307
//     (this program, -bare-307): the floor a Go HTTP/1.1 server sets.
//
// The rounds run twice: with wrk as fast as each server answers, and
// with every connection paced (-tier-rate), so that CPU per request is
// compared where every server waits for requests alike. Then, with
// -tier-profile, one more run each of redirect and forward while the
// member's /debug/pprof/profile records, kept in -out.
func runTier(ctx context.Context, o options) error {
	wrk, err := exec.LookPath(o.wrk)
	if err != nil {
		return fmt.Errorf("%s not found (.ci/deps installs wrk): %w", o.wrk, err)
	}
	if o.nginx == "" {
		return fmt.Errorf("-tier needs nginx (-nginx)")
	}
	dir, done, err := workDirs(o, "bench-appnode-tier-")
	if err != nil {
		return err
	}
	defer done()
	load0 := loadAverage()
	c, err := startCluster(o, dir)
	if err != nil {
		return err
	}
	defer c.stop()
	hc := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	cl, err := client.New(c.members, client.Options{HTTP: hc})
	if err != nil {
		return err
	}
	rg, err := cl.Ring(ctx)
	if err != nil {
		return err
	}
	// A user with 20 posts, and the member outside its preference list.
	const user = "tieruser"
	u, err := cl.CreateUser(ctx, user)
	if err != nil {
		return fmt.Errorf("creating %s: %w", user, err)
	}
	for i := range 20 {
		if _, err := cl.Post(ctx, user, u.Token, fmt.Sprintf("post %d", i)); err != nil {
			return err
		}
	}
	pref := rg.Preference(nil, user)
	owner, other := pref[0], ""
	for _, m := range rg.Members() {
		if !slices.Contains(pref, m) {
			other = m
		}
	}
	if other == "" {
		return fmt.Errorf("every member holds %s (replicas = members?)", user)
	}
	path := "/v1/users/" + user + "/posts?limit=20"
	ng, err := startTierNginx(o, dir, owner)
	if err != nil {
		return err
	}
	defer ng.stop()
	bare, err := startBare307(o, owner)
	if err != nil {
		return err
	}
	defer bare.stop()
	// Each row counts the CPU of the processes that serve it (every
	// member for appnode's rows: what a member does for another is the
	// system's cost), less what they use at rest.
	members, nginxPid, barePid := c.pids(), ng.cmd.Process.Pid, bare.cmd.Process.Pid
	ownerPid := members[slices.Index(c.members, owner)]
	idle, err := measureIdle(o.tierRun, append(slices.Clone(members), nginxPid, barePid))
	if err != nil {
		return err
	}

	type row struct {
		name, url, routing string
		status             int
		pids               []int
	}
	rows := []row{
		{"feed read → owner (direct)", "http://" + owner + path, "forward", 200, members},
		{"feed read → other member (forward)", "http://" + other + path, "forward", 200, members},
		{"feed read → nginx proxy_pass → owner", "http://" + ng.proxy + path, "forward", 200, []int{nginxPid, ownerPid}},
		{"307 from other member (routing: redirect)", "http://" + other + path, "redirect", 307, members},
		{"307 from nginx (return 307)", "http://" + ng.redirect + path, "redirect", 307, []int{nginxPid}},
		{"307 from a bare Go net/http handler", "http://" + bare.addr + path, "redirect", 307, []int{barePid}},
	}
	// At full load a server that keeps wrk waiting also pays for waking
	// it for each answer; at one offered rate every server waits for
	// requests and pays for its own wake-ups alike.
	loads := []tierLoad{{name: fmt.Sprintf("as fast as each answers (wrk, %d connections)", o.concurrency)}}
	if o.tierRate > 0 {
		delay := max(1, (o.concurrency*1000+o.tierRate/2)/o.tierRate)
		script := filepath.Join(dir, "rate.lua")
		if err := os.WriteFile(script, []byte(fmt.Sprintf("-- each connection waits %d ms between requests\nfunction delay() return %d end\n", delay, delay)), 0o644); err != nil {
			return err
		}
		loads = append(loads, tierLoad{name: fmt.Sprintf("at one offered rate (each of %d connections waits %d ms between requests: about %d/s)", o.concurrency, delay, o.concurrency*1000/delay), script: script})
	}
	var b strings.Builder
	fmt.Fprintf(&b, "### The redirect tier: one CPU\n\n")
	fmt.Fprintf(&b, "3 appnode members (replicas 2, member links), nginx (1 worker) and the bare Go server all pinned to CPU %s; wrk (1 thread, %d connections)\n", o.serverCPU, o.concurrency)
	fmt.Fprintf(&b, "on CPU %s; %d alternating rounds of %v per row; load average %s at the start. CPU/request: the\n", o.loadCPU, o.rounds, o.tierRun, load0)
	fmt.Fprintf(&b, "CPU of the processes serving the row (scheduler accounting: every appnode member for appnode's rows; nginx, with the\n")
	fmt.Fprintf(&b, "owner for proxy_pass; the bare server) over the row, less their CPU at rest (measured first: the 3 members %.1f%% of a CPU,\n", 100*idle.of(members))
	fmt.Fprintf(&b, "nginx %.1f%%, the bare server %.1f%%), ÷ the row's requests. Medians over the rounds.\n", 100*idle.of([]int{nginxPid}), 100*idle.of([]int{barePid}))
	for _, load := range loads {
		results := make([][]wrkResult, len(rows))
		for round := range o.rounds {
			for _, routing := range []string{"forward", "redirect"} {
				if err := c.setRouting(routing); err != nil {
					return err
				}
				var order []int
				for i, r := range rows {
					if r.routing == routing {
						order = append(order, i)
					}
				}
				// Rotate, so no row always runs first in its group.
				for range round % len(order) {
					order = append(order[1:], order[0])
				}
				for _, i := range order {
					r := rows[i]
					if err := checkAnswer(hc, r.url, r.status, owner); err != nil {
						return fmt.Errorf("%s: %w", r.name, err)
					}
					res, err := runWrk(ctx, o, wrk, r.url, load.script, r.pids, idle.of(r.pids))
					if err != nil {
						return fmt.Errorf("%s: %w", r.name, err)
					}
					fmt.Fprintf(os.Stderr, "round %d  %-44s %8.0f/s  %6.1f µs CPU/request  p50 %s p99 %s\n", round+1, r.name, res.rate(), res.cpuPer().Seconds()*1e6, res.p50, res.p99)
					results[i] = append(results[i], res)
				}
			}
		}
		fmt.Fprintf(&b, "\n#### Load: %s\n\n", load.name)
		fmt.Fprintln(&b, "| row | requests/s | p50 | p99 | server CPU/request | errors |")
		fmt.Fprintln(&b, "|---|---:|---:|---:|---:|---:|")
		med := make([]wrkResult, len(rows))
		for i, r := range rows {
			med[i] = medianResult(results[i])
			fmt.Fprintf(&b, "| %s | %.0f | %s | %s | %.1f µs | %d |\n", r.name, med[i].rate(), med[i].p50, med[i].p99, med[i].cpuPer().Seconds()*1e6, med[i].errors)
		}
		us := func(r wrkResult) float64 { return r.cpuPer().Seconds() * 1e6 }
		fmt.Fprintf(&b, "\nappnode 307 / nginx 307: %.2f by requests/s, %.2f× nginx's CPU per request; a bare net/http 307 %.2f× nginx's, appnode's %.2f× the bare one's.\n",
			med[3].rate()/med[4].rate(), us(med[3])/us(med[4]), us(med[5])/us(med[4]), us(med[3])/us(med[5]))
		fmt.Fprintf(&b, "Forwarding, over the direct read: appnode +%.1f µs CPU per request, nginx proxy_pass +%.1f µs (%.2f×); by requests/s forward / nginx proxy %.2f.\n",
			us(med[1])-us(med[0]), us(med[2])-us(med[0]), (us(med[1])-us(med[0]))/(us(med[2])-us(med[0])), med[1].rate()/med[2].rate())
	}
	fmt.Fprintf(&b, "\nLoad average at the end %s.\n", loadAverage())
	fmt.Fprint(os.Stdout, b.String())
	if o.tierProfile {
		for _, p := range []struct{ name, routing, url string }{{"redirect", "redirect", rows[3].url}, {"forward", "forward", rows[1].url}} {
			if err := c.setRouting(p.routing); err != nil {
				return err
			}
			file, err := profileDuring(ctx, o, wrk, c, other, p.url, p.name)
			if err != nil {
				return err
			}
			fmt.Fprintf(os.Stderr, "profile of %s under load: %s (go tool pprof -top %s)\n", other, file, file)
		}
	}
	return nil
}

// tierLoad is how wrk loads each row: as fast as the server answers,
// or (script) at one offered rate.
type tierLoad struct {
	name   string
	script string // wrk Lua script pacing each connection; "" for none
}

// tierNginx is nginx on two loopback ports: one answers 307 to the
// owner, the other proxies to it (keep-alive upstream). Pinned to
// -server-cpu when it is set.
type tierNginx struct {
	*proc
	redirect, proxy string
}

func startTierNginx(o options, dir, owner string) (*tierNginx, error) {
	rport, err := freePort()
	if err != nil {
		return nil, err
	}
	pport, err := freePort()
	if err != nil {
		return nil, err
	}
	prefix := filepath.Join(dir, "nginx")
	if err := os.MkdirAll(filepath.Join(prefix, "logs"), 0o755); err != nil {
		return nil, err
	}
	conf := fmt.Sprintf(`# nginx peers for bench-appnode: a 307 and a reverse proxy to the owner.
daemon off;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/logs/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path %[1]s/body;
    proxy_temp_path %[1]s/proxy;
    fastcgi_temp_path %[1]s/fastcgi;
    uwsgi_temp_path %[1]s/uwsgi;
    scgi_temp_path %[1]s/scgi;
    keepalive_requests 1000000;
    upstream owner {
        server %[4]s;
        keepalive 64;
    }
    server {
        listen 127.0.0.1:%[2]d;
        location / { return 307 http://%[4]s$request_uri; }
    }
    server {
        listen 127.0.0.1:%[3]d;
        location / {
            proxy_pass http://owner;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
`, prefix, rport, pport, owner)
	confPath := filepath.Join(prefix, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	args := []string{o.nginx, "-p", prefix, "-c", confPath}
	if o.serverCPU != "" {
		args = append([]string{"taskset", "-c", o.serverCPU}, args...)
	}
	p, err := start("nginx", filepath.Join(o.out, "nginx.log"), nil, args...)
	if err != nil {
		return nil, err
	}
	n := &tierNginx{proc: p, redirect: fmt.Sprintf("127.0.0.1:%d", rport), proxy: fmt.Sprintf("127.0.0.1:%d", pport)}
	if err := waitHTTP("http://"+n.redirect+"/", p); err != nil {
		p.stop()
		return nil, err
	}
	return n, nil
}

// bare307 is this program serving only a 307 to the owner.
type bare307 struct {
	*proc
	addr string
}

func startBare307(o options, owner string) (*bare307, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	p, err := start("bare-307", filepath.Join(o.out, "bare-307.log"), nil, "taskset", "-c", o.serverCPU, self, "-bare-307", addr+"="+owner)
	if err != nil {
		return nil, err
	}
	if err := waitHTTP("http://"+addr+"/", p); err != nil {
		p.stop()
		return nil, err
	}
	return &bare307{p, addr}, nil
}

// serveBare307 serves spec (LISTEN=TARGET): every request is answered
// 307 to the same path and query on TARGET, nothing else.
func serveBare307(spec string) error {
	listen, target, ok := strings.Cut(spec, "=")
	if !ok {
		return fmt.Errorf("-bare-307 %q: want LISTEN=TARGET", spec)
	}
	srv := &http.Server{Addr: listen, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 120 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header()["Location"] = []string{"http://" + target + r.RequestURI}
			w.WriteHeader(http.StatusTemporaryRedirect)
		})}
	return srv.ListenAndServe()
}

// checkAnswer makes sure url answers status (and a 307 points at owner)
// before it is loaded: wrk counts any 2xx or 3xx as a success.
func checkAnswer(hc *http.Client, url string, status int, owner string) error {
	resp, err := hc.Get(url)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != status {
		return fmt.Errorf("GET %s: %s, want %d", url, resp.Status, status)
	}
	if status == http.StatusTemporaryRedirect && !strings.HasPrefix(resp.Header.Get("Location"), "http://"+owner+"/") {
		return fmt.Errorf("GET %s: Location %q does not point at the owner %s", url, resp.Header.Get("Location"), owner)
	}
	return nil
}

// wrkResult is one wrk run.
type wrkResult struct {
	requests int
	elapsed  time.Duration
	errors   int // non-2xx/3xx answers and socket errors
	p50, p99 string
	cpu      time.Duration // the servers'
}

func (r wrkResult) rate() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.requests) / r.elapsed.Seconds()
}

func (r wrkResult) cpuPer() time.Duration {
	if r.requests == 0 {
		return 0
	}
	return r.cpu / time.Duration(r.requests)
}

// medianResult is the round with the median CPU per request.
func medianResult(rs []wrkResult) wrkResult {
	rs = slices.Clone(rs)
	slices.SortFunc(rs, func(a, b wrkResult) int { return int(a.cpuPer() - b.cpuPer()) })
	return rs[len(rs)/2]
}

var (
	wrkTotal   = regexp.MustCompile(`^\s*(\d+) requests in ([0-9.]+)(us|ms|s|m)`)
	wrkPct     = regexp.MustCompile(`^\s*(50|99)%\s+(\S+)`)
	wrkNon2xx  = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
	wrkSockErr = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
)

// idleRates is the CPU each process uses at rest, in CPU-seconds per
// second, measured over d.
type idleRates map[int]float64

func measureIdle(d time.Duration, pids []int) (idleRates, error) {
	before := map[int]time.Duration{}
	for _, p := range pids {
		t, err := cputime.Tree(p)
		if err != nil {
			return nil, err
		}
		before[p] = t
	}
	start := time.Now()
	time.Sleep(d)
	rates := idleRates{}
	for _, p := range pids {
		t, err := cputime.Tree(p)
		if err != nil {
			return nil, err
		}
		rates[p] = (t - before[p]).Seconds() / time.Since(start).Seconds()
	}
	return rates, nil
}

// of is the sum of the rates of pids.
func (r idleRates) of(pids []int) float64 {
	sum := 0.0
	for _, p := range pids {
		sum += r[p]
	}
	return sum
}

// runWrk loads url with wrk on the load CPU for o.tierRun (paced by the
// Lua script, unless it is "") and measures the CPU of pids meanwhile,
// less idle (CPU-seconds per second at rest).
func runWrk(ctx context.Context, o options, wrk, url, script string, pids []int, idle float64) (wrkResult, error) {
	var res wrkResult
	before, err := cputime.Trees(pids...)
	if err != nil {
		return res, err
	}
	start := time.Now()
	secs := max(1, int(o.tierRun/time.Second))
	args := []string{"-c", o.loadCPU, wrk, "-t1", "-c" + strconv.Itoa(o.concurrency), "-d" + strconv.Itoa(secs) + "s", "--timeout", "5s", "--latency"}
	if script != "" {
		args = append(args, "-s", script)
	}
	cmd := exec.CommandContext(ctx, "taskset", append(args, url)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return res, fmt.Errorf("wrk: %w\n%s", err, out)
	}
	after, err := cputime.Trees(pids...)
	if err != nil {
		return res, err
	}
	res.cpu = max(0, after-before-time.Duration(idle*float64(time.Since(start))))
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		line := sc.Text()
		if m := wrkTotal.FindStringSubmatch(line); m != nil {
			res.requests, _ = strconv.Atoi(m[1])
			d, _ := time.ParseDuration(m[2] + m[3])
			res.elapsed = d
		}
		if m := wrkPct.FindStringSubmatch(line); m != nil {
			if m[1] == "50" {
				res.p50 = m[2]
			} else {
				res.p99 = m[2]
			}
		}
		if m := wrkNon2xx.FindStringSubmatch(line); m != nil {
			n, _ := strconv.Atoi(m[1])
			res.errors += n
		}
		if m := wrkSockErr.FindStringSubmatch(line); m != nil {
			for _, f := range m[1:] {
				n, _ := strconv.Atoi(f)
				res.errors += n
			}
		}
	}
	if res.requests == 0 {
		return res, fmt.Errorf("wrk made no requests:\n%s", out)
	}
	return res, nil
}

// profileDuring loads url and records a CPU profile of member meanwhile
// from its admin listener; it returns the profile's file.
func profileDuring(ctx context.Context, o options, wrk string, c *cluster, member, url, name string) (string, error) {
	admin := c.admins[slices.Index(c.members, member)]
	secs := max(1, int(o.tierRun/time.Second))
	type got struct {
		body []byte
		err  error
	}
	ch := make(chan got, 1)
	go func() {
		resp, err := http.Get(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", admin, secs))
		if err != nil {
			ch <- got{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("profile: %s: %s", resp.Status, b)
		}
		ch <- got{b, err}
	}()
	if _, err := runWrk(ctx, o, wrk, url, "", c.pids(), 0); err != nil {
		return "", err
	}
	g := <-ch
	if g.err != nil {
		return "", g.err
	}
	file := filepath.Join(o.out, name+".pprof")
	return file, os.WriteFile(file, g.body, 0o644)
}

func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	return strings.Join(strings.Fields(string(b))[:3], " ")
}
