package history

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// PostRef is a post as a read returned it.
type PostRef struct {
	ID     string `json:"id"`
	Author string `json:"author"`
	Text   string `json:"text"`
}

// View is what the reads through one member returned. A read that
// failed has no entry in its map and says why in Errors.
type View struct {
	Posts     map[string][]PostRef // by author
	Following map[string][]string  // by follower
	Followers map[string][]string  // by followee
	Timelines map[string][]string  // post ids, by reader
	// Errors says why a read failed, keyed by what was read:
	// "posts u03", "following u03", "followers u03", "timeline u03".
	Errors map[string]string
}

// NewView returns an empty view.
func NewView() *View {
	return &View{Posts: map[string][]PostRef{}, Following: map[string][]string{}, Followers: map[string][]string{},
		Timelines: map[string][]string{}, Errors: map[string]string{}}
}

// Snapshot is every member's view, keyed by member address.
type Snapshot map[string]*View

// members returns the snapshot's members in order.
func (s Snapshot) members() []string { return slices.Sorted(maps.Keys(s)) }

// maxExamples bounds the examples a finding keeps for the report.
const maxExamples = 8

// Finding is a count of violations of one kind and a few examples.
type Finding struct {
	N        int
	Examples []string
}

func (f *Finding) add(format string, args ...any) {
	f.N++
	if len(f.Examples) < maxExamples {
		f.Examples = append(f.Examples, fmt.Sprintf(format, args...))
	}
}

// Safety is what the checker found in a history and the final snapshot.
type Safety struct {
	Attempted int // posts attempted, whatever their outcome
	Acked     int // posts acknowledged
	// Lost: acknowledged posts missing from the author's posts read
	// through at least one member (absent, or the read failed).
	Lost Finding
	// Phantom: posts present whose text no client ever sent as that
	// author.
	Phantom Finding
	// Duplicated: texts sent once that are stored as two posts or more.
	Duplicated Finding
	// FailedPresent counts posts answered with an error that were
	// stored anyway (allowed: an error after the write is not a
	// promise it was not made; shown for information).
	FailedPresent int
	// UnknownPresent counts posts without an answer that were stored.
	UnknownPresent int

	Users int
	// Divergent: users whose following or followers list differs
	// between members.
	Divergent Finding
	// OneSided: edges one side has and the other lacks on a member (A's
	// following has B but B's followers lack A, or the reverse).
	OneSided Finding
	// EdgePairs counts the edges whose final state the history settles
	// (see settledEdge); EdgesWrong those a member shows otherwise.
	EdgePairs  int
	EdgesWrong Finding
	// TimelinePairs counts settled follows (follower, followee) and
	// TimelinePosts the acknowledged posts they require in timelines;
	// TimelineMissing the (post, reader) pairs missing through some
	// member.
	TimelinePairs   int
	TimelinePosts   int
	TimelineMissing Finding
	// ReadErrors: final reads that failed, so a check above could not
	// see what it needed.
	ReadErrors Finding
}

// Violations lists the safety targets missed, one line each.
func (s *Safety) Violations() []string {
	var out []string
	for _, f := range []struct {
		name string
		f    Finding
	}{
		{"lost", s.Lost}, {"phantom", s.Phantom}, {"duplicated", s.Duplicated},
		{"follow sets divergent", s.Divergent}, {"edges one-sided", s.OneSided},
		{"edges contrary to the history", s.EdgesWrong}, {"timeline posts missing", s.TimelineMissing},
		{"final reads failed", s.ReadErrors},
	} {
		if f.f.N > 0 {
			out = append(out, fmt.Sprintf("%s: %d (%s)", f.name, f.f.N, strings.Join(f.f.Examples, "; ")))
		}
	}
	return out
}

// Check runs every safety check of a history against the final
// snapshot; users are every user the run created.
func Check(ops []Op, snap Snapshot, users []string) *Safety {
	s := &Safety{Users: len(users)}
	checkPosts(s, ops, snap, users)
	checkFollows(s, snap, users)
	checkEdges(s, ops, snap)
	checkTimelines(s, ops, snap)
	for _, m := range snap.members() {
		v := snap[m]
		for _, what := range slices.Sorted(maps.Keys(v.Errors)) {
			s.ReadErrors.add("%s through %s: %s", what, m, v.Errors[what])
		}
	}
	return s
}

// checkPosts counts lost, phantom and duplicated posts.
func checkPosts(s *Safety, ops []Op, snap Snapshot, users []string) {
	sent := map[pairKey]Op{} // (author, text) → the post operation
	var acked []Op
	for _, o := range ops {
		if o.Kind != Post {
			continue
		}
		s.Attempted++
		sent[pairKey{o.User, o.Text}] = o
		if o.Outcome == OK {
			acked = append(acked, o)
		}
	}
	s.Acked = len(acked)
	members := snap.members()
	present := map[string]map[string]bool{} // member → post ids
	stored := map[pairKey]bool{}            // (author, text) stored somewhere
	phantoms := map[string]bool{}           // post ids
	for _, m := range members {
		present[m] = map[string]bool{}
		for _, author := range users {
			byText := map[string]map[string]bool{}
			for _, p := range snap[m].Posts[author] {
				present[m][p.ID] = true
				_, ok := sent[pairKey{author, p.Text}]
				if !ok || p.Author != author {
					if !phantoms[p.ID] {
						phantoms[p.ID] = true
						s.Phantom.add("%s: post %s by %q %q was never sent", m, p.ID, p.Author, p.Text)
					}
					continue
				}
				stored[pairKey{author, p.Text}] = true
				if byText[p.Text] == nil {
					byText[p.Text] = map[string]bool{}
				}
				byText[p.Text][p.ID] = true
			}
			for _, text := range slices.Sorted(maps.Keys(byText)) {
				if ids := byText[text]; len(ids) > 1 {
					s.Duplicated.add("%s: %s's %q stored %d times (%s)", m, author, text, len(ids), strings.Join(slices.Sorted(maps.Keys(ids)), ", "))
				}
			}
		}
	}
	for k := range stored {
		switch sent[k].Outcome {
		case Failed:
			s.FailedPresent++
		case Unknown:
			s.UnknownPresent++
		}
	}
	for _, o := range acked {
		var where []string
		for _, m := range members {
			if why, ok := snap[m].Errors["posts "+o.User]; ok {
				where = append(where, m+" (read failed: "+why+")")
			} else if !present[m][o.PostID] {
				where = append(where, m)
			}
		}
		if len(where) > 0 {
			s.Lost.add("post %s by %s acknowledged at %s missing through %s", o.PostID, o.User, o.End.Format("15:04:05.000"), strings.Join(where, ", "))
		}
	}
}

// checkFollows compares each user's following and followers between
// members, and each edge's two sides on every member.
func checkFollows(s *Safety, snap Snapshot, users []string) {
	members := snap.members()
	for _, u := range users {
		for _, side := range []struct {
			name string
			get  func(*View) map[string][]string
		}{{"following", func(v *View) map[string][]string { return v.Following }}, {"followers", func(v *View) map[string][]string { return v.Followers }}} {
			seen := map[string][]string{} // list → members
			for _, m := range members {
				list, ok := side.get(snap[m])[u]
				if !ok {
					continue // the read failed: a read error
				}
				k := strings.Join(slices.Sorted(slices.Values(list)), ",")
				seen[k] = append(seen[k], m)
			}
			if len(seen) > 1 {
				var parts []string
				for _, k := range slices.Sorted(maps.Keys(seen)) {
					parts = append(parts, fmt.Sprintf("%s: [%s]", strings.Join(seen[k], " "), k))
				}
				s.Divergent.add("%s's %s differ: %s", u, side.name, strings.Join(parts, " vs "))
			}
		}
	}
	for _, m := range members {
		v := snap[m]
		for _, a := range slices.Sorted(maps.Keys(v.Following)) {
			for _, b := range v.Following[a] {
				if fs, ok := v.Followers[b]; ok && !slices.Contains(fs, a) {
					s.OneSided.add("%s: %s's following has %s, %s's followers lack %s", m, a, b, b, a)
				}
			}
		}
		for _, b := range slices.Sorted(maps.Keys(v.Followers)) {
			for _, a := range v.Followers[b] {
				if fw, ok := v.Following[a]; ok && !slices.Contains(fw, b) {
					s.OneSided.add("%s: %s's followers have %s, %s's following lacks %s", m, b, a, a, b)
				}
			}
		}
	}
}

// settledEdge reports whether the history settles an edge's final
// state, and which: its last operation (by start) was acknowledged,
// and no operation of the opposite kind can take effect after it —
// none without an answer or with a server error (they may still
// apply), none acknowledged that overlaps it (the two may be ordered
// either way). ops is the edge's operations sorted by start.
func settledEdge(ops []Op) (present bool, last Op, settled bool) {
	last = ops[len(ops)-1]
	if last.Outcome != OK {
		return false, last, false
	}
	for _, o := range ops[:len(ops)-1] {
		if o.Kind == last.Kind {
			continue
		}
		if o.mayHaveApplied() || o.Outcome == OK && o.End.After(last.Start) {
			return false, last, false
		}
	}
	return last.Kind == Follow, last, true
}

// checkEdges compares every settled edge with what each member shows on
// both sides.
func checkEdges(s *Safety, ops []Op, snap Snapshot) {
	members := snap.members()
	groups := edgeOps(ops)
	for _, k := range slices.SortedFunc(maps.Keys(groups), func(a, b pairKey) int { return strings.Compare(a.String(), b.String()) }) {
		want, last, ok := settledEdge(groups[k])
		if !ok {
			continue
		}
		s.EdgePairs++
		var wrong []string
		for _, m := range members {
			v := snap[m]
			if fw, ok := v.Following[k.Follower]; ok && slices.Contains(fw, k.Followee) != want {
				wrong = append(wrong, m+" (following)")
			}
			if fs, ok := v.Followers[k.Followee]; ok && slices.Contains(fs, k.Follower) != want {
				wrong = append(wrong, m+" (followers)")
			}
		}
		if len(wrong) > 0 {
			s.EdgesWrong.add("%s: last acknowledged %s at %s, contrary on %s", k, last.Kind, last.End.Format("15:04:05.000"), strings.Join(wrong, ", "))
		}
	}
}

// checkTimelines checks that every settled follow's follower sees, through
// every member, each acknowledged post of the followee that started after
// the follow was acknowledged.
func checkTimelines(s *Safety, ops []Op, snap Snapshot) {
	members := snap.members()
	posts := map[string][]Op{} // acknowledged posts by author
	for _, o := range ops {
		if o.Kind == Post && o.Outcome == OK {
			posts[o.User] = append(posts[o.User], o)
		}
	}
	groups := edgeOps(ops)
	for _, k := range slices.SortedFunc(maps.Keys(groups), func(a, b pairKey) int { return strings.Compare(a.String(), b.String()) }) {
		present, follow, ok := settledEdge(groups[k])
		if !ok || !present {
			continue
		}
		s.TimelinePairs++
		for _, p := range posts[k.Followee] {
			if !p.Start.After(follow.End) {
				continue
			}
			s.TimelinePosts++
			var where []string
			for _, m := range members {
				v := snap[m]
				ids, ok := v.Timelines[k.Follower]
				if !ok {
					where = append(where, m+" (read failed: "+v.Errors["timeline "+k.Follower]+")")
				} else if !slices.Contains(ids, p.PostID) {
					where = append(where, m)
				}
			}
			if len(where) > 0 {
				s.TimelineMissing.add("%s's post %s (acknowledged %s, follow acknowledged %s) missing from %s's timeline through %s",
					k.Followee, p.PostID, p.End.Format("15:04:05.000"), follow.End.Format("15:04:05.000"), k.Follower, strings.Join(where, ", "))
			}
		}
	}
}

// Agreement says whether every member answered every read of a snapshot
// and all gave the same answers (the same posts of each author, the
// same following and followers of each user, both sides of each edge);
// when not, why, in one line.
func Agreement(snap Snapshot, users []string) (bool, string) {
	members := snap.members()
	for _, m := range members {
		if v := snap[m]; len(v.Errors) > 0 {
			what := slices.Sorted(maps.Keys(v.Errors))[0]
			return false, fmt.Sprintf("%s through %s failed: %s", what, m, v.Errors[what])
		}
	}
	s := &Safety{}
	checkFollows(s, snap, users)
	if s.Divergent.N > 0 {
		return false, s.Divergent.Examples[0]
	}
	if s.OneSided.N > 0 {
		return false, s.OneSided.Examples[0]
	}
	for _, u := range users {
		var first string
		for i, m := range members {
			ids := make([]string, 0, len(snap[m].Posts[u]))
			for _, p := range snap[m].Posts[u] {
				ids = append(ids, p.ID)
			}
			slices.Sort(ids)
			k := strings.Join(ids, ",")
			if i == 0 {
				first = k
			} else if k != first {
				return false, fmt.Sprintf("%s's posts differ between %s (%d) and %s (%d)", u, members[0], len(snap[members[0]].Posts[u]), m, len(ids))
			}
		}
	}
	return true, ""
}
