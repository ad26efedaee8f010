package posts

import (
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ringfront/ringfront/appnode/api"
	"github.com/ringfront/ringfront/appnode/feed"
	"github.com/ringfront/ringfront/appnode/peer/peertest"
	"github.com/ringfront/ringfront/appnode/store"
)

// TestWritePosts: a page written from stored JSON decodes as the
// api.PostsAnswer of those posts, with the cursor, or none after the
// last page.
func TestWritePosts(t *testing.T) {
	ids := feed.NewIDSource(feed.NewClock(nil), "198.51.100.1:80")
	var posts []feed.Post
	var raw []store.RawPost
	for _, text := range []string{"first", "second, with \"quotes\""} {
		p := feed.Post{ID: ids.Next(), Author: "ann", Text: text, Created: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
		b, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		posts, raw = append(posts, p), append(raw, store.RawPost{ID: p.ID, JSON: b})
	}
	for _, tc := range []struct {
		name string
		raw  []store.RawPost
		next feed.ID
		want api.PostsAnswer
	}{
		{"a page with more", raw, posts[1].ID, api.PostsAnswer{Posts: posts, Next: posts[1].ID.String()}},
		{"the last page", raw[:1], feed.ID{}, api.PostsAnswer{Posts: posts[:1]}},
		{"no posts", nil, feed.ID{}, api.PostsAnswer{Posts: []feed.Post{}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			writePosts(w, tc.raw, tc.next)
			var got api.PostsAnswer
			if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
				t.Fatalf("answer %s: %v", w.Body, err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("page (-want +got):\n%s", diff)
			}
			if ct := w.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
		})
	}
}

// TestPostID: a post's id is drawn here when the client chose none, and
// a chosen one is kept when it is within feed.ClientSkew of the
// member's clock, else refused naming it.
func TestPostID(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	c := peertest.Alone(t, func() time.Time { return now })
	p := New(Options{Cluster: c, IDs: feed.NewIDSource(c.Clock(), peertest.Self)})
	idAt := func(at time.Time) string {
		return feed.NewIDSource(feed.NewClock(func() time.Time { return at }), "client").Next().String()
	}
	for _, tc := range []struct {
		name, chosen string
		wantErr      string // "": accepted
	}{
		{"none", "", ""},
		{"now", idAt(now), ""},
		{"a minute behind", idAt(now.Add(-time.Minute)), ""},
		{"past the skew ahead", idAt(now.Add(feed.ClientSkew + time.Minute)), "more than 5m0s from this member's clock"},
		{"past the skew behind", idAt(now.Add(-feed.ClientSkew - time.Minute)), "more than 5m0s from this member's clock"},
		{"not an id", "nonsense", "id: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id, err := p.postID(tc.chosen)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("postID(%q) = %v, %v; want an error saying %q", tc.chosen, id, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("postID(%q): %v", tc.chosen, err)
			}
			if tc.chosen == "" && !id.Time().Equal(now) {
				t.Errorf("drawn id's time %v, want the member's clock %v", id.Time(), now)
			}
			if tc.chosen != "" && id.String() != tc.chosen {
				t.Errorf("id %s, want the chosen %s", id, tc.chosen)
			}
		})
	}
}
