package history

import (
	"math"
	"slices"
	"time"
)

// Availability targets, per fault window (issue 13).
const (
	// MinShare is the share of counted requests that must succeed.
	MinShare = 0.99
	// MaxP99 bounds the counted requests' 99th percentile latency.
	MaxP99 = time.Second
	// MaxConvergence bounds the time from healing until every member
	// gives the same answers.
	MaxConvergence = 10 * time.Second
)

// Availability misses fail `make chaos` (the command's
// -availability-fails, on by default) but only show in the bounded run
// inside `go test` (-chaos.availability-fails turns failing on): on a
// loaded CI machine one slow scheduling round can push a window's p99
// past the target with nothing wrong in appnode. Safety violations
// always fail.

// Window is a stretch of a run: the fault-free baseline or one fault,
// from its injection until it was healed.
type Window struct {
	Name  string
	Fault *Fault // nil for the baseline
	Start time.Time
	End   time.Time
	// Converged is the time from healing until every member gave the
	// same answers (follow sets and edges), or how long the check
	// waited when Agreed is false; Why then says what differed.
	Converged time.Duration
	Agreed    bool
	Why       string
}

// Stat is the requests of one kind of client in a window.
type Stat struct {
	// Requests counted: for plain clients those sent to a member that
	// was running and reachable by the clients, for smart clients all.
	Requests int
	OK       int
	// Excluded are a plain client's requests to a member that was
	// down or cut off from the clients.
	Excluded int
	// NoReplica are requests (not counted) about a user none of whose
	// replicas the clients could reach: every copy of its data was down
	// or on the far side of a partition, so no member could answer.
	NoReplica int
	P99       time.Duration
}

// Share is the fraction of counted requests that succeeded.
func (s Stat) Share() float64 {
	if s.Requests == 0 {
		return 0
	}
	return float64(s.OK) / float64(s.Requests)
}

// Meets reports whether s meets the availability targets.
func (s Stat) Meets() bool { return s.Requests > 0 && s.Share() >= MinShare && s.P99 < MaxP99 }

// WindowFigures are a window's availability figures.
type WindowFigures struct {
	Window
	Plain, Smart Stat
}

// Availability computes each window's figures from the operations that
// started in it. A plain client's request counts when its member was
// neither down nor cut off from the clients when it was sent. A
// request about a user (or, for a follow, a followee) whose replicas
// (pref: a user's preference list; nil: not known) were all down or
// cut off from the clients is not counted either, for either kind of
// client: no member could serve it (with replicas 2, a partition that
// puts both of a user's replicas on the far side).
func Availability(ops []Op, windows []Window, outages []Outage, pref func(user string) []string) []WindowFigures {
	out := make([]WindowFigures, len(windows))
	for i, w := range windows {
		out[i].Window = w
		var plain, smart []time.Duration
		for _, o := range ops {
			if o.Setup || o.Start.Before(w.Start) || !o.Start.Before(w.End) {
				continue
			}
			st, lat := &out[i].Smart, &smart
			if o.Client == Plain {
				st, lat = &out[i].Plain, &plain
				if unavailable(o.Member, o.Start, outages) {
					st.Excluded++
					continue
				}
			}
			if pref != nil && (noReplica(pref(o.User), o.Start, outages) || o.Other != "" && noReplica(pref(o.Other), o.Start, outages)) {
				st.NoReplica++
				continue
			}
			st.Requests++
			if o.Outcome == OK {
				st.OK++
			}
			*lat = append(*lat, o.Latency())
		}
		out[i].Plain.P99 = percentile(plain, 0.99)
		out[i].Smart.P99 = percentile(smart, 0.99)
	}
	return out
}

// noReplica reports whether every member of replicas was unavailable
// at t.
func noReplica(replicas []string, t time.Time, outages []Outage) bool {
	for _, m := range replicas {
		if !unavailable(m, t, outages) {
			return false
		}
	}
	return len(replicas) > 0
}

func unavailable(member string, t time.Time, outages []Outage) bool {
	for _, o := range outages {
		if o.Member == member && o.covers(t) {
			return true
		}
	}
	return false
}

// percentile returns the q-quantile of ds (nearest rank), 0 for none.
func percentile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	ds = slices.Clone(ds)
	slices.Sort(ds)
	rank := int(math.Ceil(q * float64(len(ds))))
	return ds[min(max(rank, 1), len(ds))-1]
}
