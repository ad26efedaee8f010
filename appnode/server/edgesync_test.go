package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ringfront/ringfront/appnode/api"
	"github.com/ringfront/ringfront/appnode/store"
)

// loseAnswers is a transport that delivers a request and then throws
// its answer away (as a timeout or a broken connection would) when
// lose says so.
func loseAnswers(lose func(*http.Request) bool) http.RoundTripper {
	next := NewTransport()
	return roundTripper(func(r *http.Request) (*http.Response, error) {
		resp, err := next.RoundTrip(r)
		if err != nil || !lose(r) {
			return resp, err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return nil, errors.New("answer lost (test fault)")
	})
}

// TestFollowAnswerLost: the followee's side stores a follow (then an
// unfollow) but its answer never reaches the follower's side, so the
// request fails and the follower's side never writes it. The edge notes
// the followee's side kept deliver it there: both sides agree on every
// member of both users.
func TestFollowAnswerLost(t *testing.T) {
	var lose atomic.Bool
	ms := newCluster(t, clusterOpts{n: 3, httpForward: true, transport: loseAnswers(func(r *http.Request) bool {
		return lose.Load() && strings.HasSuffix(r.URL.Path, "/followers")
	})})
	ta := createUser(t, ms[0], "ann")
	via := byAddr(ms, ms[0].srv.Ring().Owner("ann"))
	// bob: a followee none of whose members is ann's, so both of its
	// members lose their answer.
	bob := ""
	for i := 0; bob == ""; i++ {
		if u := fmt.Sprintf("bob%d", i); !ms[0].srv.Ring().InPreference(u, via.addr) {
			bob = u
		}
	}
	createUser(t, ms[0], bob)
	check := func(want bool) {
		t.Helper()
		for _, m := range ms {
			if m.srv.Ring().InPreference("ann", m.addr) {
				fing, _ := m.srv.active(store.Following, "ann")
				if got := slices.Contains(fing, bob); got != want {
					t.Errorf("ann follows bob on %s: %v, want %v", m.addr, got, want)
				}
			}
			if m.srv.Ring().InPreference(bob, m.addr) {
				fers, _ := m.srv.active(store.Followers, bob)
				if got := slices.Contains(fers, "ann"); got != want {
					t.Errorf("bob's followers on %s include ann: %v, want %v", m.addr, got, want)
				}
			}
		}
	}
	for _, tt := range []struct {
		method string
		want   bool
	}{{"PUT", true}, {"DELETE", false}} {
		lose.Store(true)
		a := do(t, nil, tt.method, via.url("/v1/users/ann/following/"+bob), ta, nil)
		lose.Store(false)
		if a.code != http.StatusServiceUnavailable {
			t.Fatalf("%s with the answers lost = %d %s, want 503", tt.method, a.code, a.body)
		}
		// The edge notes are due edgeNoteDelay after the change.
		later := time.Now().Add(edgeNoteDelay + time.Second)
		delivered := 0
		for _, m := range ms {
			delivered += m.srv.SyncEdges(context.Background(), later)
		}
		if delivered == 0 {
			t.Errorf("%s: no edge note delivered", tt.method)
		}
		check(tt.want)
		for _, m := range ms {
			if n := m.srv.edgeNotes(); n != 0 {
				t.Errorf("%s: %d edge notes left on %s", tt.method, n, m.addr)
			}
		}
	}
}

// TestFollowGoesOnToReplica: a follow whose followee's owner refuses
// connections goes on to the followee's other replica, like any
// forward.
func TestFollowGoesOnToReplica(t *testing.T) {
	ms := newCluster(t, clusterOpts{n: 3})
	pref := ms[0].srv.Ring().Preference(nil, "bob")
	var follower string
	for i := 0; follower == ""; i++ {
		u := string(rune('a'+i%26)) + "f" + string(rune('a'+i/26))
		if !ms[0].srv.Ring().InPreference(u, pref[0]) {
			follower = u
		}
	}
	tf := createUser(t, ms[0], follower)
	createUser(t, ms[0], "bob")
	byAddr(ms, pref[0]).kill()
	via := byAddr(ms, ms[0].srv.Ring().Owner(follower))
	if a := do(t, nil, "PUT", via.url("/v1/users/"+follower+"/following/bob"), tf, nil); a.code != http.StatusNoContent {
		t.Fatalf("follow with bob's owner refusing connections = %d %s, want 204", a.code, a.body)
	}
	var ans api.FollowersAnswer
	do(t, nil, "GET", via.url("/v1/users/bob/followers"), "", nil).decode(t, &ans)
	if !slices.Contains(ans.Followers, follower) {
		t.Errorf("bob's followers = %v, want %s", ans.Followers, follower)
	}
}

// TestFanoutCopies: a post's replica keeps a copy of each of its outbox
// entries for other members; once the coordinator has delivered them it
// says so and the copies are deleted, so the replica never delivers
// them itself. A copy whose coordinator stays silent is delivered by the
// replica after copyMaxAge.
func TestFanoutCopies(t *testing.T) {
	ms := newCluster(t, clusterOpts{n: 3})
	rg := ms[0].srv.Ring()
	pref := rg.Preference(nil, "author")
	coord, replica := byAddr(ms, pref[0]), byAddr(ms, pref[1])
	// A follower whose inbox is on a member other than the coordinator.
	follower := ""
	for i := 0; follower == ""; i++ {
		if u := fmt.Sprintf("f%d", i); !rg.InPreference(u, coord.addr) {
			follower = u
		}
	}
	ta := createUser(t, coord, "author")
	tf := createUser(t, coord, follower)
	if a := do(t, nil, "PUT", coord.url("/v1/users/"+follower+"/following/author"), tf, nil); a.code != 204 {
		t.Fatalf("follow = %d %s", a.code, a.body)
	}
	if a := do(t, nil, "POST", coord.url("/v1/users/author/posts"), ta, api.PostRequest{Text: "hello"}); a.code != 201 {
		t.Fatalf("post = %d %s", a.code, a.body)
	}
	if n, _ := replica.store.CountCopies(0); n == 0 {
		t.Fatal("the replica keeps no copy of the post's outbox entries")
	}
	coord.srv.SendDone(context.Background())
	if n, _ := replica.store.CountCopies(0); n != 0 {
		t.Errorf("%d copies left on the replica after the coordinator said it delivered them", n)
	}
	// Without the coordinator's word, a copy is delivered after
	// copyMaxAge (and then deleted).
	if a := do(t, nil, "POST", coord.url("/v1/users/author/posts"), ta, api.PostRequest{Text: "again"}); a.code != 201 {
		t.Fatalf("post = %d %s", a.code, a.body)
	}
	if n := replica.srv.DeliverCopies(context.Background(), time.Now()); n != 0 {
		t.Errorf("copies of a live coordinator delivered before copyMaxAge: %d", n)
	}
	if n := replica.srv.DeliverCopies(context.Background(), time.Now().Add(copyMaxAge+time.Minute)); n == 0 {
		t.Error("no copy delivered after copyMaxAge")
	}
	if n, _ := replica.store.CountCopies(0); n != 0 {
		t.Errorf("%d copies left after they were delivered", n)
	}
}
