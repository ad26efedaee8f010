package chaos

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ringfront/ringfront/appnode/chaos/history"
	"github.com/ringfront/ringfront/appnode/client"
)

func TestGenerator(t *testing.T) {
	users := []string{"u000", "u001", "u002"}
	members := []string{"m1", "m2", "m3", "m4", "m5"}
	draw := func(seed uint64, client history.ClientKind, worker int) []history.Op {
		g := newGenerator(seed, client, worker, users, members, "tag")
		var ops []history.Op
		for range 500 {
			ops = append(ops, g.next())
		}
		return ops
	}
	a := draw(7, history.Plain, 0)
	if diff := cmp.Diff(a, draw(7, history.Plain, 0)); diff != "" {
		t.Fatalf("the same seed and worker gave other operations (-first +second):\n%s", diff)
	}
	if cmp.Equal(a, draw(7, history.Plain, 1)) || cmp.Equal(a, draw(8, history.Plain, 0)) {
		t.Error("another worker or seed gave the same operations")
	}
	kinds := map[history.Kind]int{}
	texts := map[string]bool{}
	for _, o := range a {
		kinds[o.Kind]++
		if o.Member == "" {
			t.Errorf("plain operation %v names no member", o)
		}
		switch o.Kind {
		case history.Follow, history.Unfollow:
			if o.Other == "" || o.Other == o.User {
				t.Errorf("%v: followee %q", o, o.Other)
			}
		case history.Post:
			if texts[o.Text] || !strings.HasPrefix(o.Text, "tag ") {
				t.Errorf("post text %q repeated or without the run's tag", o.Text)
			}
			texts[o.Text] = true
		}
	}
	for _, w := range opWeights {
		if kinds[w.kind] == 0 {
			t.Errorf("no %s in 500 operations", w.kind)
		}
	}
	for _, o := range draw(7, history.Smart, 4) {
		if o.Member != "" {
			t.Errorf("smart operation %v names a member", o)
		}
	}
}

func TestNeverSent(t *testing.T) {
	refused := &url.Error{Op: "Post", URL: "http://m1/", Err: &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connect: connection refused")}}
	reset := &url.Error{Op: "Post", URL: "http://m1/", Err: &net.OpError{Op: "read", Net: "tcp", Err: errors.New("connection reset by peer")}}
	timeout := &url.Error{Op: "Post", URL: "http://m1/", Err: context.DeadlineExceeded}
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"connection refused", refused, true},
		{"reset after sending", reset, false},
		{"timeout", timeout, false},
		{"deadline of the operation", context.DeadlineExceeded, false},
		{"every member refused", fmt.Errorf("%w for u1: %w", client.ErrUnavailable, errors.Join(fmt.Errorf("on m1: %w", refused), fmt.Errorf("on m2: %w", refused))), true},
		{"one member timed out", fmt.Errorf("%w for u1: %w", client.ErrUnavailable, errors.Join(fmt.Errorf("on m1: %w", refused), fmt.Errorf("on m2: %w", timeout))), false},
		{"a file error", os.ErrNotExist, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := neverSent(tc.err); got != tc.want {
				t.Errorf("neverSent(%v) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
}
