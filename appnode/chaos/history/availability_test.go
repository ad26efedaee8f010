package history

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestAvailability(t *testing.T) {
	via := func(o Op, member string) Op { o.Member = member; return o }
	smart := func(o Op) Op { o.Client = Smart; return o }
	ops := []Op{
		{Kind: CreateUser, Client: Smart, Start: at(0.5), End: at(0.6), Outcome: OK, Setup: true}, // setup: never counted
		via(op(ReadPosts, "a", "", 1, 1.01, OK), "m1"),
		via(op(ReadPosts, "a", "", 2, 2.02, OK), "m2"),
		smart(op(ReadPosts, "a", "", 3, 3.1, OK)),
		// The fault window, 10 to 20: m2 is down from 10 to 15.
		via(op(ReadPosts, "a", "", 11, 14, Unknown), "m1"),
		via(op(ReadPosts, "a", "", 12, 12.1, Failed), "m2"), // excluded: m2 down
		via(op(ReadPosts, "a", "", 15, 15.2, OK), "m2"),     // m2 back
		via(op(ReadPosts, "a", "", 16, 16.3, OK), "m3"),
		smart(op(ReadPosts, "a", "", 12, 15, Unknown)),
		smart(op(ReadPosts, "a", "", 19.9, 20.5, OK)),
		via(op(ReadPosts, "a", "", 20, 20.1, Failed), "m1"), // after the window
	}
	windows := []Window{{Name: "baseline", Start: at(0), End: at(10)}, {Name: "fault", Start: at(10), End: at(20)}}
	outages := []Outage{{Member: "m2", From: at(10), To: at(15)}}
	got := Availability(ops, windows, outages, nil)
	want := []WindowFigures{
		{Window: windows[0], Plain: Stat{Requests: 2, OK: 2, P99: 20 * time.Millisecond}, Smart: Stat{Requests: 1, OK: 1, P99: 100 * time.Millisecond}},
		{Window: windows[1], Plain: Stat{Requests: 3, OK: 2, Excluded: 1, P99: 3 * time.Second}, Smart: Stat{Requests: 2, OK: 1, P99: 3 * time.Second}},
	}
	if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b time.Duration) bool { return (a - b).Abs() < time.Millisecond })); diff != "" {
		t.Errorf("Availability (-want +got):\n%s", diff)
	}
	for i, w := range []bool{true, false} {
		if got := got[i].Plain.Meets() && got[i].Smart.Meets(); got != w {
			t.Errorf("window %d meets the targets = %v, want %v", i, got, w)
		}
	}
}

func TestStatMeets(t *testing.T) {
	for _, tc := range []struct {
		name string
		s    Stat
		want bool
	}{
		{"all ok and fast", Stat{Requests: 100, OK: 100, P99: 50 * time.Millisecond}, true},
		{"99% ok", Stat{Requests: 100, OK: 99, P99: 999 * time.Millisecond}, true},
		{"98% ok", Stat{Requests: 100, OK: 98, P99: 50 * time.Millisecond}, false},
		{"p99 of a second", Stat{Requests: 100, OK: 100, P99: time.Second}, false},
		{"no requests", Stat{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.s.Meets(); got != tc.want {
				t.Errorf("Meets() = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestPercentile(t *testing.T) {
	ds := make([]time.Duration, 200)
	for i := range ds {
		ds[i] = time.Duration(200-i) * time.Millisecond // 200ms .. 1ms
	}
	for _, tc := range []struct {
		ds   []time.Duration
		q    float64
		want time.Duration
	}{
		{nil, 0.99, 0},
		{ds[:1], 0.99, 200 * time.Millisecond},
		{ds, 0.99, 198 * time.Millisecond}, // the 198th of 200
		{ds, 0.5, 100 * time.Millisecond},
		{ds, 1, 200 * time.Millisecond},
	} {
		if got := percentile(tc.ds, tc.q); got != tc.want {
			t.Errorf("percentile(%d values, %v) = %v, want %v", len(tc.ds), tc.q, got, tc.want)
		}
	}
}

// TestAvailabilityNoReplica: a request about a user whose replicas were
// all unavailable is not counted, for either kind of client.
func TestAvailabilityNoReplica(t *testing.T) {
	smart := func(o Op) Op { o.Client = Smart; return o }
	ops := []Op{
		smart(op(ReadPosts, "a", "", 11, 11.1, Failed)), // a's replicas m1, m2: both cut off
		smart(op(ReadPosts, "b", "", 12, 12.1, OK)),     // b's: m2, m3
		smart(op(Follow, "b", "a", 13, 13.1, Failed)),   // the followee a has no replica reachable
	}
	windows := []Window{{Name: "partition", Start: at(10), End: at(20)}}
	outages := []Outage{{Member: "m1", From: at(10), To: at(20)}, {Member: "m2", From: at(10), To: at(20)}}
	pref := func(u string) []string { return map[string][]string{"a": {"m1", "m2"}, "b": {"m2", "m3"}}[u] }
	got := Availability(ops, windows, outages, pref)
	if s := got[0].Smart; s.Requests != 1 || s.OK != 1 || s.NoReplica != 2 {
		t.Errorf("smart figures %+v, want 1 request counted (ok) and 2 with no replica reachable", s)
	}
}
