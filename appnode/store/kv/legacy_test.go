package kv

import (
	"log/slog"
	"path/filepath"
	"testing"
)

// TestUpgradeV1NothingToDo: a new directory, a missing one and a
// pebble v2 database are left to pebble v2.
func TestUpgradeV1NothingToDo(t *testing.T) {
	v2 := t.TempDir()
	db, err := Open(v2, Options{})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	for name, dir := range map[string]string{
		"empty":   t.TempDir(),
		"missing": filepath.Join(t.TempDir(), "none"),
		"v2":      v2,
	} {
		if from, err := upgradeV1(dir, slog.Default()); from != 0 || err != nil {
			t.Errorf("%s: upgradeV1 = %d, %v; want 0, nil", name, from, err)
		}
	}
}
