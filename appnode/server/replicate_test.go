package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ringfront/ringfront/appnode/api"
	"github.com/ringfront/ringfront/appnode/feed"
	"github.com/ringfront/ringfront/appnode/replica"
	"github.com/ringfront/ringfront/appnode/store"
	"github.com/ringfront/ringfront/appnode/transport"
)

// byAddr finds a member.
func byAddr(ms []*member, addr string) *member {
	for _, m := range ms {
		if m.addr == addr {
			return m
		}
	}
	return nil
}

// TestReplicatedWrites: every write (user, post, both sides of a follow)
// reaches the whole preference list before it is acknowledged.
func TestReplicatedWrites(t *testing.T) {
	ms := newCluster(t, clusterOpts{n: 3})
	users := usersFor(ms, 1)
	tokens := map[string]string{}
	for _, u := range users {
		tokens[u] = createUser(t, notOwner(ms, u), u)
	}
	a, b := users[0], users[1]
	p := do(t, nil, "POST", ms[2].url("/v1/users/"+a+"/posts"), tokens[a], api.PostRequest{Text: "replicated"})
	if p.code != 201 {
		t.Fatalf("post = %d %s", p.code, p.body)
	}
	if f := do(t, nil, "PUT", ms[2].url("/v1/users/"+a+"/following/"+b), tokens[a], nil); f.code != 204 {
		t.Fatalf("follow = %d %s", f.code, f.body)
	}
	for _, m := range ms {
		inA, inB := m.srv.Ring().InPreference(a, m.addr), m.srv.Ring().InPreference(b, m.addr)
		posts, _, err := m.store.Posts(a, feed.ID{}, 10)
		if err != nil {
			t.Fatal(err)
		}
		if got := len(posts); got != map[bool]int{true: 1, false: 0}[inA] {
			t.Errorf("%s holds %d of %s's posts (in preference list: %v)", m.addr, got, a, inA)
		}
		following, _ := m.store.Edges(store.Following, a)
		followers, _ := m.store.Edges(store.Followers, b)
		if (len(following) == 1) != inA || (len(followers) == 1) != inB {
			t.Errorf("%s holds following %v, followers %v (in %s's list: %v, in %s's: %v)", m.addr, following, followers, a, inA, b, inB)
		}
	}
}

// TestHintedHandoff: with write_acks 1, a dead replica gets hints on
// the coordinator; when it is alive again one handoff round delivers
// them and empties the hint store. (With the default write_acks 2 the
// hints go to a hinted copy on another member: TestSloppyQuorum.)
func TestHintedHandoff(t *testing.T) {
	var dead atomic.Value
	dead.Store("")
	ms := newCluster(t, clusterOpts{n: 3, writeAcks: 1, alive: func(m string) bool { return m != dead.Load().(string) }})
	pref := ms[0].srv.Ring().Preference(nil, "joe")
	coord, replica := byAddr(ms, pref[0]), byAddr(ms, pref[1])
	dead.Store(replica.addr)
	token := createUser(t, coord, "joe")
	var want []feed.Post
	for i := range 5 {
		a := do(t, nil, "POST", coord.url("/v1/users/joe/posts"), token, api.PostRequest{Text: fmt.Sprint("while down ", i)})
		if a.code != 201 {
			t.Fatalf("post while the replica is dead = %d %s", a.code, a.body)
		}
		var p feed.Post
		a.decode(t, &p)
		want = append([]feed.Post{p}, want...)
	}
	if st := coord.srv.Status(); st.Hints != 6 || st.HintsByMember[replica.addr] != 6 {
		t.Errorf("hints on the coordinator = %d %v, want 6 for %s", st.Hints, st.HintsByMember, replica.addr)
	}
	if n := coord.srv.Replica().Handoff(context.Background()); n != 0 {
		t.Errorf("handoff to a dead member delivered %d", n)
	}
	dead.Store("")
	if n := coord.srv.Replica().Handoff(context.Background()); n != 6 {
		t.Errorf("handoff delivered %d, want 6", n)
	}
	got, _, err := replica.store.Posts("joe", feed.ID{}, 10)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("posts on the replica after handoff (-want +got):\n%s", diff)
	}
	if _, err := replica.store.User("joe"); err != nil {
		t.Errorf("user on the replica after handoff: %v", err)
	}
	if st := coord.srv.Status(); st.Hints != 0 {
		t.Errorf("hints left after handoff: %v", st.HintsByMember)
	}
}

// TestWriteAcks: a replica believed alive whose appnode is gone
// (connection refused). With write_acks 2 (the default) the write
// still gets its second copy, as a hinted copy on the third member, and
// is acknowledged; with the third member gone too it cannot, and is
// refused with 503 (stored here, with hints, but not acknowledged).
// With write_acks 1 one copy is enough and the hint stays here.
func TestWriteAcks(t *testing.T) {
	for _, tt := range []struct {
		name       string
		acks       int
		thirdGone  bool
		code       int
		hintsHere  int
		hintsThird int
	}{
		{"default, hinted copy", 0, false, http.StatusCreated, 0, 1},
		{"2, hinted copy", 2, false, http.StatusCreated, 0, 1},
		{"2, nobody for a hinted copy", 2, true, http.StatusServiceUnavailable, 1, 0},
		{"1", 1, true, http.StatusCreated, 1, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ms := newCluster(t, clusterOpts{n: 3, writeAcks: tt.acks})
			pref := ms[0].srv.Ring().Preference(nil, "joe")
			coord, replica := byAddr(ms, pref[0]), byAddr(ms, pref[1])
			var third *member
			for _, m := range ms {
				if m != coord && m != replica {
					third = m
				}
			}
			token := createUser(t, coord, "joe")
			replica.kill() // alive to the detector, but gone
			if tt.thirdGone {
				third.kill()
			}
			a := do(t, nil, "POST", coord.url("/v1/users/joe/posts"), token, api.PostRequest{Text: "x"})
			if a.code != tt.code {
				t.Fatalf("post = %d %s, want %d", a.code, a.body, tt.code)
			}
			if a.code == 503 && !strings.Contains(a.errorText(t), "1 of 2") {
				t.Errorf("503 error text: %s", a.body)
			}
			posts, _, _ := coord.store.Posts("joe", feed.ID{}, 10)
			// With write_acks 1 the user's own copy may still have been
			// on its way to the replica when it was killed: then it is a
			// hint too.
			hints := coord.srv.Status().HintsByMember[replica.addr]
			if len(posts) != 1 || hints < tt.hintsHere || tt.hintsHere == 0 && hints != 0 {
				t.Errorf("coordinator holds %d posts and %d hints for the replica, want the post and %d hints", len(posts), hints, tt.hintsHere)
			}
			if !tt.thirdGone {
				if st := third.srv.Status(); st.HintsByMember[replica.addr] != tt.hintsThird {
					t.Errorf("third member holds hints %v, want %d for %s", st.HintsByMember, tt.hintsThird, replica.addr)
				}
			}
		})
	}
}

// replicateBody is the body of POST /internal/v1/replicate.
type replicateBody struct {
	Records []replica.Record `json:"records"`
}

// TestReplicateRefusesBadRecords: the node-to-node write checks what it
// stores and needs the cluster secret.
func TestReplicateRefusesBadRecords(t *testing.T) {
	ms := newCluster(t, clusterOpts{n: 1})
	for _, tt := range []struct {
		name string
		body any
		code int
	}{
		{"empty record", replicateBody{Records: []replica.Record{{}}}, 400},
		{"two kinds", replicateBody{Records: []replica.Record{{User: &feed.User{Name: "a"}, Post: &feed.Post{Author: "a"}}}}, 400},
		{"bad name", replicateBody{Records: []replica.Record{{Post: &feed.Post{Author: "A!"}}}}, 400},
		{"bad side", replicateBody{Records: []replica.Record{{Edge: &feed.Edge{Follower: "a", Followee: "b"}, Side: 'x'}}}, 400},
		{"good", replicateBody{Records: []replica.Record{{User: &feed.User{Name: "a"}}, {User: &feed.User{Name: "a"}}}}, 204},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := ms[0].srv.Cluster().Call(context.Background(), "POST", ms[0].addr, "/internal/v1/replicate", tt.body, nil)
			code := 204
			if pe := (*transport.Error)(nil); err != nil {
				if !asPeerError(err, &pe) {
					t.Fatal(err)
				}
				code = pe.Status
			}
			if code != tt.code {
				t.Errorf("code = %d (%v), want %d", code, err, tt.code)
			}
		})
	}
	if a := do(t, nil, "POST", ms[0].url("/internal/v1/replicate"), "", replicateBody{}); a.code != 401 {
		t.Errorf("unsigned replicate = %d %s", a.code, a.body)
	}
}

func asPeerError(err error, pe **transport.Error) bool { return errors.As(err, pe) }

// TestReplicaDownWholeRunCatchesUp: a replica that is down for the whole
// run catches up completely once it returns: the writes coordinated
// while it was away arrive as hints, and what no hint carried (here a
// record stored on the coordinator behind replication's back, as after a
// lost hint) arrives by anti-entropy; a second round finds nothing left.
func TestReplicaDownWholeRunCatchesUp(t *testing.T) {
	var dead atomic.Value
	dead.Store("")
	ms := newCluster(t, clusterOpts{n: 3, writeAcks: 1, alive: func(m string) bool { return m != dead.Load().(string) }})
	pref := ms[0].srv.Ring().Preference(nil, "joe")
	coord, replica := byAddr(ms, pref[0]), byAddr(ms, pref[1])
	dead.Store(replica.addr)
	token := createUser(t, coord, "joe")
	for i := range 30 {
		if a := do(t, nil, "POST", coord.url("/v1/users/joe/posts"), token, api.PostRequest{Text: fmt.Sprint("while away ", i)}); a.code != 201 {
			t.Fatalf("post %d = %d %s", i, a.code, a.body)
		}
	}
	lost := feed.Post{ID: feed.NewIDSource(feed.NewClock(time.Now), "test").Next(), Author: "joe", Text: "no hint for this one", Created: time.Now().UTC().Truncate(time.Millisecond)}
	if err := coord.store.AddPost(lost); err != nil {
		t.Fatal(err)
	}
	want, _, err := coord.store.Posts("joe", feed.ID{}, 100)
	if err != nil || len(want) != 31 {
		t.Fatalf("coordinator holds %d posts (%v), want 31", len(want), err)
	}

	dead.Store("")
	start := time.Now()
	if n := coord.srv.Replica().Handoff(context.Background()); n != 31 { // the user and 30 posts
		t.Errorf("handoff delivered %d hints, want 31", n)
	}
	if n, err := coord.srv.Syncer().Compare(context.Background(), replica.addr); err != nil || n != 1 {
		t.Errorf("anti-entropy reconciled %d users (%v), want joe", n, err)
	}
	took := time.Since(start)
	got, _, err := replica.store.Posts("joe", feed.ID{}, 100)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("replica's posts after handoff and anti-entropy (-want +got):\n%s", diff)
	}
	t.Logf("replica down for the whole run: %d posts written (30 acknowledged with hints, 1 without), %d on the replica after handoff and one anti-entropy round, caught up in %v",
		len(want), len(got), took.Round(time.Millisecond))
	if n, err := coord.srv.Syncer().Compare(context.Background(), replica.addr); err != nil || n != 0 {
		t.Errorf("second anti-entropy round reconciled %d users (%v), want 0", n, err)
	}
}
