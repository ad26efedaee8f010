package server

import (
	"fmt"
	"net/http"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ringfront/ringfront/appnode/api"
	"github.com/ringfront/ringfront/appnode/transport"
)

// TestForwardBudgetCutOffMember: a follow forwarded to the follower's
// owner, whose first call (to the followee's side) goes to a member that
// is cut off but not yet known dead, is still answered by that owner in
// the forwarder's time. The owner gives the cut-off member half of the
// forward's budget, then asks the followee's next replica; waiting out
// its whole write timeout instead, it ran into the forwarder's own
// timeout, and the forwarder asked another member, which waited on the
// same cut-off member again.
func TestForwardBudgetCutOffMember(t *testing.T) {
	var cut atomic.Value // the cut-off member's address
	cut.Store("")
	ms := newCluster(t, clusterOpts{n: 4, replicas: 3, httpForward: true,
		memberTransport: func(i int) http.RoundTripper {
			next := transport.NewHTTP()
			return roundTripper(func(r *http.Request) (*http.Response, error) {
				if r.URL.Host == cut.Load().(string) {
					<-r.Context().Done() // accepted, never answered
					return nil, r.Context().Err()
				}
				return next.RoundTrip(r)
			})
		},
	})
	rg := ms[0].srv.Ring()
	pref := func(name string) []string { return rg.Preference(nil, name) }
	// The followee's first replica is the one cut off; the follower's
	// replicas are the other three, so its writes need nobody cut off.
	var follower, followee, x string
	for i := 0; followee == "" && i < 10000; i++ {
		u := fmt.Sprintf("star%d", i)
		x = pref(u)[0]
		for j := 0; j < 10000; j++ {
			f := fmt.Sprintf("fan%d", j)
			if !slices.Contains(pref(f), x) {
				follower, followee = f, u
				break
			}
		}
	}
	if followee == "" {
		t.Fatal("no follower and followee with the replicas the test needs")
	}
	byAddr := map[string]*member{}
	for _, m := range ms {
		byAddr[m.addr] = m
	}
	owner, second := byAddr[pref(follower)[0]], byAddr[pref(follower)[1]]
	token := createUser(t, owner, follower)
	createUser(t, owner, followee)
	for _, u := range []string{follower, followee} {
		for _, a := range pref(u) {
			m := byAddr[a]
			if err := waitUntil(5*time.Second, func() bool { _, err := m.store.User(u); return err == nil }); err != nil {
				t.Fatalf("%s not on its replica %s: %v", u, a, err)
			}
		}
	}

	cut.Store(x)
	start := time.Now()
	// Sent to the follower's second replica, which forwards it to the
	// owner with a budget of WriteTimeouts member timeouts.
	a := do(t, nil, "PUT", second.url("/v1/users/"+follower+"/following/"+followee), token, nil)
	took := time.Since(start)
	if a.code != http.StatusNoContent {
		t.Fatalf("follow with %s cut off = %d %s", x, a.code, a.body)
	}
	t.Logf("answered by %s in %v", a.header.Get(api.HeaderOwner), took)
	budget := second.srv.forwardTimeout(owner.addr, &http.Request{Method: http.MethodPut})
	if got := a.header.Get(api.HeaderOwner); got != owner.addr || took >= budget {
		t.Errorf("the follow was answered by %s after %v; want the owner %s within the forward's %v", got, took, owner.addr, budget)
	}
}
