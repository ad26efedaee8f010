package store

import (
	"bytes"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/google/go-cmp/cmp"

	"github.com/ringfront/ringfront/appnode/feed"
)

// copyDir copies the fixture database so the test never writes to
// testdata.
func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, d.Name()), b, 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

// TestOpenPebbleV1 opens testdata/pebble-v1, a database written by
// appnode before the move to pebble v2 (commit 5e22417, pebble v1.1.5,
// format major version 1, which pebble v2 cannot read): three users,
// two follows of alice, twenty posts by alice with their inbox and
// outbox entries (ten flushed to a table, ten only in the log) and one
// hint. Open upgrades it once, in place, and every record reads back.
func TestOpenPebbleV1(t *testing.T) {
	dir := copyDir(t, "testdata/pebble-v1")
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	s, err := Open(dir, Options{Log: log})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "store upgraded from pebble v1") || !strings.Contains(logs.String(), "from_format=1") {
		t.Errorf("Open did not log the upgrade from format 1; logs:\n%s", logs.String())
	}
	check := func(s *Store) {
		t.Helper()
		base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
		for _, name := range []string{"alice", "bob", "carol"} {
			u, err := s.User(name)
			if err != nil {
				t.Fatalf("User(%s) = %v", name, err)
			}
			want := feed.User{Name: name, TokenHash: []byte("hash-" + name), Created: base}
			if diff := cmp.Diff(want, u); diff != "" {
				t.Errorf("User(%s) (-want +got):\n%s", name, diff)
			}
		}
		posts, _, err := s.Posts("alice", feed.ID{}, 100)
		if err != nil {
			t.Fatal(err)
		}
		if len(posts) != 20 {
			t.Fatalf("alice has %d posts, want 20", len(posts))
		}
		for i, p := range posts { // newest first
			n := 19 - i
			want := "post " + strings.Repeat("!", n)
			if p.Text != want || !p.Created.Equal(base.Add(time.Duration(n)*time.Minute)) {
				t.Errorf("post %d = %q at %v, want %q at %v", i, p.Text, p.Created, want, base.Add(time.Duration(n)*time.Minute))
			}
		}
		followers, err := s.ActiveFollowers("alice", 10)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]string{"bob", "carol"}, followers); diff != "" {
			t.Errorf("alice's followers (-want +got):\n%s", diff)
		}
		for _, name := range []string{"alice", "bob"} {
			if n, err := s.InboxLen(name); n != 20 || err != nil {
				t.Errorf("InboxLen(%s) = %d, %v; want 20", name, n, err)
			}
		}
		out, err := s.Outbox().Read("198.51.100.12:8081", 100)
		if err != nil || len(out) != 20 {
			t.Errorf("Outbox = %d entries, %v; want 20", len(out), err)
		}
		hints, err := s.Hints().Read("198.51.100.13:8081", 10)
		if err != nil || len(hints) != 1 || string(hints[0].Value) != `{"hint":1}` {
			t.Errorf("Hints = %q, %v; want the one hint", hints, err)
		}
		checkDigests(t, s)
	}
	check(s)
	// The upgraded database takes new writes and opens again with no
	// second upgrade.
	if err := s.CreateUser(feed.User{Name: "dave"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	desc, err := pebble.Peek(dir, vfs.Default)
	if err != nil {
		t.Fatalf("pebble v2 cannot read the upgraded database's format: %v", err)
	}
	if desc.FormatMajorVersion < pebble.FormatMinSupported {
		t.Errorf("format after the upgrade = %d, want at least %d", desc.FormatMajorVersion, pebble.FormatMinSupported)
	}
	logs.Reset()
	s, err = Open(dir, Options{Log: log})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if strings.Contains(logs.String(), "upgraded") {
		t.Errorf("second Open upgraded again; logs:\n%s", logs.String())
	}
	check(s)
	if ok, err := s.HasUser("dave"); !ok || err != nil {
		t.Errorf("HasUser(dave) after reopening = %v, %v", ok, err)
	}
}
