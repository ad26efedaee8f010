package replica

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ringfront/ringfront/appnode/feed"
)

// TestMissingPosts: a post past the other side's full page is not
// missing, only one inside its range is.
func TestMissingPosts(t *testing.T) {
	id := func(n byte) feed.ID { var i feed.ID; i[0] = n; return i }
	post := func(n byte) feed.Post { return feed.Post{ID: id(n), Author: "a"} }
	a := Records{Posts: []feed.Post{post(9), post(5), post(1)}}
	full := Records{Posts: []feed.Post{post(9), post(4)}, More: true}
	last := Records{Posts: []feed.Post{post(9), post(4)}}
	ids := func(rs []Record) []feed.ID {
		var out []feed.ID
		for _, r := range rs {
			out = append(out, r.Post.ID)
		}
		return out
	}
	if diff := cmp.Diff([]feed.ID{id(5)}, ids(missingPosts(a, full))); diff != "" {
		t.Errorf("against a full page (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]feed.ID{id(5), id(1)}, ids(missingPosts(a, last))); diff != "" {
		t.Errorf("against the last page (-want +got):\n%s", diff)
	}
}
