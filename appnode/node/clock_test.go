//go:build !chaos

package node

import (
	"os"
	"path/filepath"
	"testing"
)

// TestWallClockNotShiftable: a production build ignores the chaos
// clock file, whatever the environment says.
func TestWallClockNotShiftable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "offset")
	if err := os.WriteFile(path, []byte("60s"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv(ChaosClockEnv, path)
	if wallClock() != nil {
		t.Fatal("wallClock() is not nil in a build without -tags chaos: the member's clock could be shifted")
	}
}
