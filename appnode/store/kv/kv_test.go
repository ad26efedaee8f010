package kv

import (
	"errors"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
)

// TestDiskStates: a full or read-only disk refuses a write before it
// starts, synced or not, and writes go through again once there is
// room; a write that fails inside pebble fails the database: that
// write, later ones and reads answer ErrFailed.
func TestDiskStates(t *testing.T) {
	var space atomic.Value
	space.Store(Space{Free: 1 << 30})
	var broken atomic.Bool
	fs := errorfs.Wrap(vfs.Default, errorfs.InjectorFunc(func(op errorfs.Op) error {
		if broken.Load() && strings.HasSuffix(op.Path, ".log") && op.Kind.ReadOrWrite() == errorfs.OpIsWrite {
			return errors.New("injected I/O error")
		}
		return nil
	}))
	db, err := Open(t.TempDir(), Options{FS: fs, Space: func(string) (Space, error) { return space.Load().(Space), nil }})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	set := func(sync bool, key string) error {
		b := db.NewBatch()
		defer b.Close()
		b.Set([]byte(key), []byte("v"))
		return db.Commit(b, sync)
	}
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
			for _, sync := range []bool{true, false} {
				if err := set(sync, "k/"+tt.name); !errors.Is(err, tt.want) {
					t.Errorf("commit (synced %v) = %v, want %v", sync, err, tt.want)
				}
			}
			if v, err := db.Get([]byte("k/" + tt.name)); v != nil || err != nil {
				t.Errorf("refused write stored %q, %v", v, err)
			}
		})
	}
	if err := set(true, "k/ok"); err != nil {
		t.Fatalf("write once the disk recovered = %v", err)
	}
	broken.Store(true)
	if err := set(true, "k/lost"); !errors.Is(err, ErrFailed) || !db.Failed() {
		t.Fatalf("write on a failing disk = %v (failed %v), want ErrFailed", err, db.Failed())
	}
	broken.Store(false)
	if err := set(true, "k/after"); !errors.Is(err, ErrFailed) {
		t.Errorf("write after the failure = %v, want ErrFailed", err)
	}
	if _, err := db.Get([]byte("k/ok")); !errors.Is(err, ErrFailed) {
		t.Errorf("read after the failure = %v, want ErrFailed", err)
	}
}
