package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ringfront/ringfront/appnode/feed"
)

// TestInternalSignatureCoversBody: a replicate call whose body was
// changed after it was signed is refused and stores nothing; the body
// it was signed for is stored; a body over the route's limit is refused
// before anything is decoded.
func TestInternalSignatureCoversBody(t *testing.T) {
	m := newCluster(t, clusterOpts{n: 1})[0]
	uri := "/internal/v1/replicate"
	post := func(text string) string {
		p := feed.Post{ID: feed.NewIDSource(feed.NewClock(time.Now), "t").Next(), Author: "joe", Text: text, Created: time.Now().UTC()}
		b, err := json.Marshal(replicateRequest{Records: []record{{Post: &p}}})
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	send := func(signed, sent string) int {
		t.Helper()
		req, _ := http.NewRequest("POST", m.url(uri), strings.NewReader(sent))
		req.Header.Set(HeaderCluster, signBody(testSecret, time.Now(), "POST", uri, []byte(signed)))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	good := post("hello")
	tampered := strings.Replace(good, "hello", "pwned", 1)
	if got := send(good, tampered); got != http.StatusUnauthorized {
		t.Errorf("tampered body = %d, want 401", got)
	}
	if got, _, _ := m.store.Posts("joe", feed.ID{}, 10); len(got) != 0 {
		t.Errorf("the tampered record was stored: %v", got)
	}
	if got := send(good, good); got != http.StatusNoContent {
		t.Errorf("body as signed = %d, want 204", got)
	}
	if got, _, _ := m.store.Posts("joe", feed.ID{}, 10); len(got) != 1 || got[0].Text != "hello" {
		t.Errorf("stored posts = %v, want the signed one", got)
	}
	huge := fmt.Sprintf(`{"records": [], "pad": %q}`, strings.Repeat("x", maxReplicateBody))
	if got := send(huge, huge); got != http.StatusRequestEntityTooLarge {
		t.Errorf("body over %d bytes = %d, want 413", maxReplicateBody, got)
	}
}

// TestDigestRequestBounds: the digests endpoint refuses requests that
// would make it do unbounded work or that name no tree node.
func TestDigestRequestBounds(t *testing.T) {
	ms := newCluster(t, clusterOpts{n: 2})
	m, peer := ms[0], ms[1].addr
	uri := "/internal/v1/digests"
	many := make([]int, maxLeavesPerCall+1)
	for i := range many {
		many[i] = i
	}
	for _, tt := range []struct {
		name string
		req  digestRequest
		code int
	}{
		{"groups", digestRequest{Peer: peer}, 200},
		{"some groups", digestRequest{Peer: peer, Groups: []int{0, 255}}, 200},
		{"some leaves", digestRequest{Peer: peer, Leaves: []int{0, 65535}}, 200},
		{"not a member", digestRequest{Peer: "127.0.0.1:1"}, 400},
		{"group out of range", digestRequest{Peer: peer, Groups: []int{256}}, 400},
		{"leaf out of range", digestRequest{Peer: peer, Leaves: []int{-1}}, 400},
		{"too many groups", digestRequest{Peer: peer, Groups: many[:maxGroupsPerCall+1]}, 400},
		{"both", digestRequest{Peer: peer, Groups: []int{1}, Leaves: []int{1}}, 400},
		{"too many leaves", digestRequest{Peer: peer, Leaves: many}, 400},
	} {
		t.Run(tt.name, func(t *testing.T) {
			body, _ := json.Marshal(tt.req)
			req, _ := http.NewRequest("POST", m.url(uri), strings.NewReader(string(body)))
			req.Header.Set(HeaderCluster, signBody(testSecret, time.Now(), "POST", uri, body))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var ans digestAnswer
			json.NewDecoder(resp.Body).Decode(&ans)
			resp.Body.Close()
			if resp.StatusCode != tt.code {
				t.Fatalf("got %d, want %d", resp.StatusCode, tt.code)
			}
			if tt.name == "groups" && len(ans.Groups) != numGroups {
				t.Errorf("%d group digests, want %d", len(ans.Groups), numGroups)
			}
		})
	}
}
