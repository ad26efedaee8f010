package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ringfront/ringfront/appnode/api"
	"github.com/ringfront/ringfront/appnode/feed"
)

// Daemon-level tests of issue 13: real appnode processes on loopback,
// each gossiping on a port of its own choosing, killed with SIGKILL,
// paused with SIGSTOP, or restarted on a wiped disk.

// apiCall makes one request and decodes a 2xx JSON answer into out.
func apiCall(c *http.Client, method, url, token string, body, out any) (int, error) {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return 0, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		return resp.StatusCode, fmt.Errorf("%s %s: %s %s", method, url, resp.Status, bytes.TrimSpace(b))
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return resp.StatusCode, fmt.Errorf("decoding %s: %w", b, err)
		}
	}
	return resp.StatusCode, nil
}

func (c *daemonCluster) createUser(hc *http.Client, via *daemonProc, name string) string {
	c.t.Helper()
	var ans api.CreateUserAnswer
	if _, err := apiCall(hc, "POST", "http://"+via.addr+"/v1/users", "", api.CreateUserRequest{Name: name}, &ans); err != nil {
		c.t.Fatalf("creating %s: %v", name, err)
	}
	return ans.Token
}

func post(hc *http.Client, via *daemonProc, user, token, text string) (feed.Post, error) {
	var p feed.Post
	_, err := apiCall(hc, "POST", "http://"+via.addr+"/v1/users/"+user+"/posts", token, api.PostRequest{Text: text}, &p)
	return p, err
}

// names reads a user's following or followers list via a member.
func names(hc *http.Client, via *daemonProc, user, side string) ([]string, error) {
	var ans struct {
		Following []string `json:"following"`
		Followers []string `json:"followers"`
	}
	if _, err := apiCall(hc, "GET", "http://"+via.addr+"/v1/users/"+user+"/"+side, "", nil, &ans); err != nil {
		return nil, err
	}
	out := append(ans.Following, ans.Followers...)
	slices.Sort(out)
	return out, nil
}

// TestOwnerKilledReadableEverywhere is the first finding, on
// members that each gossip on a port of their own choosing: they find
// each other (startDaemons waits for that); after kill -9 of a user's
// owner every acknowledged post is readable through every other member
// at once, new posts for that user are taken, and a live stream
// reconnecting through another member with Last-Event-ID gets the
// posts it missed.
func TestOwnerKilledReadableEverywhere(t *testing.T) {
	cl := startDaemons(t, 3, nil)
	hc := &http.Client{Timeout: 5 * time.Second}
	rg := cl.ring(2)
	owner := cl.byAddr(rg.Owner("joe"))
	var others []*daemonProc
	for _, d := range cl.ds {
		if d != owner {
			others = append(others, d)
		}
	}
	token := cl.createUser(hc, owner, "joe")
	var acked []feed.ID
	for i := range 30 {
		p, err := post(hc, cl.ds[i%3], "joe", token, fmt.Sprint("before ", i))
		if err != nil {
			t.Fatalf("post %d: %v", i, err)
		}
		acked = append(acked, p.ID)
	}
	killed := time.Now()
	owner.kill()
	for _, d := range others {
		got, err := allPosts(hc, d.addr, "joe")
		if err != nil {
			t.Fatalf("right after the kill, via %s: %v", d.addr, err)
		}
		missing := 0
		for _, id := range acked {
			if !got[id] {
				missing++
			}
		}
		if missing > 0 {
			t.Errorf("right after the kill, via %s: %d of %d acknowledged posts missing", d.addr, missing, len(acked))
		}
	}
	readAfter := time.Since(killed)
	for i := range 10 {
		p, err := post(hc, others[i%2], "joe", token, fmt.Sprint("after ", i))
		if err != nil {
			t.Errorf("post %d with the owner dead: %v", i, err)
			continue
		}
		acked = append(acked, p.ID)
	}
	// A stream of joe's timeline reconnecting through another member
	// after post 29 replays the 10 posts made since.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+others[1].addr+"/v1/users/joe/timeline/stream", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Last-Event-ID", acked[29].String())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("stream reconnect via %s = %s %s, want 200", others[1].addr, resp.Status, b)
	}
	var replayed []string
	sc := bufio.NewScanner(resp.Body)
	for len(replayed) < 10 && sc.Scan() {
		if id, ok := strings.CutPrefix(sc.Text(), "id: "); ok {
			replayed = append(replayed, id)
		}
	}
	var want []string
	for _, id := range acked[30:] {
		want = append(want, id.String())
	}
	slices.Sort(replayed)
	if !slices.Equal(replayed, want) {
		t.Errorf("stream replayed %v, want the 10 posts after the kill %v", replayed, want)
	}
	t.Logf("owner killed: 30 acknowledged posts read through both survivors %v after the kill; 10 more posts taken; the stream replayed %d", readAfter.Round(time.Millisecond), len(replayed))
}

// TestAckSurvivesLostCoordinator: with a user's replica down, a post is
// acknowledged with its second copy as a hinted copy on the third
// member; then the coordinator is lost for good (kill -9, disk wiped,
// never back). The replica returns and catches up from the hinted copy:
// every acknowledged post is there.
func TestAckSurvivesLostCoordinator(t *testing.T) {
	cl := startDaemons(t, 3, nil)
	hc := &http.Client{Timeout: 5 * time.Second}
	pref := cl.ring(2).Preference(nil, "joe")
	coord, replica := cl.byAddr(pref[0]), cl.byAddr(pref[1])
	var third *daemonProc
	for _, d := range cl.ds {
		if d != coord && d != replica {
			third = d
		}
	}
	token := cl.createUser(hc, coord, "joe")
	replica.kill()
	var acked []feed.ID
	for i := range 20 {
		p, err := post(hc, coord, "joe", token, fmt.Sprint("replica down ", i))
		if err != nil {
			t.Fatalf("post %d with the replica down: %v", i, err)
		}
		acked = append(acked, p.ID)
	}
	coord.kill()
	if err := os.RemoveAll(coord.dataDir); err != nil {
		t.Fatal(err)
	}
	restarted := time.Now()
	replica.start(t)
	// The first answer the replica gives (once it serves) already has
	// every post: it takes the hinted copies in before it answers.
	var got map[feed.ID]bool
	waitUntil(t, 15*time.Second, "a read of joe's posts via the third member", func() bool {
		var err error
		got, err = allPosts(hc, third.addr, "joe")
		return err == nil
	})
	missing := 0
	for _, id := range acked {
		if !got[id] {
			missing++
		}
	}
	if missing > 0 {
		t.Errorf("the first read after the replica restarted misses %d of %d acknowledged posts", missing, len(acked))
	}
	t.Logf("coordinator lost for good: %d acknowledged posts all readable %v after the replica restarted (from the third member's hinted copies)",
		len(acked), time.Since(restarted).Round(time.Millisecond))
}

// TestWipedMemberNoFalseNotFound: a member restarted on an empty disk,
// under a steady read load through every member, never makes anyone
// answer 404 for a user that exists: until it has caught up, its users
// are answered by the other replicas (or merged with them).
func TestWipedMemberNoFalseNotFound(t *testing.T) {
	cl := startDaemons(t, 3, nil)
	hc := &http.Client{Timeout: 5 * time.Second}
	var users []string
	for i := range 24 {
		u := fmt.Sprintf("w%d", i)
		token := cl.createUser(hc, cl.ds[i%3], u)
		for j := range 3 {
			if _, err := post(hc, cl.ds[j], u, token, fmt.Sprint(u, " ", j)); err != nil {
				t.Fatal(err)
			}
		}
		users = append(users, u)
	}
	victim := cl.ds[0]
	var (
		stop                    atomic.Bool
		reads, notFound, errors atomic.Int64
		mu                      sync.Mutex // guards firstNotFound
		firstNotFound           string
		wg                      sync.WaitGroup
	)
	for g := range 3 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(g), 13))
			for i := 0; i < 100_000 && !stop.Load(); i++ {
				u := users[r.IntN(len(users))]
				via := cl.ds[r.IntN(len(cl.ds))]
				path := []string{"/v1/users/" + u, "/v1/users/" + u + "/posts", "/v1/users/" + u + "/following"}[r.IntN(3)]
				code, err := apiCall(hc, "GET", "http://"+via.addr+path, "", nil, nil)
				reads.Add(1)
				switch {
				case code == http.StatusNotFound:
					notFound.Add(1)
					mu.Lock()
					if firstNotFound == "" {
						firstNotFound = fmt.Sprintf("GET %s via %s: %v", path, via.addr, err)
					}
					mu.Unlock()
				case err != nil:
					errors.Add(1) // the victim itself, while it is down
				}
				time.Sleep(2 * time.Millisecond)
			}
		})
	}
	time.Sleep(300 * time.Millisecond)
	victim.kill()
	if err := os.RemoveAll(victim.dataDir); err != nil {
		t.Fatal(err)
	}
	victim.start(t)
	caughtUp := cl.waitSettled(20 * time.Second)
	time.Sleep(300 * time.Millisecond)
	stop.Store(true)
	wg.Wait()
	if n := notFound.Load(); n > 0 {
		t.Errorf("%d of %d reads answered 404 for a user that exists; first: %s", n, reads.Load(), firstNotFound)
	}
	// Caught up: the wiped member's own store holds its users again.
	for _, u := range users {
		if !cl.ring(2).InPreference(u, victim.addr) {
			continue
		}
		got, err := allPosts(hc, victim.addr, u)
		if err != nil || len(got) != 3 {
			t.Errorf("%s via the wiped member after catching up: %d posts, %v", u, len(got), err)
		}
	}
	t.Logf("wiped member: %d reads under the restart, %d 404s, %d errors (requests to the member while it was down); caught up %v after the restart",
		reads.Load(), notFound.Load(), errors.Load(), caughtUp.Round(time.Millisecond))
}

// TestRestartedOwnerFansOutToNewFollower is the second timeline
// finding: an author's owner is killed, someone follows the author while
// it is down, the owner restarts and the author posts at once. The
// restarted owner leaves the author's posts to a caught-up replica until
// it has caught up (the follow among what it learns), so the new
// follower's timeline, read through every member, has every post.
func TestRestartedOwnerFansOutToNewFollower(t *testing.T) {
	cl := startDaemons(t, 3, nil)
	hc := &http.Client{Timeout: 5 * time.Second}
	rg := cl.ring(2)
	owner := cl.byAddr(rg.Owner("author"))
	follower := ""
	for i := 0; follower == ""; i++ {
		if u := fmt.Sprintf("fan%d", i); rg.Owner(u) != owner.addr {
			follower = u
		}
	}
	var other *daemonProc
	for _, d := range cl.ds {
		if d != owner {
			other = d
		}
	}
	ta := cl.createUser(hc, other, "author")
	tf := cl.createUser(hc, other, follower)
	owner.kill()
	if _, err := apiCall(hc, "PUT", "http://"+other.addr+"/v1/users/"+follower+"/following/author", tf, nil, nil); err != nil {
		t.Fatalf("follow while the author's owner is down: %v", err)
	}
	owner.start(t)
	// Post at once, through the restarted owner itself and the others.
	var acked []feed.ID
	deadline := time.Now().Add(3 * time.Second)
	for i := 0; len(acked) < 5 && time.Now().Before(deadline); i++ {
		p, err := post(hc, cl.ds[i%3], "author", ta, fmt.Sprint("just after the restart ", i))
		if err != nil {
			time.Sleep(20 * time.Millisecond) // the owner's port may not be open yet
			continue
		}
		acked = append(acked, p.ID)
	}
	if len(acked) < 5 {
		t.Fatalf("only %d posts taken around the restart", len(acked))
	}
	cl.waitSettled(15 * time.Second)
	for _, d := range cl.ds {
		var missing []feed.ID
		waitUntil(t, 10*time.Second, "fan-out settled on "+d.addr, func() bool {
			var page api.PostsAnswer
			if _, err := apiCall(hc, "GET", "http://"+d.addr+"/v1/users/"+follower+"/timeline?limit=50", tf, nil, &page); err != nil {
				return false
			}
			have := map[feed.ID]bool{}
			for _, p := range page.Posts {
				have[p.ID] = true
			}
			missing = missing[:0]
			for _, id := range acked {
				if !have[id] {
					missing = append(missing, id)
				}
			}
			return len(missing) == 0
		})
	}
}

// TestFollowConvergesWithPausedMember is the first timeline
// finding: one of the followee's members is paused (SIGSTOP) and a
// client unfollows with a 2 s timeout. Whatever answer is lost, both
// sides of the edge agree on every member soon after the member
// resumes, and the follower's timeline is right.
func TestFollowConvergesWithPausedMember(t *testing.T) {
	cl := startDaemons(t, 3, nil)
	hc := &http.Client{Timeout: 5 * time.Second}
	rg := cl.ring(2)
	// user0 follows user1; user1's owner will be paused.
	t0 := cl.createUser(hc, cl.ds[0], "user0")
	t1 := cl.createUser(hc, cl.ds[0], "user1")
	if _, err := apiCall(hc, "PUT", "http://"+cl.ds[0].addr+"/v1/users/user0/following/user1", t0, nil, nil); err != nil {
		t.Fatal(err)
	}
	paused := cl.byAddr(rg.Owner("user1"))
	var via *daemonProc
	for _, d := range cl.ds {
		if d != paused {
			via = d
		}
	}
	paused.pause()
	short := &http.Client{Timeout: 2 * time.Second}
	start := time.Now()
	_, unfollowErr := apiCall(short, "DELETE", "http://"+via.addr+"/v1/users/user0/following/user1", t0, nil, nil)
	took := time.Since(start)
	time.Sleep(500 * time.Millisecond)
	paused.resume()
	agree := func() bool {
		for _, d := range cl.ds {
			fing, err1 := names(hc, d, "user0", "following")
			fers, err2 := names(hc, d, "user1", "followers")
			if err1 != nil || err2 != nil || slices.Contains(fing, "user1") != slices.Contains(fers, "user0") {
				return false
			}
			if unfollowErr == nil && slices.Contains(fing, "user1") {
				return false // the unfollow was acknowledged: it must hold
			}
		}
		return true
	}
	converged := waitUntil(t, 10*time.Second, "both sides of user0→user1 agree on every member", agree)
	// user1's next post reaches user0's timeline exactly when user0 still
	// follows user1.
	p, err := post(hc, via, "user1", t1, "after the unfollow")
	if err != nil {
		t.Fatal(err)
	}
	fing, _ := names(hc, via, "user0", "following")
	follows := slices.Contains(fing, "user1")
	cl.waitSettled(10 * time.Second)
	for _, d := range cl.ds {
		var page api.PostsAnswer
		if _, err := apiCall(hc, "GET", "http://"+d.addr+"/v1/users/user0/timeline?limit=50", t0, nil, &page); err != nil {
			t.Fatal(err)
		}
		has := slices.ContainsFunc(page.Posts, func(q feed.Post) bool { return q.ID == p.ID })
		if has != follows {
			t.Errorf("user0's timeline via %s has user1's post: %v, but user0 follows user1: %v", d.addr, has, follows)
		}
	}
	t.Logf("unfollow with user1's owner paused: answered in %v (%v); both sides agreed %v after the resume", took.Round(time.Millisecond), unfollowErr, converged.Round(time.Millisecond))
}

// TestPausedOwnerReadsAfterResume: a user's owner is paused (SIGSTOP)
// long enough to be taken for dead, posts are acknowledged meanwhile by
// the others; right after it resumes, reads through every member,
// itself included, see every one of them: it knows it was paused and
// catches up before it answers alone, and the others give it the time.
func TestPausedOwnerReadsAfterResume(t *testing.T) {
	cl := startDaemons(t, 3, nil)
	hc := &http.Client{Timeout: 5 * time.Second}
	owner := cl.byAddr(cl.ring(2).Owner("joe"))
	token := cl.createUser(hc, owner, "joe")
	var others []*daemonProc
	for _, d := range cl.ds {
		if d != owner {
			others = append(others, d)
		}
	}
	owner.pause()
	time.Sleep(1500 * time.Millisecond) // declared dead by the others
	var acked []feed.ID
	for i := range 20 {
		p, err := post(hc, others[i%2], "joe", token, fmt.Sprint("while paused ", i))
		if err != nil {
			t.Fatalf("post %d with the owner paused: %v", i, err)
		}
		acked = append(acked, p.ID)
	}
	owner.resume()
	resumed := time.Now()
	for _, d := range cl.ds {
		got, err := allPosts(hc, d.addr, "joe")
		if err != nil {
			t.Fatalf("right after the resume, via %s: %v", d.addr, err)
		}
		for _, id := range acked {
			if !got[id] {
				t.Errorf("right after the resume, via %s: acknowledged post %s missing", d.addr, id)
			}
		}
	}
	t.Logf("owner paused 1.5s: 20 posts acknowledged meanwhile, all read through every member %v after the resume", time.Since(resumed).Round(time.Millisecond))
}

// TestWipedCoordinatorFanout: a post is acknowledged while the member
// holding a follower's inbox is down, so its delivery waits in the
// outbox of the member that took the post; that member is then killed
// and its disk wiped. The post's other replica kept a copy of the
// delivery and makes it once it sees the coordinator back on a new
// disk: the follower's timeline, read through every member, has the
// post.
func TestWipedCoordinatorFanout(t *testing.T) {
	cl := startDaemons(t, 3, nil)
	hc := &http.Client{Timeout: 5 * time.Second}
	rg := cl.ring(2)
	pref := rg.Preference(nil, "author")
	coord := cl.byAddr(pref[0])
	var third *daemonProc
	for _, d := range cl.ds {
		if !rg.InPreference("author", d.addr) {
			third = d
		}
	}
	// A follower owned by the third member (whose inbox there answers
	// its timeline reads) and not held by the coordinator.
	follower := ""
	for i := 0; follower == ""; i++ {
		if u := fmt.Sprintf("reader%d", i); rg.Owner(u) == third.addr && !rg.InPreference(u, coord.addr) {
			follower = u
		}
	}
	ta := cl.createUser(hc, coord, "author")
	tf := cl.createUser(hc, third, follower)
	if _, err := apiCall(hc, "PUT", "http://"+third.addr+"/v1/users/"+follower+"/following/author", tf, nil, nil); err != nil {
		t.Fatal(err)
	}
	third.kill()
	p, err := post(hc, coord, "author", ta, "delivered by a copy")
	if err != nil {
		t.Fatalf("post with the follower's member down: %v", err)
	}
	coord.kill()
	if err := os.RemoveAll(coord.dataDir); err != nil {
		t.Fatal(err)
	}
	third.start(t)
	coord.start(t)
	cl.waitSettled(20 * time.Second)
	for _, d := range cl.ds {
		waitUntil(t, 15*time.Second, follower+"'s timeline via "+d.addr+" has the post", func() bool {
			var page api.PostsAnswer
			if _, err := apiCall(hc, "GET", "http://"+d.addr+"/v1/users/"+follower+"/timeline?limit=20", tf, nil, &page); err != nil {
				return false
			}
			return slices.ContainsFunc(page.Posts, func(q feed.Post) bool { return q.ID == p.ID })
		})
	}
}
