package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/ringfront/ringfront/appnode/client"
)

// runFanout measures fan-out on write on a 3-member cluster (replicas
// 2, every write synced):
//
//   - home-timeline reads for a user following -followees users with
//     -posts posts each, before fan-out (fanout_limit: -1, every read
//     merges the followees' posts from their owners) and after (the
//     default: one inbox range scan);
//   - the latency of a post, one at a time, by authors with 1, 1000 and
//     -followers followers: the last is above fanout_limit (10000) and
//     not pushed; then once more with fanout_limit raised above it, so
//     its post is pushed (delivered after the answer, from the outbox).
func runFanout(ctx context.Context, o options) error {
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return err
	}
	var rows []result
	add := func(r result) {
		fmt.Fprintf(os.Stderr, "%-58s %8.0f/s p50 %-9v p99 %-9v errors %d\n", r.name, r.rate(), r.pct(0.5).Round(time.Microsecond), r.pct(0.99).Round(time.Microsecond), r.errors)
		if r.firstErr != nil {
			fmt.Fprintf(os.Stderr, "    first error: %v\n", r.firstErr)
		}
		rows = append(rows, r)
	}
	for _, mode := range []struct{ name, extra string }{
		{"before: read-time merge (fanout_limit: -1)", "fanout_limit: -1\n"},
		{"after: fan-out on write (inbox scan)", ""},
	} {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		err := withCluster(o, mode.extra, func(c *cluster, cl *client.Client) error {
			tl, err := timelineSetup(ctx, o, cl)
			if err != nil {
				return err
			}
			add(measureOn(ctx, c.pids, fmt.Sprintf("timeline reads, %d followees, %s", o.followees, mode.name), o.concurrency, o.duration, o.maxRequests, tl))
			if mode.extra != "" {
				return nil
			}
			return postLatencies(ctx, o, c, cl, add)
		})
		if err != nil {
			return err
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# bench-appnode -fanout, %s\n\n", time.Now().UTC().Format(time.RFC3339))
	fmt.Fprintf(&b, "3 members on 127.0.0.1, replicas 2, write_acks all live replicas, every write synced, %d CPUs.\n", numCPU())
	fmt.Fprintf(&b, "Timeline reads: %d concurrent requests for %v; posts: one at a time.\n\n", o.concurrency, o.duration)
	tw := tabwriter.NewWriter(&b, 0, 0, 1, ' ', tabwriter.Debug)
	fmt.Fprintln(tw, "measurement\trequests/s\tp50\tp99\tserver CPU/request\terrors")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%.0f\t%v\t%v\t%v\t%d\n", r.name, r.rate(), r.pct(0.5).Round(time.Microsecond), r.pct(0.99).Round(time.Microsecond), r.cpuPerRequest().Round(time.Microsecond), r.errors)
	}
	tw.Flush()
	fmt.Print(b.String())
	if err := os.WriteFile(filepath.Join(o.out, "fanout.md"), []byte(b.String()), 0o644); err != nil {
		return err
	}
	for _, r := range rows {
		if r.errors > 0 {
			return fmt.Errorf("%s had %d errors", r.name, r.errors)
		}
	}
	return nil
}

// withCluster runs f on a fresh 3-member cluster with extra config keys.
func withCluster(o options, extra string, f func(*cluster, *client.Client) error) error {
	dir, err := os.MkdirTemp("", "bench-appnode-fanout-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	c, err := startClusterExtra(o, dir, 2, extra)
	if err != nil {
		return err
	}
	defer c.stop()
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 2 * o.concurrency, MaxIdleConns: 8 * o.concurrency}}
	cl, err := client.New(c.members, client.Options{HTTP: hc})
	if err != nil {
		return err
	}
	return f(c, cl)
}

// parallel runs op(0..n-1) from conc workers and returns the first
// error.
func parallel(ctx context.Context, n, conc int, op func(i int) error) error {
	r := measure(ctx, "setup", conc, time.Hour, n, func(i int) error { return op(i - 1) })
	if r.errors > 0 {
		return fmt.Errorf("%d of %d setup requests failed, first: %w", r.errors, n, r.firstErr)
	}
	if r.requests < n {
		return fmt.Errorf("setup stopped after %d of %d requests: %w", r.requests, n, ctx.Err())
	}
	return nil
}

// timelineSetup makes -users users with -posts posts each and a reader
// following -followees of them (the follows first, so posts are pushed
// where fan-out is on), and returns the timeline read to measure.
func timelineSetup(ctx context.Context, o options, cl *client.Client) (func(int) error, error) {
	fmt.Fprintf(os.Stderr, "creating %d users with %d posts each, a reader following %d\n", o.users, o.postsEach, o.followees)
	users := make([]string, o.users)
	tokens := make([]string, o.users)
	if err := parallel(ctx, o.users, o.concurrency, func(i int) error {
		users[i] = fmt.Sprintf("user%04d", i)
		ans, err := cl.CreateUser(ctx, users[i])
		tokens[i] = ans.Token
		return err
	}); err != nil {
		return nil, err
	}
	reader, err := cl.CreateUser(ctx, "reader")
	if err != nil {
		return nil, err
	}
	if err := parallel(ctx, min(o.followees, o.users), 8, func(i int) error {
		return cl.Follow(ctx, "reader", reader.Token, users[i])
	}); err != nil {
		return nil, err
	}
	if err := parallel(ctx, o.users*o.postsEach, o.concurrency, func(i int) error {
		u := i % o.users
		_, err := cl.Post(ctx, users[u], tokens[u], fmt.Sprintf("post %d by %s", i, users[u]))
		return err
	}); err != nil {
		return nil, err
	}
	return func(int) error {
		page, err := cl.Timeline(ctx, "reader", reader.Token, client.Page{Limit: 20})
		if err == nil && len(page.Posts) != 20 {
			err = fmt.Errorf("timeline page of %d posts, want 20", len(page.Posts))
		}
		return err
	}, nil
}

// postLatencies measures posts, one at a time, by authors with 1, 1000
// and o.followers followers.
func postLatencies(ctx context.Context, o options, c *cluster, cl *client.Client, add func(result)) error {
	sizes := []int{1, 1000, o.followers}
	fmt.Fprintf(os.Stderr, "creating %d followers and authors with %v followers\n", o.followers, sizes)
	authors := map[int]string{}
	tokens := map[int]string{}
	for _, n := range sizes {
		authors[n] = fmt.Sprintf("author%d", n)
		ans, err := cl.CreateUser(ctx, authors[n])
		if err != nil {
			return err
		}
		tokens[n] = ans.Token
	}
	followers := make([]string, o.followers)
	ftokens := make([]string, o.followers)
	if err := parallel(ctx, o.followers, o.concurrency, func(i int) error {
		followers[i] = fmt.Sprintf("f%05d", i)
		ans, err := cl.CreateUser(ctx, followers[i])
		ftokens[i] = ans.Token
		return err
	}); err != nil {
		return err
	}
	// Follower i follows every author with more than i followers.
	var follows []struct{ f, a int }
	for _, n := range sizes {
		for i := range n {
			follows = append(follows, struct{ f, a int }{i, n})
		}
	}
	start := time.Now()
	if err := parallel(ctx, len(follows), o.concurrency, func(i int) error {
		fw := follows[i]
		return cl.Follow(ctx, followers[fw.f], ftokens[fw.f], authors[fw.a])
	}); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "%d follows in %v\n", len(follows), time.Since(start).Round(time.Millisecond))
	measurePosts := func(n int, label string) {
		add(measureOn(ctx, c.pids, fmt.Sprintf("post by an author with %d followers%s", n, label), 1, o.duration, 200, func(i int) error {
			_, err := cl.Post(ctx, authors[n], tokens[n], fmt.Sprintf("post %d to %d followers", i, n))
			return err
		}))
	}
	for _, n := range sizes {
		label := ""
		if n > 10_000 {
			label = " (above fanout_limit 10000: not pushed)"
		}
		measurePosts(n, label)
	}
	// Raise fanout_limit (SIGHUP) so the biggest author is pushed too.
	c.extra = fmt.Sprintf("fanout_limit: %d\n", 2*o.followers)
	if err := c.writeConfigs("forward"); err != nil {
		return err
	}
	for _, p := range c.procs {
		p.cmd.Process.Signal(syscall.SIGHUP)
	}
	time.Sleep(2 * time.Second) // a reload takes milliseconds
	measurePosts(o.followers, fmt.Sprintf(" (fanout_limit %d: pushed from the outbox)", 2*o.followers))
	return nil
}
