package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ringfront/ringfront/appnode/client"
)

// runReplication measures what replication costs and buys: durable posts
// with replicas 1, 2 and 3 on a 3-member cluster (every write synced on
// every copy before it is acknowledged), and feed reads with replicas 2
// while one member is dead (SIGKILL), through the smart client, which
// falls over to the next replica.
func runReplication(ctx context.Context, o options) error {
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return err
	}
	var rows []result
	add := func(r result) {
		fmt.Fprintf(os.Stderr, "%-44s %8.0f/s p50 %-9v p99 %-9v errors %d\n", r.name, r.rate(), r.pct(0.5).Round(time.Microsecond), r.pct(0.99).Round(time.Microsecond), r.errors)
		if r.firstErr != nil {
			fmt.Fprintf(os.Stderr, "    first error: %v\n", r.firstErr)
		}
		rows = append(rows, r)
	}
	conc, d, maxReq := o.concurrency, o.duration, o.maxRequests
	for _, replicas := range []int{1, 2, 3} {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		dir, err := os.MkdirTemp("", "bench-appnode-repl-")
		if err != nil {
			return err
		}
		c, err := startClusterWith(o, dir, replicas)
		if err != nil {
			os.RemoveAll(dir)
			return err
		}
		err = func() error {
			cl, err := client.New(c.members, client.Options{})
			if err != nil {
				return err
			}
			users := make([]string, o.users)
			tokens := make([]string, o.users)
			for i := range users {
				users[i] = fmt.Sprintf("user%04d", i)
				ans, err := cl.CreateUser(ctx, users[i])
				if err != nil {
					return fmt.Errorf("creating %s: %w", users[i], err)
				}
				tokens[i] = ans.Token
			}
			add(measureOn(ctx, c.pids, fmt.Sprintf("posts, replicas %d", replicas), conc, d, maxReq, func(i int) error {
				u := i % o.users
				_, err := cl.Post(ctx, users[u], tokens[u], "benchmark post")
				return err
			}))
			if replicas != 2 {
				return nil
			}
			read := func(i int) error {
				_, err := cl.Posts(ctx, users[i%o.users], client.Page{Limit: 20})
				return err
			}
			add(measureOn(ctx, c.pids, "feed reads, replicas 2, all members up", conc, d, maxReq, read))
			// A member dies; the others notice through gossip within a
			// second or so.
			c.procs[2].cmd.Process.Kill()
			c.procs[2].done <- <-c.procs[2].done // reaped; stop() reads it again
			time.Sleep(3 * time.Second)
			alive := func() []int { return c.pids()[:2] }
			add(measureOn(ctx, alive, "feed reads, replicas 2, one member dead", conc, d, maxReq, read))
			return nil
		}()
		c.stop()
		os.RemoveAll(dir)
		if err != nil {
			return err
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# bench-appnode -replication, %s\n\n", time.Now().UTC().Format(time.RFC3339))
	fmt.Fprintf(&b, "3 members on 127.0.0.1, %d concurrent requests, %v per row, %d CPUs; write_acks: all live replicas.\n\n", o.concurrency, o.duration, numCPU())
	tw := tabwriter.NewWriter(&b, 0, 0, 1, ' ', tabwriter.Debug)
	fmt.Fprintln(tw, "measurement\trequests/s\tp50\tp99\tserver CPU/request\terrors\tvs replicas 1")
	for _, r := range rows {
		rel := ""
		if strings.HasPrefix(r.name, "posts") {
			rel = fmt.Sprintf("%.2fx", r.rate()/rows[0].rate())
		}
		fmt.Fprintf(tw, "%s\t%.0f\t%v\t%v\t%v\t%d\t%s\n", r.name, r.rate(), r.pct(0.5).Round(time.Microsecond), r.pct(0.99).Round(time.Microsecond), r.cpuPerRequest().Round(time.Microsecond), r.errors, rel)
	}
	tw.Flush()
	fmt.Print(b.String())
	return os.WriteFile(filepath.Join(o.out, "replication.md"), []byte(b.String()), 0o644)
}
