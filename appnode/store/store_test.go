package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
	"github.com/google/go-cmp/cmp"

	"github.com/ringfront/ringfront/appnode/feed"
)

func open(t *testing.T, dir string, opts Options) *Store {
	t.Helper()
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestUsers(t *testing.T) {
	s := open(t, t.TempDir(), Options{})
	defer s.Close()
	u := feed.User{Name: "joe", TokenHash: []byte{1, 2, 3}, Created: time.Unix(100, 0).UTC()}
	if err := s.CreateUser(u); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateUser(feed.User{Name: "joe"}); !errors.Is(err, ErrExists) {
		t.Errorf("second CreateUser = %v, want ErrExists", err)
	}
	got, err := s.User("joe")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(u, got); diff != "" {
		t.Errorf("User (-want +got):\n%s", diff)
	}
	if ok, err := s.HasUser("joe"); !ok || err != nil {
		t.Errorf("HasUser(joe) = %v, %v", ok, err)
	}
	if ok, err := s.HasUser("jo"); ok || err != nil {
		t.Errorf("HasUser(jo) = %v, %v", ok, err)
	}
	if _, err := s.User("jo"); !errors.Is(err, ErrNotFound) {
		t.Errorf("User(jo) = %v, want ErrNotFound", err)
	}
}

func makePosts(t *testing.T, s *Store, author string, n int, ids *feed.IDSource) []feed.Post {
	t.Helper()
	var out []feed.Post
	for i := range n {
		p := feed.Post{ID: ids.Next(), Author: author, Text: strings.Repeat("x", i+1), Created: time.Unix(int64(i), 0).UTC()}
		if err := s.AddPost(p); err != nil {
			t.Fatal(err)
		}
		out = append([]feed.Post{p}, out...) // newest first
	}
	return out
}

func TestPostsPaging(t *testing.T) {
	s := open(t, t.TempDir(), Options{})
	defer s.Close()
	ids := feed.NewIDSource(feed.NewClock(nil), "n1")
	want := makePosts(t, s, "joe", 7, ids)
	makePosts(t, s, "jo", 3, ids)   // a name that is a prefix of joe's
	makePosts(t, s, "joey", 3, ids) // and one that extends it
	var got []feed.Post
	var cursor feed.ID
	pages := 0
	for {
		page, next, err := s.Posts("joe", cursor, 3)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, page...)
		pages++
		if next.IsZero() {
			break
		}
		if next != page[len(page)-1].ID {
			t.Fatalf("next = %s, want the last id of the page %s", next, page[len(page)-1].ID)
		}
		cursor = next
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("pages (-want +got):\n%s", diff)
	}
	if pages != 3 {
		t.Errorf("%d pages of 3 for 7 posts, want 3", pages)
	}
	// An exact multiple of the page size ends without an empty page.
	page, next, err := s.Posts("jo", feed.ID{}, 3)
	if err != nil || len(page) != 3 || !next.IsZero() {
		t.Errorf("Posts(jo, 3) = %d posts, next %v, %v; want 3 and no cursor", len(page), next, err)
	}
	page, _, err = s.Posts("nobody", feed.ID{}, 3)
	if err != nil || len(page) != 0 {
		t.Errorf("Posts(nobody) = %v, %v", page, err)
	}
}

func TestEdges(t *testing.T) {
	s := open(t, t.TempDir(), Options{})
	defer s.Close()
	add := feed.Edge{Follower: "joe", Followee: "ann", Clock: 10}
	rm := feed.Edge{Follower: "joe", Followee: "ann", Clock: 20, Removed: true}
	other := feed.Edge{Follower: "joe", Followee: "bob", Clock: 15}
	for _, e := range []feed.Edge{rm, add, other} { // arrives out of order
		if _, _, err := s.MergeEdge(Following, e, false, 0); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := s.MergeEdge(Followers, add, false, 0); err != nil {
		t.Fatal(err)
	}
	got, err := s.Edges(Following, "joe")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]feed.Edge{rm, other}, got); diff != "" {
		t.Errorf("following (-want +got):\n%s", diff)
	}
	got, err = s.Edges(Followers, "ann")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]feed.Edge{add}, got); diff != "" {
		t.Errorf("followers (-want +got):\n%s", diff)
	}
}

func TestRestartKeepsData(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, Options{})
	ids := feed.NewIDSource(feed.NewClock(nil), "n1")
	if err := s.CreateUser(feed.User{Name: "joe"}); err != nil {
		t.Fatal(err)
	}
	want := makePosts(t, s, "joe", 5, ids)
	if _, _, err := s.MergeEdge(Following, feed.Edge{Follower: "joe", Followee: "ann", Clock: 1}, false, 0); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, dir, Options{})
	defer s.Close()
	if _, err := s.User("joe"); err != nil {
		t.Errorf("user lost on restart: %v", err)
	}
	got, _, err := s.Posts("joe", feed.ID{}, 10)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("posts after restart (-want +got):\n%s", diff)
	}
	if edges, _ := s.Edges(Following, "joe"); len(edges) != 1 {
		t.Errorf("edges after restart = %v", edges)
	}
}

func TestFullOrReadOnlyDisk(t *testing.T) {
	var space atomic.Value
	space.Store(Space{Free: 1 << 30})
	s := open(t, t.TempDir(), Options{Space: func(string) (Space, error) { return space.Load().(Space), nil }})
	defer s.Close()
	ids := feed.NewIDSource(feed.NewClock(nil), "n1")
	before := makePosts(t, s, "joe", 2, ids)
	for _, tt := range []struct {
		name  string
		space Space
		want  error
	}{
		{"full", Space{Free: DefaultMinFree - 1}, ErrDiskFull},
		{"read-only", Space{Free: 1 << 30, ReadOnly: true}, ErrReadOnly},
	} {
		t.Run(tt.name, func(t *testing.T) {
			space.Store(tt.space)
			defer space.Store(Space{Free: 1 << 30})
			err := s.AddPost(feed.Post{ID: ids.Next(), Author: "joe", Text: "lost?"})
			if !errors.Is(err, tt.want) {
				t.Errorf("AddPost = %v, want %v", err, tt.want)
			}
			if err := s.CreateUser(feed.User{Name: "ann"}); !errors.Is(err, tt.want) {
				t.Errorf("CreateUser = %v, want %v", err, tt.want)
			}
			if _, _, err := s.MergeEdge(Following, feed.Edge{Follower: "joe", Followee: "ann", Clock: 1}, false, 0); !errors.Is(err, tt.want) {
				t.Errorf("MergeEdge = %v, want %v", err, tt.want)
			}
			got, _, err := s.Posts("joe", feed.ID{}, 10)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(before, got); diff != "" {
				t.Errorf("posts after refused writes (-want +got):\n%s", diff)
			}
		})
	}
	// Once there is room again, writes go through.
	if err := s.CreateUser(feed.User{Name: "ann"}); err != nil {
		t.Errorf("CreateUser after the disk recovered = %v", err)
	}
}

// TestEngineFailure: a WAL write that fails inside pebble (which would
// exit the process by default) fails that write and later ones with
// ErrFailed, reads too (the engine's state is unknown), and a restart
// finds every acknowledged record whole.
func TestEngineFailure(t *testing.T) {
	var broken atomic.Bool
	fs := errorfs.Wrap(vfs.Default, errorfs.InjectorFunc(func(op errorfs.Op) error {
		if broken.Load() && strings.HasSuffix(op.Path, ".log") && op.Kind.ReadOrWrite() == errorfs.OpIsWrite {
			return errors.New("injected I/O error")
		}
		return nil
	}))
	dir := t.TempDir()
	s := open(t, dir, Options{FS: fs})
	ids := feed.NewIDSource(feed.NewClock(nil), "n1")
	before := makePosts(t, s, "joe", 2, ids)
	broken.Store(true)
	err := s.AddPost(feed.Post{ID: ids.Next(), Author: "joe", Text: "lost?"})
	if !errors.Is(err, ErrFailed) {
		t.Fatalf("AddPost on a failing disk = %v, want ErrFailed", err)
	}
	if err := s.CreateUser(feed.User{Name: "ann"}); !errors.Is(err, ErrFailed) {
		t.Errorf("write after the failure = %v, want ErrFailed", err)
	}
	if _, _, err := s.Posts("joe", feed.ID{}, 10); !errors.Is(err, ErrFailed) {
		t.Errorf("read after the failure = %v, want ErrFailed", err)
	}
	if !s.Stats().WritesFail {
		t.Error("Stats does not report the failure")
	}
	// A restart on a working disk recovers from the log: the posts
	// acknowledged before are there, whole.
	broken.Store(false)
	s.Close()
	s = open(t, dir, Options{})
	defer s.Close()
	got, _, err := s.Posts("joe", feed.ID{}, 10)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(before, got); diff != "" {
		t.Errorf("posts after restart (-want +got):\n%s", diff)
	}
}

func TestMergePosts(t *testing.T) {
	s := open(t, t.TempDir(), Options{})
	defer s.Close()
	ids := feed.NewIDSource(feed.NewClock(nil), "n1")
	var all []feed.Post
	for i := range 30 {
		author := []string{"ann", "bob", "cat"}[i%3]
		if i%7 == 0 {
			author = "dan" // a few posts by someone not in the merge
		}
		p := feed.Post{ID: ids.Next(), Author: author, Text: fmt.Sprint(i)}
		if err := s.AddPost(p); err != nil {
			t.Fatal(err)
		}
		if author != "dan" {
			all = append([]feed.Post{p}, all...)
		}
	}
	authors := []string{"ann", "bob", "cat", "nobody"}
	var got []feed.Post
	var before feed.ID
	for range 10 {
		page, more, err := s.MergePosts(authors, before, 7)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range page {
			var p feed.Post
			if err := json.Unmarshal(r.JSON, &p); err != nil || p.ID != r.ID {
				t.Fatalf("raw post %s decodes to %+v, %v", r.ID, p, err)
			}
			got = append(got, p)
		}
		if !more {
			break
		}
		before = page[len(page)-1].ID
	}
	if diff := cmp.Diff(all, got); diff != "" {
		t.Errorf("merged pages (-want +got):\n%s", diff)
	}
	if page, more, err := s.MergePosts(nil, feed.ID{}, 5); len(page) != 0 || more || err != nil {
		t.Errorf("MergePosts of nobody = %v, %v, %v", page, more, err)
	}
}
