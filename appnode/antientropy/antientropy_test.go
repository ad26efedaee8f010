package antientropy

import (
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/ringfront/ringfront/appnode/peer"
	"github.com/ringfront/ringfront/appnode/ring"
	"github.com/ringfront/ringfront/appnode/store"
	"github.com/ringfront/ringfront/appnode/transport"
)

var testSecret = []byte("test cluster secret")

// newSyncer returns the Syncer of the first of n members (its store in
// memory), without a server: what anti-entropy computes alone.
func newSyncer(t *testing.T, n, vnodes int) (*Syncer, []string) {
	t.Helper()
	var members []string
	for i := range n {
		members = append(members, fmt.Sprintf("127.0.0.1:%d", 30000+i))
	}
	rg, err := ring.New(ring.Config{Members: members, VNodes: vnodes, Replicas: 2})
	if err != nil {
		t.Fatal(err)
	}
	c, err := peer.New(peer.Options{Self: members[0], Ring: rg, Transport: transport.Options{Secret: testSecret}})
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open("/data", store.Options{FS: vfs.NewMem(), Space: func(string) (store.Space, error) { return store.Space{Free: 1 << 40}, nil }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return New(Options{Cluster: c, Store: st}), members
}

// TestDigestRequestBounds: the digests endpoint refuses requests that
// would make it do unbounded work or that name no tree node.
func TestDigestRequestBounds(t *testing.T) {
	s, members := newSyncer(t, 2, 16)
	peer := members[1]
	h := s.c.Transport().Internal(s.digests, maxDigestBody)
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
			req := httptest.NewRequest("POST", uri, strings.NewReader(string(body)))
			req.Header.Set(transport.HeaderCluster, transport.Sign(testSecret, time.Now(), "POST", uri, body))
			rec := httptest.NewRecorder()
			h(rec, req)
			var ans digestAnswer
			json.NewDecoder(rec.Body).Decode(&ans)
			if rec.Code != tt.code {
				t.Fatalf("got %d, want %d", rec.Code, tt.code)
			}
			if tt.name == "groups" && len(ans.Groups) != numGroups {
				t.Errorf("%d group digests, want %d", len(ans.Groups), numGroups)
			}
		})
	}
}

// TestLeafClasses: a leaf classed "all" holds only users both members
// share, one classed "none" only users they do not; "mixed" leaves are
// the ones a ring position falls in.
func TestLeafClasses(t *testing.T) {
	s, members := newSyncer(t, 4, 64)
	b := members[1]
	rg := s.c.Ring()
	cls := s.leafClasses(rg, b)
	counts := map[leafClass]int{}
	for _, c := range cls {
		counts[c]++
	}
	if counts[leafMixed] == 0 || counts[leafMixed] > len(rg.Positions()) || counts[leafAll] == 0 || counts[leafNone] == 0 {
		t.Fatalf("leaf classes: %d none, %d all, %d mixed (%d ring positions)", counts[leafNone], counts[leafAll], counts[leafMixed], len(rg.Positions()))
	}
	for i := range 20000 {
		name := fmt.Sprintf("n%d", i)
		shared := s.shares(rg, name, b)
		switch cls[store.LeafOf(name)] {
		case leafAll:
			if !shared {
				t.Fatalf("%s is in a leaf classed all but not shared", name)
			}
		case leafNone:
			if shared {
				t.Fatalf("%s is in a leaf classed none but shared", name)
			}
		}
	}
}
