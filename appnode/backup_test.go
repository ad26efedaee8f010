package main

import (
	"fmt"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ringfront/ringfront/appnode/api"
	"github.com/ringfront/ringfront/appnode/feed"
)

// TestBackupRestoreDaemon: a member of three daemons is backed up while
// it serves (appnode backup, through its admin API); more posts are
// acknowledged, a user is created; the member is killed and restored
// from the backup (appnode restore), with a new store id, and started
// again. Once it has caught up, every acknowledged post of the users it
// owns is read from it, as their owner. Bad targets are refused with a
// clear error.
func TestBackupRestoreDaemon(t *testing.T) {
	cl := startDaemons(t, 3, nil)
	hc := &http.Client{Timeout: 5 * time.Second}
	victim := cl.ds[2]
	rg := cl.ring(2)
	var users []string
	for i := 0; len(users) < 4 && i < 10000; i++ {
		if u := fmt.Sprintf("b%d", i); rg.Owner(u) == victim.addr {
			users = append(users, u)
		}
	}
	tokens := map[string]string{}
	acked := map[string][]feed.ID{}
	write := func(label string, n int) {
		for _, u := range users {
			for i := range n {
				p, err := post(hc, cl.ds[i%3], u, tokens[u], fmt.Sprint(label, " ", i))
				if err != nil {
					t.Fatalf("%s post %d of %s: %v", label, i, u, err)
				}
				acked[u] = append(acked[u], p.ID)
			}
		}
	}
	for _, u := range users[:3] {
		tokens[u] = cl.createUser(hc, cl.ds[0], u)
	}
	users = users[:3]
	write("before", 20)

	backup := filepath.Join(cl.dir, "backup")
	out, err := run(t, "backup", "-c", victim.cfg, "--to", backup)
	if err != nil {
		t.Fatalf("backup: %v", err)
	}
	m := regexp.MustCompile(`backed up store (\S+) into `).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("backup said %q", out)
	}
	backedUp := m[1]
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"backup", "-c", victim.cfg, "--to", backup}, "backup directory exists"},
		{[]string{"backup", "-c", victim.cfg}, "--to"},
		{[]string{"restore", "-c", victim.cfg, "--from", backup, "--force"}, "another appnode holds this database"},
		{[]string{"restore", "-c", victim.cfg, "--from", cl.dir}, "is not an appnode backup"},
	} {
		if out, err := run(t, tt.args...); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%v = %q, %v; want an error with %q", tt.args, out, err, tt.want)
		}
	}

	// After the backup: more posts, and a new user.
	late := fmt.Sprintf("late%d", 0)
	for i := 0; rg.Owner(late) != victim.addr; i++ {
		late = fmt.Sprintf("late%d", i)
	}
	tokens[late] = cl.createUser(hc, cl.ds[0], late)
	users = append(users, late)
	write("after", 10)

	victim.kill()
	if _, err := run(t, "restore", "-c", victim.cfg, "--from", backup); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("restore over the old data without --force = %v, want refused", err)
	}
	out, err = run(t, "restore", "-c", victim.cfg, "--from", backup, "--force")
	if err != nil {
		t.Fatalf("restore: %v", err)
	}
	m = regexp.MustCompile(`new store id (\S+)`).FindStringSubmatch(out)
	if m == nil || m[1] == backedUp {
		t.Errorf("restore said %q: want a new store id (backed up %s)", out, backedUp)
	}
	restarted := time.Now()
	victim.start(t)
	cl.waitSettled(30 * time.Second) // alive to all, caught up
	caughtUp := time.Since(restarted)
	for _, u := range users {
		got, err := allPosts(hc, victim.addr, u)
		if err != nil {
			t.Fatal(err)
		}
		missing := 0
		for _, id := range acked[u] {
			if !got[id] {
				missing++
			}
		}
		if missing > 0 {
			t.Errorf("%s: %d of %d acknowledged posts missing via the restored member", u, missing, len(acked[u]))
		}
		resp, err := hc.Get("http://" + victim.addr + "/v1/users/" + u + "/posts")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if o := resp.Header.Get(api.HeaderOwner); o != victim.addr {
			t.Errorf("%s's posts via the restored member answered by %s, want the member itself", u, o)
		}
	}
	t.Logf("restored member caught up and serving %v after its start", caughtUp.Round(time.Millisecond))
}
