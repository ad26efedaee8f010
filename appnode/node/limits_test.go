package node

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ringfront/ringfront/appnode/limits"
)

func TestConfigLimits(t *testing.T) {
	tests := []struct {
		name, body, want string
	}{
		{"defaults", base, ""},
		{"off", base + "limits: {enabled: false}\n", ""},
		{"per minute", base + "limits: {posts: {user: {rate: 30/m, burst: 5}}}\n", ""},
		{"a rule off", base + "limits: {reads: {address: {rate: \"off\"}}}\n", ""},
		{"no unit", base + "limits: {posts: {user: {rate: \"10\"}}}\n", `limits.posts.user.rate: "10" is not a rate: write it like 10/s, 30/m or 20/h`},
		{"unknown unit", base + "limits: {posts: {user: {rate: 10/d}}}\n", `limits.posts.user.rate: "10/d" is not a rate`},
		{"zero rate", base + "limits: {reads: {address: {rate: 0/s}}}\n", `limits.reads.address.rate: "0/s" is not a rate`},
		{"negative rate", base + "limits: {follows: {user: {rate: -1/s}}}\n", `limits.follows.user.rate: "-1/s" is not a rate`},
		{"rate too high", base + "limits: {reads: {address: {rate: 2000000/s}}}\n", `limits.reads.address.rate: "2000000/s" is over 1e+06 per second`},
		{"negative burst", base + "limits: {signups: {address: {burst: -1}}}\n", `limits.signups.address.burst: "-1" is not from 1 to 1000000 requests`},
		{"sign-ups per user", base + "limits: {signups: {user: {rate: 1/s}}}\n", `limits.signups.user: unknown key`},
		{"table too small", base + "limits: {table_size: 10}\n", `limits.table_size: "10" is not from 1024 to 16777216 buckets`},
		{"bad exempt", base + "limits: {exempt: [\"10.0.0.0/33\"]}\n", `limits.exempt`},
		{"exempt", base + "limits: {exempt: [\"198.51.100.0/24\", \"2001:db8::/32\"]}\n", ""},
		{"header bytes", base + "http: {max_header_bytes: 100}\n", `http.max_header_bytes: "100" is not from 1024 to 1048576 bytes`},
		{"write timeout", base + "http: {write_timeout: 1ms}\n", `http.write_timeout: "1ms" is not from 100ms to 1h`},
		{"read timeout", base + "http: {read_timeout: 1s, read_header_timeout: 2s}\n", `http.read_timeout: "1s" is shorter than http.read_header_timeout (2s)`},
		{"timeouts", base + "http: {read_header_timeout: 2s, read_timeout: 10s, write_timeout: 1m, idle_timeout: 5m}\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := load(t, tt.body)
			if tt.want == "" {
				if err != nil {
					t.Errorf("got %v, want no error", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

// TestLimitsDefaults: the defaults reach the limiter as the README
// states them, loopback exempt.
func TestLimitsDefaults(t *testing.T) {
	cfg, err := load(t, base)
	if err != nil {
		t.Fatal(err)
	}
	got := cfg.tuning().Limits
	var want limits.Config
	want.TableSize = limits.DefaultTableSize
	want.Exempt = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	want.Address[limits.Signup] = limits.Rule{Rate: 20.0 / 3600, Burst: 10}
	want.Address[limits.Post] = limits.Rule{Rate: 10, Burst: 100}
	want.User[limits.Post] = limits.Rule{Rate: 1, Burst: 30}
	want.Address[limits.Follow] = limits.Rule{Rate: 10, Burst: 200}
	want.User[limits.Follow] = limits.Rule{Rate: 2, Burst: 100}
	want.Address[limits.Read] = limits.Rule{Rate: 100, Burst: 400}
	want.User[limits.Read] = limits.Rule{Rate: 20, Burst: 200}
	if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
		t.Errorf("default limits (-want +got):\n%s", diff)
	}
	off, err := load(t, base+"limits: {enabled: false}\n")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(limits.Config{}, off.tuning().Limits); diff != "" {
		t.Errorf("limits off (-want +got):\n%s", diff)
	}
}

// TestNodeLimitsReload: a member enforces the configured limits, and a
// reload changes them while it runs.
func TestNodeLimitsReload(t *testing.T) {
	write, loader := configFile(t)
	// Loopback is exempt by default: this test's client is not.
	write("limits: {exempt: [\"192.0.2.0/24\"], signups: {address: {rate: 1/h, burst: 2}}}\n")
	cfg, err := loader()
	if err != nil {
		t.Fatal(err)
	}
	n := runNode(t, cfg, loader)
	api := "http://" + n.Server().Addr().String()
	signUp := func(name string) (int, string) {
		resp, err := http.Post(api+"/v1/users", "application/json", strings.NewReader(fmt.Sprintf(`{"name": %q}`, name)))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("Retry-After")
	}
	for i, want := range []int{201, 201, 429} {
		if got, retry := signUp(fmt.Sprint("u", i)); got != want || want == 429 && retry == "" {
			t.Errorf("sign-up %d: %d (Retry-After %q), want %d", i, got, retry, want)
		}
	}
	write("limits: {enabled: false}\n")
	if err := n.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got, _ := signUp("after"); got != 201 {
		t.Errorf("sign-up after the limits were turned off: %d, want 201", got)
	}
	write("http: {write_timeout: 5s}\n")
	if err := n.Reload(context.Background()); err == nil || !strings.Contains(err.Error(), "http: ") || !strings.Contains(err.Error(), "cannot change on reload") {
		t.Errorf("reload with new listener timeouts = %v, want refused", err)
	}
}
