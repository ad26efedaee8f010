package main

import (
	"bytes"
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ringfront/ringfront/appnode/gossip"
	"github.com/ringfront/ringfront/appnode/node"
	"github.com/ringfront/ringfront/appnode/ring"
	"github.com/ringfront/ringfront/appnode/server"
	"github.com/ringfront/ringfront/appnode/store"
)

func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := newRoot()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), err
}

func TestCheckConfig(t *testing.T) {
	out, err := run(t, "check-config", "-c", "../configs/appnode.yaml")
	if err != nil {
		t.Fatalf("check-config on the example: %v", err)
	}
	for _, want := range []string{"node: app1", "routing: forward", "# ring ", "3 members × 256 vnodes"} {
		if !strings.Contains(out, want) {
			t.Errorf("check-config output lacks %q:\n%s", want, out)
		}
	}
	_, err = run(t, "check-config", "-c", "../configs/appnode.yaml", "--routing", "sideways")
	if err == nil || !strings.Contains(err.Error(), `routing: "sideways"`) {
		t.Errorf("check-config with a bad flag = %v", err)
	}
}

// TestUserCLI drives `appnode user ...` against a two-member cluster.
func TestUserCLI(t *testing.T) {
	var addrs []string
	var lns []net.Listener
	for range 2 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		addrs = append(addrs, ln.Addr().String())
	}
	rg, _ := ring.New(ring.Config{Members: addrs, VNodes: 8, Replicas: 2})
	for i, ln := range lns {
		st, err := store.Open(t.TempDir(), store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		srv, err := server.New(server.Options{Self: addrs[i], Ring: rg, Store: st, Secret: []byte("s"), Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			t.Fatal(err)
		}
		ts := httptest.NewUnstartedServer(srv)
		ts.Listener.Close()
		ts.Listener = ln
		ts.Start()
		t.Cleanup(func() { ts.Close(); st.Close() })
	}
	srvFlag := "--server=" + addrs[1]
	token := map[string]string{}
	for _, u := range []string{"joe", "ann"} {
		out, err := run(t, "user", "create", u, srvFlag)
		if err != nil {
			t.Fatalf("user create %s: %v", u, err)
		}
		m := regexp.MustCompile(`(?m)^token (\S+)$`).FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("no token in %q", out)
		}
		token[u] = m[1]
	}
	steps := []struct {
		args []string
		env  string // APPNODE_TOKEN
		want string // in the output, or in the error when fails
		fail bool
	}{
		{args: []string{"user", "post", "ann", "hello", "from", "ann", "--token", token["ann"]}, want: "posted "},
		{args: []string{"user", "post", "joe", "hi"}, env: token["joe"], want: "posted "},
		{args: []string{"user", "post", "joe", "hi"}, want: "APPNODE_TOKEN", fail: true},
		{args: []string{"user", "post", "joe", "hi", "--token", token["ann"]}, want: "wrong token", fail: true},
		{args: []string{"user", "follow", "joe", "ann"}, env: token["joe"], want: "joe follows ann"},
		{args: []string{"user", "following", "joe"}, want: "ann"},
		{args: []string{"user", "followers", "ann"}, want: "joe"},
		{args: []string{"user", "feed", "ann"}, want: "@ann: hello from ann"},
		{args: []string{"user", "timeline", "joe", "--limit", "1"}, env: token["joe"], want: "(more: --before "},
		{args: []string{"user", "timeline", "joe"}, env: token["joe"], want: "@ann: hello from ann"},
		{args: []string{"user", "follow", "joe", "ann", "--remove"}, env: token["joe"], want: "joe no longer follows ann"},
		{args: []string{"user", "lookup", "joe"}, want: "owner " + rg.Owner("joe")},
		{args: []string{"user", "create", "joe"}, want: "already exists", fail: true},
	}
	for _, s := range steps {
		t.Run(strings.Join(s.args[:3], " "), func(t *testing.T) {
			t.Setenv("APPNODE_TOKEN", s.env)
			out, err := run(t, append(s.args, srvFlag)...)
			if s.fail {
				if err == nil || !strings.Contains(err.Error(), s.want) {
					t.Errorf("%v = %q, %v; want an error with %q", s.args, out, err, s.want)
				}
				return
			}
			if err != nil || !strings.Contains(out, s.want) {
				t.Errorf("%v = %q, %v; want %q", s.args, out, err, s.want)
			}
		})
	}
}

func TestPrintStatus(t *testing.T) {
	var b bytes.Buffer
	st := node.Status{Node: "app1"}
	st.Self = "127.0.0.1:8081"
	st.Routing = "forward"
	st.Ring = ring.Info{Members: []string{"127.0.0.1:8081", "127.0.0.1:8082"}, VNodes: 128, Replicas: 2, Placement: ring.Successor, Version: "abcd"}
	st.Store.DiskBytes = 3 << 20
	st.Liveness = []gossip.State{{Member: "127.0.0.1:8081", State: gossip.Alive},
		{Member: "127.0.0.1:8082", State: gossip.Dead, Since: time.Date(2026, 11, 27, 4, 30, 0, 0, time.UTC), Gossip: "127.0.0.1:8182"},
		{Member: "127.0.0.1:8083", Problem: "could not learn its gossip address: connection refused"}}
	st.MembersAlive, st.Members = 1, 3
	st.EdgeNotes = 2
	st.HintsByMember = map[string]int{"127.0.0.1:8083": 7, "127.0.0.1:8082": 12}
	st.Rebalance = server.RebalanceStatus{From: "abcd", To: "ef01", Pending: 3, Done: 40}
	st.Links = []server.LinkStatus{
		{Member: "127.0.0.1:8082", Open: 2},
		{Member: "127.0.0.1:8083", HTTPUntil: time.Date(2026, 11, 27, 4, 31, 0, 0, time.UTC), Reason: "it refused the cluster secret"},
	}
	st.LinksServed = 3
	printStatus(&b, st)
	want := `node           app1
advertise      127.0.0.1:8081
routing        forward
ring           abcd (128 vnodes, 2 replicas, successor)
members        127.0.0.1:8081 (this member)
               127.0.0.1:8082
members alive  1 of 3
liveness       127.0.0.1:8081 alive (this member)
               127.0.0.1:8082 dead since 2026-11-27T04:30:00Z, gossip 127.0.0.1:8182
               127.0.0.1:8083 not seen yet: could not learn its gossip address: connection refused
hints          12 waiting for 127.0.0.1:8082
               7 waiting for 127.0.0.1:8083
rebalance      abcd -> ef01: 40 users streamed, 3 pending
edge notes     2 follow edges to confirm with their other side
forwarding     127.0.0.1:8082 over 2 member links
               127.0.0.1:8083 over HTTP until 2026-11-27T04:31:00Z: it refused the cluster secret
links served   3 from other members
store          3.0 MiB on disk
`
	if b.String() != want {
		t.Errorf("status table:\n%s\nwant:\n%s", b.String(), want)
	}
}

func TestMain(m *testing.M) {
	if serveChild() {
		return
	}
	os.Unsetenv("APPNODE_SERVER")
	os.Exit(m.Run())
}
