package store

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ringfront/ringfront/appnode/feed"
)

// TestBackupRestore: a backup of an open store holds what was written
// before it and nothing after; restored, it opens with the same records
// and a new store id. Bad targets are refused with a clear error and
// touch nothing.
func TestBackupRestore(t *testing.T) {
	dir := t.TempDir()
	s := open(t, filepath.Join(dir, "live"), Options{})
	ids := feed.NewIDSource(feed.NewClock(nil), "127.0.0.1:1")
	before := makePosts(t, s, "joe", 50, ids)
	if err := s.CreateUser(feed.User{Name: "joe", TokenHash: []byte{1}, Created: time.Unix(1, 0).UTC()}); err != nil {
		t.Fatal(err)
	}
	backup := filepath.Join(dir, "backup")
	info, err := s.Backup(backup)
	if err != nil {
		t.Fatal(err)
	}
	if info.StoreID != s.ID() || info.Files == 0 || info.Bytes == 0 {
		t.Errorf("backup info %+v", info)
	}
	makePosts(t, s, "joe", 10, ids) // after the backup
	for _, tt := range []struct{ name, dir, want string }{
		{"existing", backup, "backup directory exists"},
		{"relative", "backup2", "not an absolute path"},
		{"no parent", filepath.Join(dir, "nope", "b"), "its parent is not a directory"},
	} {
		if _, err := s.Backup(tt.dir); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("backup to %s dir = %v, want %q", tt.name, err, tt.want)
		}
	}
	// (A restore over a running member's data is refused: the daemon
	// test TestBackupRestoreDaemon; POSIX locks do not show a process
	// its own.)
	if _, err := Restore(filepath.Join(dir, "live"), filepath.Join(dir, "x"), false, Options{}); err == nil || !strings.Contains(err.Error(), "is not an appnode backup") {
		t.Errorf("restore from a non-backup = %v", err)
	}
	oldID := s.ID()
	s.Close()
	target := filepath.Join(dir, "restored")
	if err := os.MkdirAll(target, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(target, "something"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Restore(backup, target, false, Options{}); !errors.Is(err, ErrDataDirInUse) {
		t.Errorf("restore into a non-empty dir = %v, want ErrDataDirInUse", err)
	}
	if _, err := os.Stat(filepath.Join(target, "something")); err != nil {
		t.Errorf("a refused restore touched the data dir: %v", err)
	}
	ri, err := Restore(backup, target, true, Options{})
	if err != nil {
		t.Fatal(err)
	}
	r := open(t, target, Options{})
	defer r.Close()
	if r.ID() == oldID || r.ID() != ri.StoreID || ri.Backup.StoreID != oldID {
		t.Errorf("restored store id %s (reported %s), backed up %s (reported %s): want a new one", r.ID(), ri.StoreID, oldID, ri.Backup.StoreID)
	}
	got, _, err := r.Posts("joe", feed.ID{}, 100)
	if err != nil || len(got) != len(before) {
		t.Errorf("restored store has %d posts (%v), want the %d written before the backup", len(got), err, len(before))
	}
	if _, err := r.User("joe"); err != nil {
		t.Errorf("restored user: %v", err)
	}
	if _, err := os.Stat(filepath.Join(target, "something")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("forced restore kept the old contents: %v", err)
	}
}

// TestRestoreOwner: run as root, a restore gives the files the data
// directory's owner (a service's StateDirectory, owned by its user).
func TestRestoreOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: a restore changes owners only when run as root")
	}
	dir := t.TempDir()
	s := open(t, filepath.Join(dir, "live"), Options{})
	if _, err := s.Backup(filepath.Join(dir, "backup")); err != nil {
		t.Fatal(err)
	}
	s.Close()
	target := filepath.Join(dir, "data")
	const nobody = 65534
	if err := os.Mkdir(target, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(target, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	if _, err := Restore(filepath.Join(dir, "backup"), target, false, Options{}); err != nil {
		t.Fatal(err)
	}
	err := filepath.Walk(target, func(path string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if st := fi.Sys().(*syscall.Stat_t); st.Uid != nobody || st.Gid != nobody {
			t.Errorf("%s is owned by %d:%d, want the data directory's %d:%d", path, st.Uid, st.Gid, nobody, nobody)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestUserRecordCompatible: a user record stored before token rotation
// existed (no tokens field) loads, and merges with a rotated copy of
// itself into the rotated record.
func TestUserRecordCompatible(t *testing.T) {
	s := open(t, t.TempDir(), Options{})
	defer s.Close()
	old := `{"name":"joe","token_hash":"AQID","created":"2024-01-02T03:04:05Z"}`
	func() {
		defer s.users.lock("joe")()
		if err := s.write("joe", userKey("joe"), nil, []byte(old)); err != nil {
			t.Fatal(err)
		}
	}()
	u, err := s.User("joe")
	if err != nil || u.TokenState([]byte{1, 2, 3}) != feed.TokenLive {
		t.Fatalf("old record loads as %+v, %v", u, err)
	}
	if _, changed, err := s.MergeUser(u); changed || err != nil {
		t.Errorf("merging an old record with itself: changed %v, %v", changed, err)
	}
	rotated, err := u.Rotate([]byte{9}, feed.Timestamp(uint64(u.Created.UnixMilli()+5)<<16), []byte{1, 2, 3}, feed.RevokeCurrent)
	if err != nil {
		t.Fatal(err)
	}
	got, changed, err := s.MergeUser(rotated)
	if err != nil || !changed || got.TokenState([]byte{1, 2, 3}) != feed.TokenRevoked || got.TokenState([]byte{9}) != feed.TokenLive {
		t.Errorf("merging a rotated copy into an old record: %+v changed %v, %v", got, changed, err)
	}
}
