package chaos

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/ringfront/ringfront/appnode/chaos/history"
)

func TestSchedule(t *testing.T) {
	a, b := Schedule(1, 2, 5), Schedule(1, 2, 5)
	if diff := cmp.Diff(a, b); diff != "" {
		t.Fatalf("the same seed gave two schedules (-first +second):\n%s", diff)
	}
	if cmp.Equal(a, Schedule(2, 2, 5)) {
		t.Error("seeds 1 and 2 gave the same schedule")
	}
	if len(a) != 2*len(history.FaultKinds) {
		t.Fatalf("%d faults, want %d", len(a), 2*len(history.FaultKinds))
	}
	count := map[history.FaultKind]int{}
	for i, f := range a {
		count[f.Kind]++
		if i < len(history.FaultKinds) && count[f.Kind] != 1 {
			t.Errorf("%s twice in the first round", f.Kind)
		}
		want := 1
		if f.Kind == history.Partition {
			want = 2 // the largest minority of 5
		}
		if len(f.Members) != want || !slices.IsSorted(f.Members) {
			t.Errorf("%s hits members %v, want %d in order", f, f.Members, want)
		}
		for _, m := range f.Members {
			if m < 0 || m >= 5 {
				t.Errorf("%s hits member %d of 5", f, m)
			}
		}
		if f.Kind == history.Clock && f.Offset.Abs() != history.ClockOffset || f.Kind != history.Clock && f.Offset != 0 {
			t.Errorf("%s has offset %v", f, f.Offset)
		}
	}
	for _, k := range history.FaultKinds {
		if count[k] != 2 {
			t.Errorf("%s %d times, want 2", k, count[k])
		}
	}
}

// fakeTarget records what the nemesis does as text.
type fakeTarget struct {
	log []string
	now *time.Time // advanced a second by each action
}

func (f *fakeTarget) rec(format string, args ...any) error {
	f.log = append(f.log, fmt.Sprintf(format, args...))
	*f.now = f.now.Add(time.Second)
	return nil
}

func names(ms []int) string {
	var s []string
	for _, m := range ms {
		s = append(s, history.MemberName(m))
	}
	return strings.Join(s, ",")
}

func (f *fakeTarget) Cut(m int, peers []int, clients bool) error {
	return f.rec("cut %s from %s clients=%v", history.MemberName(m), names(peers), clients)
}
func (f *fakeTarget) Heal(m int) error { return f.rec("heal %s", history.MemberName(m)) }
func (f *fakeTarget) Signal(m int, sig syscall.Signal) error {
	return f.rec("signal %s %v", history.MemberName(m), sig)
}
func (f *fakeTarget) Kill(m int) error { return f.rec("kill %s", history.MemberName(m)) }
func (f *fakeTarget) Wipe(m int) error { return f.rec("wipe %s", history.MemberName(m)) }
func (f *fakeTarget) Start(_ context.Context, m int) error {
	return f.rec("start %s", history.MemberName(m))
}
func (f *fakeTarget) SetClock(m int, d time.Duration) error {
	return f.rec("clock %s %v", history.MemberName(m), d)
}

func TestNemesis(t *testing.T) {
	for _, tc := range []struct {
		fault   history.Fault
		actions []string
		outages []string // member from-to, seconds after t0
	}{
		{history.Fault{Kind: history.Partition, Members: []int{1, 3}}, []string{
			"cut m2 from m1,m3,m5 clients=true", "cut m4 from m1,m3,m5 clients=true",
			"cut m1 from m2,m4 clients=false", "cut m3 from m2,m4 clients=false", "cut m5 from m2,m4 clients=false",
			"heal m1", "heal m2", "heal m3", "heal m4", "heal m5",
		}, []string{"m2 0-10", "m4 0-10"}},
		{history.Fault{Kind: history.Isolate, Members: []int{2}}, []string{
			"cut m3 from m1,m2,m4,m5 clients=true",
			"cut m1 from m3 clients=false", "cut m2 from m3 clients=false", "cut m4 from m3 clients=false", "cut m5 from m3 clients=false",
			"heal m1", "heal m2", "heal m3", "heal m4", "heal m5",
		}, []string{"m3 0-10"}},
		{history.Fault{Kind: history.Pause, Members: []int{0}}, []string{"signal m1 stopped (signal)", "signal m1 continued"}, []string{"m1 0-2"}},
		{history.Fault{Kind: history.Kill, Members: []int{4}}, []string{"kill m5", "start m5"}, []string{"m5 0-2"}},
		{history.Fault{Kind: history.Wipe, Members: []int{4}}, []string{"kill m5", "wipe m5", "start m5"}, []string{"m5 0-3"}},
		{history.Fault{Kind: history.Clock, Members: []int{1}, Offset: -history.ClockOffset}, []string{"clock m2 -1m0s", "clock m2 0s"}, nil},
	} {
		t.Run(tc.fault.String(), func(t *testing.T) {
			now := t0
			ft := &fakeTarget{now: &now}
			ne := newNemesis(ft, []string{"m1", "m2", "m3", "m4", "m5"}, func() time.Time { return now })
			if err := ne.Apply(t.Context(), tc.fault); err != nil {
				t.Fatal(err)
			}
			if err := ne.Heal(t.Context(), tc.fault); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.actions, ft.log); diff != "" {
				t.Errorf("actions (-want +got):\n%s", diff)
			}
			var outages []string
			for _, o := range ne.Outages() {
				outages = append(outages, fmt.Sprintf("%s %.0f-%.0f", o.Member, o.From.Sub(t0).Seconds(), o.To.Sub(t0).Seconds()))
			}
			slices.Sort(outages)
			if diff := cmp.Diff(tc.outages, outages); diff != "" {
				t.Errorf("outages (-want +got):\n%s", diff)
			}
		})
	}
}

func TestFaultString(t *testing.T) {
	for _, tc := range []struct {
		f    history.Fault
		want string
	}{
		{history.Fault{Kind: history.Partition, Members: []int{0, 3}}, "partition m1,m4 | rest"},
		{history.Fault{Kind: history.Clock, Members: []int{2}, Offset: history.ClockOffset}, "clock m3 +60s"},
		{history.Fault{Kind: history.Clock, Members: []int{2}, Offset: -history.ClockOffset}, "clock m3 -60s"},
		{history.Fault{Kind: history.Wipe, Members: []int{4}}, "wipe m5"},
	} {
		if got := tc.f.String(); got != tc.want {
			t.Errorf("%v.String() = %q, want %q", tc.f, got, tc.want)
		}
	}
}

// t0 is the start of the hand-made outages.
var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
