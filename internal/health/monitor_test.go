package health

import (
	"context"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestTrackerHysteresis(t *testing.T) {
	tests := []struct {
		name       string
		rise, fall int
		results    string // + success, - failure
		want       string // state after each result: U up, D down
	}{
		{"first success is up at once", 2, 3, "+", "U"},
		{"first failure is down at once", 2, 3, "-", "D"},
		{"fall needs consecutive failures", 2, 3, "+--+---", "UUUUUUD"},
		{"rise needs consecutive successes", 2, 3, "-+-++", "DDDDU"},
		{"rise 1 fall 1 flaps", 1, 1, "+-+-", "UDUD"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var tr tracker
			var got strings.Builder
			for _, r := range tt.results {
				tr.observe(r == '+', tt.rise, tt.fall)
				got.WriteByte(strings.ToUpper(tr.state.String())[0])
			}
			if diff := cmp.Diff(tt.want, got.String()); diff != "" {
				t.Errorf("states (-want +got):\n%s", diff)
			}
		})
	}
}

// fakeProber passes or fails targets as the test says.
type fakeProber struct {
	mu    sync.Mutex
	ok    map[string]bool
	calls map[string]int
}

func (f *fakeProber) set(id string, ok bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ok[id] = ok
}

func (f *fakeProber) Probe(ctx context.Context, t Target) Result {
	f.mu.Lock()
	ok := f.ok[t.ID]
	f.calls[t.ID]++
	f.mu.Unlock()
	r := Result{OK: ok, At: time.Now()}
	if !ok {
		r.Err = "refused"
	}
	return r
}

func (f *fakeProber) count(id string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[id]
}

func newFake() *fakeProber {
	return &fakeProber{ok: map[string]bool{}, calls: map[string]int{}}
}

func testCheck() Check {
	c := Check{Type: "tcp", Port: 80, Interval: time.Second, Timeout: 500 * time.Millisecond, Rise: 2, Fall: 3}
	if err := c.Validate(); err != nil {
		panic(err)
	}
	return c
}

func TestMonitorEvents(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fp := newFake()
		fp.set("a", true)
		fp.set("b", false)
		m := NewMonitor(Options{Prober: fp})
		check := testCheck()
		if err := m.Set([]Target{{ID: "a", Check: check}, {ID: "b", Check: check}}); err != nil {
			t.Fatal(err)
		}
		sub := m.Subscribe()
		defer sub.Close()
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- m.Run(ctx) }()
		defer cancel()

		if err := m.WaitKnown(ctx, nil); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		got := eventsText(sub.Drain())
		slices.Sort(got)
		want := []string{"a unknown->up", "b unknown->down"}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("first round events (-want +got):\n%s", diff)
		}

		// a fails: it goes down only after fall=3 consecutive failures,
		// that is 3 intervals later.
		synctest.Wait()
		fp.set("a", false)
		start := time.Now()
		<-sub.Ready()
		if got, want := time.Since(start), 3*time.Second; got != want {
			t.Errorf("a went down after %v, want %v", got, want)
		}
		if diff := cmp.Diff([]string{"a up->down"}, eventsText(sub.Drain())); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
		// b recovers after rise=2. Let every probe of this instant run
		// first, so b's schedule does not race the change.
		synctest.Wait()
		fp.set("b", true)
		start = time.Now()
		<-sub.Ready()
		if got, want := time.Since(start), 2*time.Second; got != want {
			t.Errorf("b came up after %v, want %v", got, want)
		}
		if diff := cmp.Diff([]string{"b down->up"}, eventsText(sub.Drain())); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
		st := m.Snapshot()
		if st[1].ID != "b" || st[1].State != Up || st[1].Successes != 2 {
			t.Errorf("snapshot of b = %+v", st[1])
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
}

func TestMonitorSetKeepsState(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fp := newFake()
		fp.set("a", true)
		fp.set("c", true)
		m := NewMonitor(Options{Prober: fp})
		check := testCheck()
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		m.Set([]Target{{ID: "a", Check: check}, {ID: "b", Check: check}})
		go m.Run(ctx)
		m.WaitKnown(ctx, nil)
		time.Sleep(1500 * time.Millisecond)
		synctest.Wait()
		before := fp.count("a")

		// a kept (same check), b removed, c added.
		m.Set([]Target{{ID: "a", Check: check}, {ID: "c", Check: check}})
		if err := m.WaitKnown(ctx, []string{"c"}); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if got := m.State("a"); got != Up {
			t.Errorf("a state after Set = %v, want up (kept)", got)
		}
		if fp.count("a") != before {
			t.Errorf("a was re-probed at once after Set (%d -> %d probes): its schedule should be kept", before, fp.count("a"))
		}
		if got := m.State("b"); got != Unknown {
			t.Errorf("b state after removal = %v, want unknown", got)
		}
		calls := fp.count("b")
		time.Sleep(5 * time.Second)
		synctest.Wait()
		if fp.count("b") != calls {
			t.Errorf("removed target b still probed")
		}
		// A changed check restarts the target from unknown.
		c2 := check
		c2.Port = 81
		m.Set([]Target{{ID: "a", Check: c2}})
		if got := m.State("a"); got != Unknown {
			t.Errorf("a after check change = %v, want unknown", got)
		}
	})
}

func TestMonitorBoundedConcurrency(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		inFlight, peak := 0, 0
		slow := proberFunc(func(ctx context.Context, tg Target) Result {
			mu.Lock()
			inFlight++
			peak = max(peak, inFlight)
			mu.Unlock()
			select {
			case <-time.After(100 * time.Millisecond):
			case <-ctx.Done():
			}
			mu.Lock()
			inFlight--
			mu.Unlock()
			return Result{OK: true, At: time.Now()}
		})
		m := NewMonitor(Options{Prober: slow, MaxConcurrent: 3})
		var ts []Target
		for i := range 20 {
			ts = append(ts, Target{ID: string(rune('a' + i)), Check: testCheck()})
		}
		m.Set(ts)
		ctx, cancel := context.WithCancel(t.Context())
		go m.Run(ctx)
		if err := m.WaitKnown(ctx, nil); err != nil {
			t.Fatal(err)
		}
		cancel()
		synctest.Wait()
		if peak != 3 {
			t.Errorf("peak probes in flight = %d, want 3", peak)
		}
	})
}

func TestWaitKnownTimesOut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := NewMonitor(Options{Prober: newFake()})
		m.Set([]Target{{ID: "a", Check: testCheck()}})
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		// Not running: nothing is ever probed.
		if err := m.WaitKnown(ctx, nil); err == nil || !strings.Contains(err.Error(), "a") {
			t.Errorf("WaitKnown = %v, want a timeout naming a", err)
		}
	})
}

type proberFunc func(context.Context, Target) Result

func (f proberFunc) Probe(ctx context.Context, t Target) Result { return f(ctx, t) }

func eventsText(evs []Event) []string {
	var out []string
	for _, e := range evs {
		out = append(out, e.ID+" "+e.From.String()+"->"+e.To.String())
	}
	return out
}

func TestNetProber(t *testing.T) {
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/healthz":
			w.Write([]byte("status: serving"))
		case "/host":
			w.Write([]byte("host=" + r.Host))
		default:
			http.Error(w, "nope", http.StatusServiceUnavailable)
		}
	}))
	defer ok.Close()
	tlsSrv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	tlsSrv.Config.ErrorLog = log.New(io.Discard, "", 0)
	tlsSrv.StartTLS()
	defer tlsSrv.Close()
	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	closedPort := closed.Addr().(*net.TCPAddr).Port
	closed.Close()
	lst, _ := net.Listen("tcp", "127.0.0.1:0")
	defer lst.Close()

	port := func(u string) int {
		return int(netip.MustParseAddrPort(strings.TrimPrefix(strings.TrimPrefix(u, "http://"), "https://")).Port())
	}
	p := NewNetProber()
	lo := netip.MustParseAddr("127.0.0.1")
	tests := []struct {
		name    string
		check   Check
		wantOK  bool
		wantErr string
	}{
		{"tcp open", Check{Type: "tcp", Port: lst.Addr().(*net.TCPAddr).Port}, true, ""},
		{"tcp closed", Check{Type: "tcp", Port: closedPort}, false, "connection refused"},
		{"http 200", Check{Type: "http", Port: port(ok.URL), Path: "/healthz"}, true, ""},
		{"http body match", Check{Type: "http", Port: port(ok.URL), Path: "/healthz", Body: "serving"}, true, ""},
		{"http body mismatch", Check{Type: "http", Port: port(ok.URL), Path: "/healthz", Body: "draining"}, false, "body does not contain"},
		{"http status", Check{Type: "http", Port: port(ok.URL), Path: "/other"}, false, "status 503"},
		{"http accepted 503", Check{Type: "http", Port: port(ok.URL), Path: "/other", Expect: []int{200, 503}}, true, ""},
		{"http host header", Check{Type: "http", Port: port(ok.URL), Path: "/host", Host: "www.example.org", Body: "host=www.example.org"}, true, ""},
		{"http closed", Check{Type: "http", Port: closedPort}, false, "refused"},
		{"https unverified cert", Check{Type: "https", Port: port(tlsSrv.URL)}, false, "certificate"},
		{"https skip verify", Check{Type: "https", Port: port(tlsSrv.URL), InsecureSkipVerify: true}, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.check
			if err := c.Validate(); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
			defer cancel()
			res := p.Probe(ctx, Target{ID: "x", Addr: lo, Check: c})
			if res.OK != tt.wantOK || !strings.Contains(res.Err, tt.wantErr) {
				t.Errorf("Probe = %+v, want ok=%v err containing %q", res, tt.wantOK, tt.wantErr)
			}
		})
	}
}

func TestNetProberTimeout(t *testing.T) {
	// A server that accepts but never answers.
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	}))
	defer hang.Close()
	c := Check{Type: "http", Port: hang.Listener.Addr().(*net.TCPAddr).Port}
	c.Validate()
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	res := NewNetProber().Probe(ctx, Target{Addr: netip.MustParseAddr("127.0.0.1"), Check: c})
	if res.OK || res.Err != "timeout" {
		t.Errorf("Probe of a hung server = %+v, want a timeout", res)
	}
}

func TestCheckValidate(t *testing.T) {
	tests := []struct {
		name  string
		check Check
		want  string
	}{
		{"http defaults", Check{Type: "http"}, ""},
		{"missing type", Check{}, "type: is required"},
		{"bad type", Check{Type: "icmp"}, `type: "icmp" is not a check type`},
		{"tcp needs port", Check{Type: "tcp"}, "port: is required"},
		{"tcp with path", Check{Type: "tcp", Port: 1, Path: "/x"}, "takes no path"},
		{"bad port", Check{Type: "http", Port: 70000}, `port: "70000" is not a port`},
		{"bad path", Check{Type: "http", Path: "healthz"}, `path: "healthz" must start with /`},
		{"bad expect", Check{Type: "http", Expect: []int{200, 2000}}, `expect[1]: "2000"`},
		{"timeout over interval", Check{Type: "http", Interval: time.Second, Timeout: 2 * time.Second}, "timeout: \"2s\" must be positive and at most the interval"},
		{"tiny interval", Check{Type: "http", Interval: time.Millisecond}, "interval: \"1ms\" is too short"},
		{"bad rise", Check{Type: "http", Rise: -1}, "rise"},
		{"bad fall", Check{Type: "http", Fall: 101}, "fall"},
		{"exec", Check{Type: "exec", Command: []string{"/bin/sh", "-c", "exit 0"}}, ""},
		{"exec from PATH", Check{Type: "exec", Command: []string{"true"}}, ""},
		{"exec needs command", Check{Type: "exec"}, "command: is required"},
		{"exec missing program", Check{Type: "exec", Command: []string{"/nonexistent/check"}}, `command[0]: "/nonexistent/check" cannot be run: stat /nonexistent/check: no such file or directory`},
		{"exec with path", Check{Type: "exec", Command: []string{"true"}, Path: "/x"}, "takes no path"},
		{"command on http", Check{Type: "http", Command: []string{"true"}}, "takes no command"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.check.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Validate = %v, want %q", err, tt.want)
			}
		})
	}
}
