package main

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/ringfront/ringfront/appnode/api"
	"github.com/ringfront/ringfront/appnode/client"
	"github.com/ringfront/ringfront/appnode/feed"
	"github.com/ringfront/ringfront/appnode/ring"
	"github.com/ringfront/ringfront/appnode/store"
)

// runBackup measures backup and catch-up (-backup): a 3-member cluster
// (replicas 2) whose member 1 holds -backup-posts posts (loaded into the
// stores directly, before the members start: through the API that would
// take the disk's synced-write rate, minutes per million). Then:
//
//  1. `appnode backup` of member 1 while it serves;
//  2. -late-posts more posts to member 1's users, acknowledged while it
//     is up (so it has them, but its backup does not), then as many
//     while it is stopped (kept for it as hints);
//  3. `appnode restore` of the backup into member 1's data directory,
//     and member 1 started again;
//  4. the time until it has caught up (its status says so: hints
//     handed over, anti-entropy with both others repeated until a
//     round finds nothing), and a check that every late post is read
//     from member 1 itself.
func runBackup(ctx context.Context, o options) error {
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "bench-appnode-backup-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	extra := ""
	if o.aeRate > 0 {
		extra = fmt.Sprintf("anti_entropy_rate: %d\n", o.aeRate)
	}
	c, err := newCluster(dir, 2, extra)
	if err != nil {
		return err
	}
	rg, err := ring.New(ring.Config{Members: c.members, VNodes: 128, Replicas: 2})
	if err != nil {
		return err
	}
	victim := c.members[0]
	// Users member 1 owns (so reads of them are answered by member 1
	// itself), each with postsEach posts; tokens for the ones that get
	// late posts.
	const postsEach = 1000
	nUsers := (o.backupPosts + postsEach - 1) / postsEach
	var users []string
	for i := 0; len(users) < nUsers; i++ {
		if u := fmt.Sprintf("u%d", i); rg.Owner(u) == victim {
			users = append(users, u)
		}
	}
	tokens := map[string]string{}
	t0 := time.Now()
	if err := preload(ctx, c, rg, users, postsEach, tokens); err != nil {
		return err
	}
	loaded := time.Since(t0)
	fmt.Printf("preloaded %d posts of %d users into member 1 (and their other replicas) in %.1fs\n", len(users)*postsEach, len(users), loaded.Seconds())

	for i := range c.members {
		p, err := c.startMember(o, i)
		if err != nil {
			c.stop()
			return err
		}
		c.procs = append(c.procs, p)
	}
	defer c.stop()
	for _, a := range c.admins {
		if err := waitHTTP("http://"+a+"/readyz", c.procs...); err != nil {
			return err
		}
	}
	if err := waitCaughtUp(ctx, c, 0, 5*time.Minute); err != nil {
		return err
	}
	du := func(d string) int64 {
		var n int64
		filepath.Walk(d, func(_ string, fi os.FileInfo, err error) error {
			if err == nil && !fi.IsDir() {
				n += fi.Size()
			}
			return nil
		})
		return n
	}
	dataBytes := du(c.dataDir(0))

	backupDir := filepath.Join(dir, "backup")
	t0 = time.Now()
	out, err := exec.CommandContext(ctx, o.appnode, "backup", "-c", c.configs[0], "--to", backupDir).CombinedOutput()
	backupWall := time.Since(t0)
	if err != nil {
		return fmt.Errorf("appnode backup: %v: %s", err, out)
	}
	fmt.Print(string(out))
	// Another file system (tmpfs): the checkpoint copies the sstables
	// instead of linking them.
	var copyWall time.Duration
	if shm, err := os.MkdirTemp("/dev/shm", "bench-appnode-backup-"); err == nil {
		t0 = time.Now()
		out, err := exec.CommandContext(ctx, o.appnode, "backup", "-c", c.configs[0], "--to", filepath.Join(shm, "backup")).CombinedOutput()
		copyWall = time.Since(t0)
		os.RemoveAll(shm)
		if err != nil {
			return fmt.Errorf("appnode backup to /dev/shm: %v: %s", err, out)
		}
		fmt.Print(string(out))
	}

	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 2 * o.concurrency}}
	cl, err := client.New(c.members, client.Options{HTTP: hc})
	if err != nil {
		return err
	}
	late := map[string][]feed.ID{}
	var lateMu sync.Mutex
	latePosts := func(label string) error {
		n := o.latePosts
		return parallel(ctx, n, o.concurrency, func(i int) error {
			u := users[i%len(users)%lateUsers]
			p, err := cl.Post(ctx, u, tokens[u], fmt.Sprintf("%s %d", label, i))
			if err != nil {
				return err
			}
			lateMu.Lock()
			late[u] = append(late[u], p.ID)
			lateMu.Unlock()
			return nil
		})
	}
	if err := latePosts("after the backup"); err != nil {
		return err
	}
	c.procs[0].stop()
	if err := latePosts("while member 1 is down"); err != nil {
		return err
	}
	t0 = time.Now()
	out, err = exec.CommandContext(ctx, o.appnode, "restore", "-c", c.configs[0], "--from", backupDir, "--force").CombinedOutput()
	restoreWall := time.Since(t0)
	if err != nil {
		return fmt.Errorf("appnode restore: %v: %s", err, out)
	}
	fmt.Print(string(out))
	t0 = time.Now()
	p, err := start("appnode1", filepath.Join(o.out, "appnode1-restored.log"), nil, o.appnode, "serve", "-c", c.configs[0])
	if err != nil {
		return err
	}
	c.procs[0] = p
	if err := waitHTTP("http://"+c.admins[0]+"/readyz", p); err != nil {
		return err
	}
	if err := waitCaughtUp(ctx, c, 0, 10*time.Minute); err != nil {
		return err
	}
	catchUp := time.Since(t0)
	logText, _ := os.ReadFile(filepath.Join(o.out, "appnode1-restored.log"))
	caughtUpLine := regexp.MustCompile(`(?m)^.*msg="caught up".*$`).Find(logText)

	// Every late post is on member 1 and read from it.
	missing := 0
	for u, ids := range late {
		resp, err := hc.Get("http://" + victim + "/v1/users/" + u + "/posts?limit=" + fmt.Sprint(feed.MaxPage))
		if err != nil {
			return err
		}
		var page api.PostsAnswer
		err = json.NewDecoder(resp.Body).Decode(&page)
		owner := resp.Header.Get(api.HeaderOwner)
		resp.Body.Close()
		if err != nil {
			return fmt.Errorf("reading %s via member 1: %w", u, err)
		}
		if owner != victim {
			return fmt.Errorf("%s's posts via member 1 were answered by %s", u, owner)
		}
		got := map[feed.ID]bool{}
		for _, p := range page.Posts {
			got[p.ID] = true
		}
		for _, id := range ids {
			if !got[id] {
				missing++
			}
		}
	}

	var b strings.Builder
	fmt.Fprintf(&b, "## Backup and catch-up (bench-appnode -backup, %s)\n\n", time.Now().UTC().Format(time.RFC3339))
	fmt.Fprintf(&b, "3 members, replicas 2, member 1 holding %d posts of %d users (%.0f MiB of data directory), backup on the same file system; anti_entropy_rate %s.\n\n",
		len(users)*postsEach, len(users), float64(dataBytes)/(1<<20), cmp.Or(strings.TrimSpace(strings.TrimPrefix(extra, "anti_entropy_rate: ")), "default (2000)"))
	fmt.Fprintf(&b, "| step | time |\n|---|---|\n")
	fmt.Fprintf(&b, "| `appnode backup` of the running member (wall, CLI to answer) | %.2fs |\n", backupWall.Seconds())
	if copyWall > 0 {
		fmt.Fprintf(&b, "| `appnode backup` to another file system (/dev/shm: sstables copied, not linked) | %.2fs |\n", copyWall.Seconds())
	}
	fmt.Fprintf(&b, "| `appnode restore` (copy into the data dir, new store id) | %.2fs |\n", restoreWall.Seconds())
	fmt.Fprintf(&b, "| start to caught up (%d posts missed: %d after the backup, %d while down) | %.2fs |\n",
		2*o.latePosts, o.latePosts, o.latePosts, catchUp.Seconds())
	fmt.Fprintf(&b, "\nlate posts missing from member 1 after catch-up: %d of %d\n", missing, 2*o.latePosts)
	if caughtUpLine != nil {
		fmt.Fprintf(&b, "\nmember 1's log: `%s`\n", caughtUpLine)
	}
	fmt.Print(b.String())
	if err := os.WriteFile(filepath.Join(o.out, fmt.Sprintf("backup-ae%d.md", o.aeRate)), []byte(b.String()), 0o644); err != nil {
		return err
	}
	if missing > 0 {
		return fmt.Errorf("%d late posts missing from member 1 after catch-up", missing)
	}
	return nil
}

// lateUsers is how many users get the late posts: each gets at most a
// page (feed.MaxPage) of them at the default -late-posts, so one read
// per user checks them.
const lateUsers = 200

// preload writes users and posts into the members' stores directly:
// each user into every store of its preference list, from 64
// goroutines, without a sync per write (noSyncFS), then closes the
// stores and syncs the file systems once.
func preload(ctx context.Context, c *cluster, rg *ring.Ring, users []string, postsEach int, tokens map[string]string) (err error) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	stores := map[string]*store.Store{}
	defer func() {
		for _, st := range stores {
			err = cmp.Or(err, st.Close())
		}
		syscall.Sync()
	}()
	for i, m := range c.members {
		st, err := store.Open(c.dataDir(i), store.Options{Log: log, FS: noSyncFS{vfs.Default}})
		if err != nil {
			return err
		}
		stores[m] = st
	}
	ids := feed.NewIDSource(feed.NewClock(nil), "bench-preload")
	created := time.Now().Add(-time.Hour).UTC().Truncate(time.Millisecond)
	for i, u := range users {
		tok := make([]byte, 32)
		copy(tok, fmt.Sprint("bench token ", u))
		token := base64.RawURLEncoding.EncodeToString(tok)
		if i < lateUsers {
			tokens[u] = token
		}
		h := sha256.Sum256([]byte(token))
		for _, m := range rg.Preference(nil, u) {
			if err := stores[m].CreateUser(feed.User{Name: u, TokenHash: h[:], Created: created}); err != nil {
				return err
			}
		}
	}
	var next atomic.Int64
	var firstErr error
	var mu sync.Mutex
	var wg sync.WaitGroup
	total := int64(len(users) * postsEach)
	for range 64 {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := next.Add(1) - 1
				if i >= total {
					return
				}
				u := users[i/int64(postsEach)]
				id := ids.Next()
				// About 100 characters, 80 of them random: text
				// that compresses about as little as people's.
				noise := make([]byte, 60)
				rand.Read(noise)
				text := fmt.Sprintf("post %d of %s %s", i%int64(postsEach), u, base64.StdEncoding.EncodeToString(noise))
				p := feed.Post{ID: id, Author: u, Text: text, Created: id.Time()}
				for _, m := range rg.Preference(nil, u) {
					if err := stores[m].AddPost(p); err != nil {
						mu.Lock()
						firstErr = cmp.Or(firstErr, err)
						mu.Unlock()
						return
					}
				}
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return fmt.Errorf("preloading: %w", firstErr)
	}
	return ctx.Err()
}

// waitCaughtUp waits until member i's status says it has caught up and
// holds no hints for anyone.
func waitCaughtUp(ctx context.Context, c *cluster, i int, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		resp, err := http.Get("http://" + c.admins[i] + "/v1/status")
		if err == nil {
			var st struct {
				CatchingUp bool `json:"catching_up"`
			}
			err = jsonDecode(resp, &st)
			if err == nil && !st.CatchingUp {
				return nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("member %d did not catch up within %v", i+1, limit)
}

// noSyncFS is the disk without fsync, for loading data the benchmark
// can make again: syncs are what bound a member's synced writes, and a
// million posts one synced write at a time would take many minutes.
type noSyncFS struct{ vfs.FS }

type noSyncFile struct{ vfs.File }

func (noSyncFile) Sync() error                { return nil }
func (noSyncFile) SyncData() error            { return nil }
func (noSyncFile) SyncTo(int64) (bool, error) { return true, nil }

func (fs noSyncFS) Create(name string, cat vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.Create(name, cat)
	if err != nil {
		return nil, err
	}
	return noSyncFile{f}, nil
}

func (fs noSyncFS) ReuseForWrite(oldname, newname string, cat vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.ReuseForWrite(oldname, newname, cat)
	if err != nil {
		return nil, err
	}
	return noSyncFile{f}, nil
}

func (fs noSyncFS) OpenReadWrite(name string, cat vfs.DiskWriteCategory, opts ...vfs.OpenOption) (vfs.File, error) {
	f, err := fs.FS.OpenReadWrite(name, cat, opts...)
	if err != nil {
		return nil, err
	}
	return noSyncFile{f}, nil
}
