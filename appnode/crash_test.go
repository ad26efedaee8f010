package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ringfront/ringfront/appnode/api"
	"github.com/ringfront/ringfront/appnode/feed"
	"github.com/ringfront/ringfront/appnode/node"
	"github.com/ringfront/ringfront/appnode/ring"
)

// childEnv names the config file a re-executed test binary serves:
// the crash test runs real appnode daemons as child processes, so that
// kill -9 is a real kill -9.
const childEnv = "RINGFRONT_TEST_APPNODE_SERVE_CONFIG" // not APPNODE_: that prefix is for config keys only

// serveChild runs `appnode serve` when the test binary was started as
// a child; it reports whether it did.
func serveChild() bool {
	cfg := os.Getenv(childEnv)
	if cfg == "" {
		return false
	}
	root := newRoot()
	root.SetArgs([]string{"serve", "-c", cfg})
	if err := root.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "appnode:", err)
		os.Exit(1)
	}
	os.Exit(0)
	return true
}

// freePorts returns n loopback ports, distinct and each free for TCP
// and UDP (a gossip port needs both). Bounded: it gives up after 500
// tries.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	free := func(port int) bool {
		addr := "127.0.0.1:" + strconv.Itoa(port)
		c, err := net.ListenPacket("udp", addr)
		if err != nil {
			return false
		}
		c.Close()
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return false
		}
		ln.Close()
		return true
	}
	var out []int
	taken := map[int]bool{}
	for try := 0; try < 500 && len(out) < n; try++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		p := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		if !taken[p] && free(p) {
			taken[p] = true
			out = append(out, p)
		}
	}
	if len(out) < n {
		t.Fatal("no free loopback ports")
	}
	return out
}

// daemonProc is one appnode child process.
type daemonProc struct {
	addr, admin, cfg, logFile, dataDir string
	cmd                                *exec.Cmd
	done                               chan struct{}
}

func (d *daemonProc) start(t *testing.T) {
	t.Helper()
	logf, err := os.OpenFile(d.logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	d.cmd = exec.Command(os.Args[0], "-test.run=^$")
	d.cmd.Env = []string{childEnv + "=" + d.cfg, "GOMAXPROCS=2"}
	d.cmd.Stdout, d.cmd.Stderr = logf, logf
	if err := d.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", d.addr, err)
	}
	d.done = make(chan struct{})
	go func() {
		d.cmd.Wait()
		logf.Close()
		close(d.done)
	}()
}

// kill sends SIGKILL and waits for the process to be gone.
func (d *daemonProc) kill() {
	d.cmd.Process.Signal(syscall.SIGCONT) // a paused process dies too
	d.cmd.Process.Signal(syscall.SIGKILL)
	<-d.done
}

// pause stops the process (SIGSTOP) as a stalled machine would look;
// resume lets it go on.
func (d *daemonProc) pause()  { d.cmd.Process.Signal(syscall.SIGSTOP) }
func (d *daemonProc) resume() { d.cmd.Process.Signal(syscall.SIGCONT) }

// daemonCluster is n appnode daemons on loopback, each with a gossip
// port of its own (no convention relates it to the member port).
type daemonCluster struct {
	t       *testing.T
	dir     string
	members []string
	ds      []*daemonProc
	why     string      // what settled saw last when not settled
	hung    *daemonProc // a member whose status call timed out
}

// startDaemons starts n members; extra(i) adds config lines for member
// i. It waits until every member sees every other alive and caught up.
func startDaemons(t *testing.T, n int, extra func(i int) string) *daemonCluster {
	t.Helper()
	dir := t.TempDir()
	key := filepath.Join(dir, "cluster.key")
	if err := os.WriteFile(key, []byte("crash test cluster secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ports := freePorts(t, 3*n)
	c := &daemonCluster{t: t, dir: dir}
	for i := range n {
		c.members = append(c.members, "127.0.0.1:"+strconv.Itoa(ports[3*i]))
	}
	for i := range n {
		d := &daemonProc{addr: c.members[i], admin: "127.0.0.1:" + strconv.Itoa(ports[3*i+2]),
			cfg: filepath.Join(dir, fmt.Sprintf("app%d.yaml", i)), logFile: filepath.Join(dir, fmt.Sprintf("app%d.log", i)),
			dataDir: filepath.Join(dir, fmt.Sprintf("data%d", i))}
		gossip := "127.0.0.1:" + strconv.Itoa(ports[3*i+1])
		more := ""
		if extra != nil {
			more = extra(i)
		}
		body := fmt.Sprintf(`node: app%d
listen: %q
members: [%s]
data_dir: %q
cluster_secret_file: %q
gossip: {bind: %q, advertise: %q, probe_interval: 100ms, rejoin_interval: 200ms}
admin: {listen: %q}
log: {level: info}
%s`, i, d.addr, `"`+strings.Join(c.members, `", "`)+`"`, d.dataDir, key, gossip, gossip, d.admin, more)
		if err := os.WriteFile(d.cfg, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		d.start(t)
		c.ds = append(c.ds, d)
	}
	t.Cleanup(func() {
		for _, d := range c.ds {
			d.kill()
		}
		if t.Failed() {
			for _, d := range c.ds {
				b, _ := os.ReadFile(d.logFile)
				t.Logf("log of %s:\n%s", d.addr, b)
			}
		}
	})
	c.waitSettled(15 * time.Second)
	return c
}

// settled reports whether every member sees every other alive and
// none is catching up; when not, c.why says what it saw last.
func (c *daemonCluster) settled(ctx context.Context) bool {
	for _, d := range c.ds {
		st, err := d.status(ctx)
		if err != nil {
			c.why, c.hung = fmt.Sprintf("status of %s: %v", d.addr, err), nil
			if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
				c.hung = d
			}
			return false
		}
		if st.CatchingUp {
			c.why = d.addr + " says it is catching up"
			return false
		}
		if len(st.Liveness) != len(c.ds) {
			c.why = fmt.Sprintf("%s lists %d members", d.addr, len(st.Liveness))
			return false
		}
		for _, l := range st.Liveness {
			if !l.Alive() || l.CatchingUp {
				c.why = fmt.Sprintf("%s sees %s %s (catching up: %v)", d.addr, l.Member, l.State, l.CatchingUp)
				return false
			}
		}
	}
	return true
}

// waitSettled waits up to limit for settled. When a member's admin API
// stops answering, the failure carries where its status handler is
// stuck (a goroutine dump, taken with SIGQUIT).
func (c *daemonCluster) waitSettled(limit time.Duration) time.Duration {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	start := time.Now()
	for time.Since(start) < limit {
		if c.settled(ctx) {
			return time.Since(start)
		}
		time.Sleep(20 * time.Millisecond)
	}
	dump := ""
	if c.hung != nil {
		dump = "\n" + c.hung.stuck()
	}
	c.t.Fatalf("every member alive and caught up to every other: not within %v; last seen: %s%s", limit, c.why, dump)
	return 0
}

// stuck ends the member with SIGQUIT and returns the stacks of its
// goroutines that serve the admin API's status, or (when none) of its
// own packages' goroutines blocked on a lock or a channel.
func (d *daemonProc) stuck() string {
	d.cmd.Process.Signal(syscall.SIGCONT)
	d.cmd.Process.Signal(syscall.SIGQUIT)
	select {
	case <-d.done:
	case <-time.After(5 * time.Second):
		return "no goroutine dump: the member did not end on SIGQUIT"
	}
	b, _ := os.ReadFile(d.logFile)
	var status, blocked []string
	for _, g := range strings.Split(string(b), "\n\n") {
		switch {
		case strings.Contains(g, "node.(*Node).status"):
			status = append(status, g)
		case strings.Contains(g, "ringfront/appnode/") && (strings.Contains(g, "[sync.Mutex.Lock") ||
			strings.Contains(g, "[sync.RWMutex") || strings.Contains(g, "[semacquire") || strings.Contains(g, "[chan ")):
			blocked = append(blocked, g)
		}
	}
	out := append(status, blocked...)
	text := fmt.Sprintf("goroutines of %s (status handler first, then blocked ones):\n%s", d.addr, strings.Join(out, "\n\n"))
	if len(text) > 16<<10 {
		text = text[:16<<10] + "\n[…]"
	}
	return text
}

// byAddr returns the member with address a.
func (c *daemonCluster) byAddr(a string) *daemonProc {
	for _, d := range c.ds {
		if d.addr == a {
			return d
		}
	}
	c.t.Fatalf("no member %s", a)
	return nil
}

// ring is the cluster's ring (replicas as configured: default 2).
func (c *daemonCluster) ring(replicas int) *ring.Ring {
	rg, err := ring.New(ring.Config{Members: c.members, VNodes: node.DefaultVNodes, Replicas: replicas})
	if err != nil {
		c.t.Fatal(err)
	}
	return rg
}

// statusTimeout bounds one status call: a member whose admin API does
// not answer within it is a finding of its own.
const statusTimeout = 5 * time.Second

func (d *daemonProc) status(ctx context.Context) (node.Status, error) {
	var st node.Status
	ctx, cancel := context.WithTimeout(ctx, statusTimeout)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+d.admin+"/v1/status", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return st, fmt.Errorf("status %s", resp.Status)
	}
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// waitUntil polls cond every 20ms for up to limit.
func waitUntil(t *testing.T, limit time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for time.Since(start) < limit {
		if cond() {
			return time.Since(start)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s: not within %v", what, limit)
	return 0
}

// allPosts pages through a user's posts via member.
func allPosts(c *http.Client, member, user string) (map[feed.ID]bool, error) {
	out := map[feed.ID]bool{}
	before := ""
	for range 1000 {
		url := "http://" + member + "/v1/users/" + user + "/posts?limit=200"
		if before != "" {
			url += "&before=" + before
		}
		resp, err := c.Get(url)
		if err != nil {
			return nil, err
		}
		var page api.PostsAnswer
		err = json.NewDecoder(resp.Body).Decode(&page)
		resp.Body.Close()
		if resp.StatusCode != 200 || err != nil {
			return nil, fmt.Errorf("reading %s's posts via %s: %s, %v", user, member, resp.Status, err)
		}
		for _, p := range page.Posts {
			out[p.ID] = true
		}
		if page.Next == "" {
			return out, nil
		}
		before = page.Next
	}
	return nil, fmt.Errorf("reading %s's posts via %s: more than 1000 pages", user, member)
}

// TestKillOwnerUnderLoad is issue 6's test: three appnode daemons
// (child processes), a writer posting continuously to users owned by
// one of them, and that owner killed with SIGKILL, then restarted on the
// same data. Every acknowledged post must be readable afterwards from
// every member, and — once the hints are delivered — from the owner's
// own store too.
func TestKillOwnerUnderLoad(t *testing.T) {
	cl := startDaemons(t, 3, nil)
	ds, members := cl.ds, cl.members
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rg, err := ring.New(ring.Config{Members: members, VNodes: node.DefaultVNodes, Replicas: 2})
	if err != nil {
		t.Fatal(err)
	}
	victim := ds[0]
	var users []string
	for i := 0; len(users) < 6 && i < 10000; i++ {
		if u := fmt.Sprintf("busy%d", i); rg.Owner(u) == victim.addr {
			users = append(users, u)
		}
	}
	c := &http.Client{Timeout: 5 * time.Second}
	tokens := map[string]string{}
	for _, u := range users {
		b, _ := json.Marshal(api.CreateUserRequest{Name: u})
		resp, err := c.Post("http://"+ds[1].addr+"/v1/users", "application/json", bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		var ans api.CreateUserAnswer
		json.NewDecoder(resp.Body).Decode(&ans)
		resp.Body.Close()
		if resp.StatusCode != 201 {
			t.Fatalf("creating %s: %s", u, resp.Status)
		}
		tokens[u] = ans.Token
	}

	// The writer posts round-robin to the victim's users through the two
	// survivors in turn, as a client behind dnslb would, one request at a
	// time, until stopped (or 5000 requests).
	var (
		mu        sync.Mutex // guards acked, failed, sent, lastFail, firstOK
		acked     = map[string][]feed.ID{}
		failed    int
		sent      int
		lastFail  time.Time
		failWhy   []string
		stopWrite = make(chan struct{})
		wrote     = make(chan struct{})
	)
	go func() {
		defer close(wrote)
		for i := 0; i < 5000; i++ {
			select {
			case <-stopWrite:
				return
			default:
			}
			u := users[i%len(users)]
			via := ds[1+i%2].addr
			b, _ := json.Marshal(api.PostRequest{Text: fmt.Sprintf("post %d", i)})
			req, _ := http.NewRequest("POST", "http://"+via+"/v1/users/"+u+"/posts", bytes.NewReader(b))
			req.Header.Set("Authorization", "Bearer "+tokens[u])
			resp, err := c.Do(req)
			var p feed.Post
			ok := err == nil && resp.StatusCode == 201
			if err == nil {
				if ok {
					ok = json.NewDecoder(resp.Body).Decode(&p) == nil
				}
				resp.Body.Close()
			}
			mu.Lock()
			sent++
			if ok {
				acked[u] = append(acked[u], p.ID)
			} else {
				failed++
				lastFail = time.Now()
				why := fmt.Sprint(err)
				if err == nil {
					why = resp.Status
				}
				failWhy = append(failWhy, why)
			}
			mu.Unlock()
			time.Sleep(2 * time.Millisecond)
		}
	}()
	time.Sleep(time.Second)
	killed := time.Now()
	victim.kill()
	survivorsSeeDead := waitUntil(t, 10*time.Second, "survivors see the victim dead", func() bool {
		for _, d := range ds[1:] {
			st, err := d.status(ctx)
			if err != nil {
				return false
			}
			for _, l := range st.Liveness {
				if l.Member == victim.addr && l.Alive() {
					return false
				}
			}
		}
		return true
	})
	time.Sleep(1500 * time.Millisecond) // writes go to the replica, with hints
	mu.Lock()
	outage := "none failed"
	if !lastFail.IsZero() {
		outage = lastFail.Sub(killed).Round(time.Millisecond).String() + " after the kill"
	}
	failedDown := failed
	mu.Unlock()

	// Every acknowledged post is readable from both survivors now.
	check := func(label string, via []*daemonProc) int {
		mu.Lock()
		want := map[string][]feed.ID{}
		for u, ids := range acked {
			want[u] = append([]feed.ID(nil), ids...)
		}
		mu.Unlock()
		lost := 0
		for _, d := range via {
			for _, u := range users {
				got, err := allPosts(c, d.addr, u)
				if err != nil {
					t.Errorf("%s: %v", label, err)
					lost += len(want[u])
					continue
				}
				for _, id := range want[u] {
					if !got[id] {
						lost++
					}
				}
			}
		}
		if lost > 0 {
			t.Errorf("%s: %d acknowledged posts missing", label, lost)
		}
		return lost
	}
	lostDown := check("owner dead, read via survivors", ds[1:])

	restarted := time.Now()
	victim.start(t)
	cl.waitSettled(15 * time.Second) // the victim back and alive to everyone
	// Keep writing a little while the owner is back, then stop.
	time.Sleep(500 * time.Millisecond)
	close(stopWrite)
	<-wrote
	waitUntil(t, 15*time.Second, "hints delivered", func() bool {
		for _, d := range ds {
			st, err := d.status(ctx)
			if err != nil || st.Hints != 0 {
				return false
			}
		}
		return true
	})
	toConverge := time.Since(restarted)
	// The survivors' /metrics show the victim alive again and the hints
	// they delivered to it.
	delivered := 0.0
	for _, d := range ds[1:] {
		resp, err := c.Get("http://" + d.admin + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if want := fmt.Sprintf("appnode_member_alive{member=%q} 1", victim.addr); !strings.Contains(string(b), want) {
			t.Errorf("/metrics of %s lacks %s", d.addr, want)
		}
		if m := regexp.MustCompile(`(?m)^appnode_hints_delivered_total (\S+)$`).FindSubmatch(b); m != nil {
			n, _ := strconv.ParseFloat(string(m[1]), 64)
			delivered += n
		}
	}
	if delivered == 0 {
		t.Error("the survivors' /metrics show no hints delivered")
	}
	lostAfter := check("owner back, read via every member", ds)
	// Every member routes reads for these users to their owner, the
	// victim, again: the check above read the owner's own copy.
	for _, d := range ds {
		for _, u := range users {
			resp, err := c.Get("http://" + d.addr + "/v1/users/" + u)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if got := resp.Header.Get(api.HeaderOwner); got != victim.addr {
				t.Errorf("reads for %s via %s answered by %s, want the owner %s", u, d.addr, got, victim.addr)
			}
		}
	}
	mu.Lock()
	total := 0
	for _, ids := range acked {
		total += len(ids)
	}
	t.Logf("writer: %d requests, %d acknowledged, %d failed (%d of them before the restart); last failure: %s; failures: %q",
		sent, total, failed, failedDown, outage, failWhy)
	mu.Unlock()
	t.Logf("owner killed: survivors saw it dead after %v; acknowledged posts lost while it was down: %d",
		(survivorsSeeDead).Round(time.Millisecond), lostDown)
	t.Logf("owner restarted: alive, %v hints delivered and every post on every member %v after restart; lost: %d",
		delivered, toConverge.Round(time.Millisecond), lostAfter)
}
