// Package apptest starts appnode clusters on loopback for the tests of
// the packages built on the server: the local proxy, the web page and
// the command line. Each member is a server.Server with its own store,
// served by an httptest.Server; everything stops when the test ends.
package apptest

import (
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/ringfront/ringfront/appnode/ring"
	"github.com/ringfront/ringfront/appnode/server"
	"github.com/ringfront/ringfront/appnode/store"
)

// Member is one member of a test cluster.
type Member struct {
	Addr   string // host:port, as the ring names it
	URL    string // http://host:port
	Server *server.Server
	HTTP   *httptest.Server
}

// Options shape a test cluster.
type Options struct {
	// Replicas is the preference list length; 0 means 2 (1 for a
	// cluster of one).
	Replicas int
	// Wrap, when set, wraps member i's handler (to count or record the
	// requests that reach it).
	Wrap func(i int, h http.Handler) http.Handler
}

// Cluster starts n members on 127.0.0.1 sharing one ring (16 vnodes).
func Cluster(t testing.TB, n int, o Options) []*Member {
	t.Helper()
	if o.Replicas == 0 {
		o.Replicas = min(2, n)
	}
	lns := make([]net.Listener, n)
	addrs := make([]string, n)
	for i := range lns {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns[i], addrs[i] = ln, ln.Addr().String()
	}
	rg, err := ring.New(ring.Config{Members: addrs, VNodes: 16, Replicas: o.Replicas})
	if err != nil {
		t.Fatal(err)
	}
	ms := make([]*Member, n)
	for i, ln := range lns {
		st, err := store.Open(t.TempDir(), store.Options{Space: func(string) (store.Space, error) { return store.Space{Free: 1 << 40}, nil }})
		if err != nil {
			t.Fatal(err)
		}
		srv, err := server.New(server.Options{Self: addrs[i], Ring: rg, Store: st, Secret: []byte("apptest cluster secret"),
			Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			st.Close()
			t.Fatal(err)
		}
		var h http.Handler = srv
		if o.Wrap != nil {
			h = o.Wrap(i, srv)
		}
		ts := httptest.NewUnstartedServer(h)
		ts.Listener.Close()
		ts.Listener = ln
		ts.Start()
		ms[i] = &Member{Addr: addrs[i], URL: ts.URL, Server: srv, HTTP: ts}
		t.Cleanup(func() { ts.Close(); st.Close() })
	}
	return ms
}

// Kill makes m refuse connections from now on, like a member whose
// process died: its listener and its open connections close.
func (m *Member) Kill() {
	m.HTTP.Listener.Close()
	m.HTTP.CloseClientConnections()
}

// Owner returns the member that owns name.
func Owner(ms []*Member, name string) *Member {
	o := ms[0].Server.Ring().Owner(name)
	for _, m := range ms {
		if m.Addr == o {
			return m
		}
	}
	panic("apptest: no member owns " + name)
}
