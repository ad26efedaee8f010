package cli

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/ringfront/ringfront/appnode/ring"
	"github.com/ringfront/ringfront/appnode/server"
	"github.com/ringfront/ringfront/appnode/store"
	"github.com/spf13/cobra"
)

// run runs the appnode root command with these commands under it.
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

// newRoot is appnode's root command with this package's commands.
func newRoot() *cobra.Command {
	root := &cobra.Command{Use: "appnode", SilenceUsage: true, SilenceErrors: true}
	root.AddCommand(User(), Proxy())
	return root
}

func TestMain(m *testing.M) {
	os.Unsetenv("APPNODE_SERVER")
	os.Exit(m.Run())
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

// TestExplainTLS: a certificate error says what to do about it; other
// errors pass unchanged.
func TestExplainTLS(t *testing.T) {
	unknown := fmt.Errorf("fetching the ring: %w", x509.UnknownAuthorityError{})
	host := fmt.Errorf("fetching the ring: %w", x509.HostnameError{Certificate: &x509.Certificate{}, Host: "10.0.0.1"})
	plain := errors.New("connection refused")
	for _, c := range []struct {
		err    error
		caFile string
		want   string
	}{
		{unknown, "", "give it with --ca-file or APPNODE_CA_FILE"},
		{unknown, "/etc/ca.pem", "not signed by a CA in /etc/ca.pem"},
		{host, "", "the certificate names in --server"},
		{plain, "", "connection refused"},
	} {
		got := explainTLS(c.err, c.caFile)
		if !strings.Contains(got.Error(), c.want) || !errors.Is(got, c.err) {
			t.Errorf("explainTLS(%v, %q) = %v, want it to say %q and wrap the error", c.err, c.caFile, got, c.want)
		}
	}
	if explainTLS(nil, "") != nil {
		t.Error("explainTLS(nil) is not nil")
	}
}
