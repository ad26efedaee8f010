package chaos

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/ringfront/ringfront/appnode/chaos/history"
)

func TestReportVerdicts(t *testing.T) {
	pause := history.Fault{Kind: history.Pause, Members: []int{1}}
	kill := history.Fault{Kind: history.Kill, Members: []int{2}}
	good := history.Stat{Requests: 100, OK: 100, P99: 20 * time.Millisecond}
	bad := history.Stat{Requests: 10, OK: 2, P99: 3 * time.Second}
	r := &Report{
		Config:   Bounded(ProfileA, 1),
		Schedule: []history.Fault{pause, kill},
		Windows: []history.WindowFigures{
			{Window: history.Window{Name: "baseline"}, Plain: good, Smart: good},
			{Window: history.Window{Name: pause.String(), Fault: &pause, Converged: 11 * time.Second, Agreed: false, Why: "u1's following differ"}, Plain: bad, Smart: good},
			{Window: history.Window{Name: kill.String(), Fault: &kill, Converged: time.Second, Agreed: false, Why: "still: u1's following differ"}, Plain: good, Smart: good},
		},
		Safety:         &history.Safety{Lost: history.Finding{N: 1, Examples: []string{"post p1 by u1"}}},
		FinalAgreed:    true,
		FinalConverged: time.Second,
		Outcomes:       map[history.Outcome]int{},
	}
	want := []string{
		"lost: 1 (post p1 by u1)",
		"after pause m2: members did not agree within 10s of healing (11.0 s: u1's following differ)",
		"after kill m3: members did not agree (still: u1's following differ)",
	}
	if diff := cmp.Diff(want, r.SafetyViolations()); diff != "" {
		t.Errorf("safety violations (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"pause m2, plain clients: 20.0% of 10 ok, p99 3.00s"}, r.AvailabilityMisses()); diff != "" {
		t.Errorf("availability misses (-want +got):\n%s", diff)
	}
	var b strings.Builder
	r.Print(&b)
	for _, s := range []string{
		"schedule: 1. pause m2; 2. kill m3",
		"pause m2  20.0%",
		"as before",
		"lost (acknowledged posts missing through a member)       1  MISS",
		"  lost: post p1 by u1",
		"verdict: safety FAIL (3); availability MISS in 1 window×client figures",
	} {
		if !strings.Contains(b.String(), s) {
			t.Errorf("the report lacks %q:\n%s", s, b.String())
		}
	}
}
