package history

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// t0 is the start of the hand-made histories.
var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// at is t0 plus seconds.
func at(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }

// op builds an operation that ran from start to end seconds after t0.
func op(kind Kind, user, other string, start, end float64, out Outcome) Op {
	return Op{Client: Plain, Kind: kind, User: user, Other: other, Start: at(start), End: at(end), Outcome: out}
}

// post builds a post operation; an acknowledged one gets id "id-"+text.
func post(user, text string, start, end float64, out Outcome) Op {
	o := op(Post, user, "", start, end, out)
	o.Text = text
	if out == OK {
		o.PostID = "id-" + text
	}
	return o
}

// failedWith sets a failed operation's status.
func failedWith(o Op, status int) Op {
	o.Outcome, o.Status = Failed, status
	return o
}

// views builds a snapshot of identical views on members m1..mn.
func views(n int, fill func(v *View)) Snapshot {
	s := Snapshot{}
	for i := range n {
		v := NewView()
		fill(v)
		s[MemberName(i)] = v
	}
	return s
}

func refs(author string, texts ...string) []PostRef {
	var out []PostRef
	for _, t := range texts {
		out = append(out, PostRef{ID: "id-" + t, Author: author, Text: t})
	}
	return out
}

func TestCheckPosts(t *testing.T) {
	users := []string{"a", "b"}
	history := []Op{
		post("a", "a1", 1, 2, OK),
		post("a", "a2", 2, 3, OK),
		post("b", "b1", 1, 5, Unknown),
		post("b", "b2", 1, 2, Failed),
	}
	for _, tc := range []struct {
		name string
		snap Snapshot
		// want: lost, phantom, duplicated, failed present, unknown present, read errors
		want [6]int
	}{
		{"all there", views(3, func(v *View) { v.Posts["a"] = refs("a", "a2", "a1"); v.Posts["b"] = nil }), [6]int{}},
		{"unknown and failed posts stored", views(3, func(v *View) {
			v.Posts["a"] = refs("a", "a2", "a1")
			v.Posts["b"] = refs("b", "b1", "b2")
		}), [6]int{0, 0, 0, 1, 1, 0}},
		{"acknowledged post missing on one member", func() Snapshot {
			s := views(3, func(v *View) { v.Posts["a"] = refs("a", "a2", "a1"); v.Posts["b"] = nil })
			s["m2"].Posts["a"] = refs("a", "a2")
			return s
		}(), [6]int{1, 0, 0, 0, 0, 0}},
		{"read failed on one member", func() Snapshot {
			s := views(3, func(v *View) { v.Posts["a"] = refs("a", "a2", "a1"); v.Posts["b"] = nil })
			delete(s["m3"].Posts, "a")
			s["m3"].Errors["posts a"] = "404 user a: not found"
			return s
		}(), [6]int{2, 0, 0, 0, 0, 1}},
		{"a text nobody sent", views(2, func(v *View) {
			v.Posts["a"] = append(refs("a", "a2", "a1"), PostRef{ID: "x", Author: "a", Text: "never sent"})
		}), [6]int{0, 1, 0, 0, 0, 0}},
		{"a text sent by another author", views(2, func(v *View) {
			v.Posts["a"] = append(refs("a", "a2", "a1"), refs("a", "b1")...)
		}), [6]int{0, 1, 0, 0, 0, 0}},
		{"a text stored twice", views(2, func(v *View) {
			v.Posts["a"] = append(refs("a", "a2", "a1"), PostRef{ID: "again", Author: "a", Text: "a1"})
		}), [6]int{0, 0, 2, 0, 0, 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := Check(history, tc.snap, users)
			got := [6]int{s.Lost.N, s.Phantom.N, s.Duplicated.N, s.FailedPresent, s.UnknownPresent, s.ReadErrors.N}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("lost, phantom, duplicated, failed present, unknown present, read errors (-want +got):\n%s\n%+v", diff, s)
			}
			if s.Attempted != 4 || s.Acked != 2 {
				t.Errorf("attempted %d, acknowledged %d; want 4, 2", s.Attempted, s.Acked)
			}
		})
	}
}

func TestSettledEdge(t *testing.T) {
	for _, tc := range []struct {
		name             string
		ops              []Op
		settled, present bool
	}{
		{"acknowledged follow", []Op{op(Follow, "a", "b", 1, 2, OK)}, true, true},
		{"acknowledged unfollow after a follow", []Op{op(Follow, "a", "b", 1, 2, OK), op(Unfollow, "a", "b", 3, 4, OK)}, true, false},
		{"follow after an unfollow without answer", []Op{op(Unfollow, "a", "b", 1, 4, Unknown), op(Follow, "a", "b", 5, 6, OK)}, false, false},
		{"follow after an unfollow answered 503", []Op{failedWith(op(Unfollow, "a", "b", 1, 2, OK), 503), op(Follow, "a", "b", 5, 6, OK)}, false, false},
		{"follow after an unfollow answered 404", []Op{failedWith(op(Unfollow, "a", "b", 1, 2, OK), 404), op(Follow, "a", "b", 5, 6, OK)}, true, true},
		{"follow after an unfollow never sent", []Op{failedWith(op(Unfollow, "a", "b", 1, 2, OK), 0), op(Follow, "a", "b", 5, 6, OK)}, true, true},
		{"follow overlapping an acknowledged unfollow", []Op{op(Unfollow, "a", "b", 1, 5.5, OK), op(Follow, "a", "b", 5, 6, OK)}, false, false},
		{"follow after a follow without answer", []Op{op(Follow, "a", "b", 1, 4, Unknown), op(Follow, "a", "b", 5, 6, OK)}, true, true},
		{"last operation without answer", []Op{op(Follow, "a", "b", 1, 2, OK), op(Unfollow, "a", "b", 3, 6, Unknown)}, false, false},
		{"last operation failed", []Op{op(Follow, "a", "b", 1, 2, OK), failedWith(op(Unfollow, "a", "b", 3, 4, OK), 404)}, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			present, _, settled := settledEdge(tc.ops)
			if settled != tc.settled || settled && present != tc.present {
				t.Errorf("settledEdge = present %v, settled %v; want present %v, settled %v", present, settled, tc.present, tc.settled)
			}
		})
	}
}

func TestCheckFollows(t *testing.T) {
	users := []string{"a", "b", "c"}
	agree := func(v *View) {
		v.Following["a"], v.Following["b"], v.Following["c"] = []string{"b"}, []string{"a", "c"}, nil
		v.Followers["a"], v.Followers["b"], v.Followers["c"] = []string{"b"}, []string{"a"}, []string{"b"}
	}
	for _, tc := range []struct {
		name                string
		snap                Snapshot
		divergent, oneSided int
	}{
		{"agree", views(3, agree), 0, 0},
		{"one member misses an edge on both sides", func() Snapshot {
			s := views(3, agree)
			s["m2"].Following["b"] = []string{"a"}
			s["m2"].Followers["c"] = nil
			return s
		}(), 2, 0},
		{"an edge on the follower's side only, everywhere", views(3, func(v *View) {
			agree(v)
			v.Following["c"] = []string{"a"}
		}), 0, 3},
		{"an edge on the followee's side only, on one member", func() Snapshot {
			s := views(2, agree)
			s["m1"].Followers["c"] = []string{"a", "b"}
			return s
		}(), 1, 1},
		{"a failed read is not a difference", func() Snapshot {
			s := views(2, agree)
			delete(s["m2"].Following, "b")
			s["m2"].Errors["following b"] = "timeout"
			return s
		}(), 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &Safety{}
			checkFollows(s, tc.snap, users)
			if s.Divergent.N != tc.divergent || s.OneSided.N != tc.oneSided {
				t.Errorf("divergent %d, one-sided %d; want %d, %d\n%v\n%v", s.Divergent.N, s.OneSided.N, tc.divergent, tc.oneSided, s.Divergent.Examples, s.OneSided.Examples)
			}
		})
	}
}

func TestCheckEdges(t *testing.T) {
	history := []Op{
		op(Follow, "a", "b", 1, 2, OK),
		op(Follow, "b", "a", 1, 2, OK), op(Unfollow, "b", "a", 3, 4, OK),
		op(Follow, "c", "a", 1, 2, OK), op(Unfollow, "c", "a", 3, 9, Unknown), // unsettled
	}
	snap := views(2, func(v *View) {
		v.Following["a"], v.Followers["b"] = []string{"b"}, []string{"a"}
		v.Following["b"], v.Followers["a"] = nil, []string{"c"}
		v.Following["c"] = []string{"a"}
	})
	s := &Safety{}
	checkEdges(s, history, snap)
	if s.EdgePairs != 2 || s.EdgesWrong.N != 0 {
		t.Fatalf("settled %d, wrong %d; want 2, 0: %v", s.EdgePairs, s.EdgesWrong.N, s.EdgesWrong.Examples)
	}
	// The unfollow of b→a lost on m2's following side; a→b lost on
	// both sides of m1.
	snap["m2"].Following["b"] = []string{"a"}
	snap["m1"].Following["a"], snap["m1"].Followers["b"] = nil, nil
	s = &Safety{}
	checkEdges(s, history, snap)
	want := []string{
		"a→b: last acknowledged follow at 03:04:07.000, contrary on m1 (following), m1 (followers)",
		"b→a: last acknowledged unfollow at 03:04:09.000, contrary on m2 (following)",
	}
	if diff := cmp.Diff(want, s.EdgesWrong.Examples); diff != "" {
		t.Errorf("contrary edges (-want +got):\n%s", diff)
	}
}

func TestCheckTimelines(t *testing.T) {
	history := []Op{
		op(Follow, "r", "a", 1, 2, OK),
		post("a", "before", 0.5, 1.5, OK),                                     // not after the follow: not required
		post("a", "during", 1.5, 2.5, OK),                                     // started before the follow was acknowledged: not required
		post("a", "after", 3, 4, OK),                                          // required
		post("a", "later", 5, 6, OK),                                          // required
		post("a", "no answer", 5, 8, Unknown),                                 // not acknowledged: not required
		op(Follow, "s", "a", 1, 2, OK), op(Unfollow, "s", "a", 2, 9, Unknown), // not settled
		op(Follow, "t", "a", 1, 2, OK), op(Unfollow, "t", "a", 2.5, 3, OK), // unfollowed
	}
	snap := views(3, func(v *View) {
		v.Timelines["r"] = []string{"id-later", "id-after"}
		v.Timelines["s"], v.Timelines["t"] = nil, nil
	})
	s := &Safety{}
	checkTimelines(s, history, snap)
	if s.TimelinePairs != 1 || s.TimelinePosts != 2 || s.TimelineMissing.N != 0 {
		t.Fatalf("pairs %d, posts %d, missing %d; want 1, 2, 0: %v", s.TimelinePairs, s.TimelinePosts, s.TimelineMissing.N, s.TimelineMissing.Examples)
	}
	snap["m2"].Timelines["r"] = []string{"id-later"}
	delete(snap["m3"].Timelines, "r")
	snap["m3"].Errors["timeline r"] = "502 no member answered"
	s = &Safety{}
	checkTimelines(s, history, snap)
	want := []string{
		"a's post id-after (acknowledged 03:04:09.000, follow acknowledged 03:04:07.000) missing from r's timeline through m2, m3 (read failed: 502 no member answered)",
		"a's post id-later (acknowledged 03:04:11.000, follow acknowledged 03:04:07.000) missing from r's timeline through m3 (read failed: 502 no member answered)",
	}
	if diff := cmp.Diff(want, s.TimelineMissing.Examples); diff != "" {
		t.Errorf("missing (-want +got):\n%s", diff)
	}
}

func TestAgreement(t *testing.T) {
	users := []string{"a", "b"}
	base := func(v *View) {
		v.Posts["a"], v.Posts["b"] = refs("a", "a1", "a2"), nil
		v.Following["a"], v.Following["b"] = []string{"b"}, nil
		v.Followers["a"], v.Followers["b"] = nil, []string{"a"}
	}
	for _, tc := range []struct {
		name string
		snap Snapshot
		why  string // "" when they agree
	}{
		{"agree", views(3, base), ""},
		{"posts differ", func() Snapshot {
			s := views(3, base)
			s["m3"].Posts["a"] = refs("a", "a1")
			return s
		}(), "a's posts differ between m1 (2) and m3 (1)"},
		{"a read failed", func() Snapshot {
			s := views(3, base)
			s["m2"].Errors["posts b"] = "timeout"
			return s
		}(), "posts b through m2 failed: timeout"},
		{"follow sets differ", func() Snapshot {
			s := views(2, base)
			s["m2"].Following["a"], s["m2"].Followers["b"] = nil, nil
			return s
		}(), "a's following differ: m2: [] vs m1: [b]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ok, why := Agreement(tc.snap, users)
			if ok != (tc.why == "") || !strings.HasPrefix(why, tc.why) {
				t.Errorf("Agreement = %v, %q; want %v, %q", ok, why, tc.why == "", tc.why)
			}
		})
	}
}
