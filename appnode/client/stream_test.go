package client

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ringfront/ringfront/appnode/feed"
	"github.com/ringfront/ringfront/appnode/server"
)

// TestStream: the client follows a live timeline, and when the member
// serving it dies, reconnects to a replica with Last-Event-ID: no post
// is lost or repeated.
func TestStream(t *testing.T) {
	ms := cluster(t, 3, server.Forward)
	c, err := New([]string{ms[0].addr}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	reader, err := c.CreateUser(ctx, "reader")
	if err != nil {
		t.Fatal(err)
	}
	// ann is owned by another member than reader.
	ann := ""
	for i := 0; ann == ""; i++ {
		if u := fmt.Sprintf("ann%d", i); c.ring.Load().Owner(u) != c.ring.Load().Owner("reader") {
			ann = u
		}
	}
	annUser, err := c.CreateUser(ctx, ann)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Follow(ctx, "reader", reader.Token, ann); err != nil {
		t.Fatal(err)
	}
	got := make(chan feed.Post, 10)
	sctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- c.Stream(sctx, "reader", reader.Token, "", func(p feed.Post) error { got <- p; return nil })
	}()
	next := func() feed.Post {
		t.Helper()
		select {
		case p := <-got:
			return p
		case <-time.After(5 * time.Second):
			t.Fatal("no post on the stream within 5s")
		}
		return feed.Post{}
	}
	// The stream is up once a post comes through.
	var want, seen []feed.ID
	deadline := time.Now().Add(5 * time.Second)
	for len(seen) == 0 && time.Now().Before(deadline) {
		p, err := c.Post(ctx, ann, annUser.Token, "are you there?")
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, p.ID)
		select {
		case p := <-got:
			seen = append(seen, p.ID)
		case <-time.After(200 * time.Millisecond):
		}
	}
	if len(seen) == 0 {
		t.Fatal("the stream never delivered a post")
	}
	// Posts made before the stream was up are not on it.
	for len(want) > 0 && want[0] != seen[0] {
		want = want[1:]
	}
	// Kill the member serving the stream (reader's owner).
	for _, m := range ms {
		if m.addr == c.ring.Load().Owner("reader") {
			m.ts.Listener.Close()
			m.ts.CloseClientConnections()
		}
	}
	for i := range 3 {
		p, err := c.Post(ctx, ann, annUser.Token, fmt.Sprint("while the owner is down ", i))
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, p.ID)
	}
	for len(seen) < len(want) {
		seen = append(seen, next().ID)
	}
	if diff := cmp.Diff(want, seen); diff != "" {
		t.Errorf("posts on the stream (-want +got):\n%s", diff)
	}
	stop()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Stream after cancel = %v", err)
	}
	// A wrong token is final, and so is the callback's error; after
	// starts after a known post.
	if err := c.Stream(ctx, "reader", annUser.Token, "", func(feed.Post) error { return nil }); !errors.Is(err, ErrForbidden) {
		t.Errorf("Stream with a wrong token = %v", err)
	}
	enough := errors.New("enough")
	var first feed.ID
	err = c.Stream(ctx, "reader", reader.Token, want[0].String(), func(p feed.Post) error { first = p.ID; return enough })
	if !errors.Is(err, enough) || first != want[1] {
		t.Errorf("Stream after %s = %v with %s first, want %v with %s", want[0], err, first, enough, want[1])
	}
	if err := c.Stream(ctx, "reader", reader.Token, "nonsense", nil); err == nil {
		t.Error("Stream after a malformed id did not fail")
	}
}
