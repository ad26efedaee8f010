//go:build chaos

package node

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestWallClockOffset: a chaos build follows the file's offset as it
// changes, treats a missing file as 0 and keeps the last offset over a
// file it cannot parse.
func TestWallClockOffset(t *testing.T) {
	path := filepath.Join(t.TempDir(), "offset")
	t.Setenv(ChaosClockEnv, path)
	now := wallClock()
	if now == nil {
		t.Fatal("wallClock() is nil with the environment variable set")
	}
	near := func(want time.Duration) {
		t.Helper()
		// Wait out the re-read interval so the file is read again.
		time.Sleep(clockReread + 10*time.Millisecond)
		got := now().Sub(time.Now())
		if d := got - want; d < -time.Second || d > time.Second {
			t.Fatalf("clock offset %v, want about %v", got, want)
		}
	}
	near(0) // no file yet
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("60s\n")
	near(60 * time.Second)
	write("-1m")
	near(-60 * time.Second)
	write("sixty")
	near(-60 * time.Second)
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	near(0)
	t.Setenv(ChaosClockEnv, "")
	if wallClock() != nil {
		t.Fatal("wallClock() is not nil without the environment variable")
	}
}
