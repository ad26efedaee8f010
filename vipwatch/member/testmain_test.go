package member

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// testSecretFile holds testKey; TestMain writes it, since Validate reads
// the secret as serve does.
var testSecretFile string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "vipwatch-member")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	testSecretFile = filepath.Join(dir, "vipwatch.key")
	if err := os.WriteFile(testSecretFile, testKey, 0o600); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// openSecret writes a key file that everyone may read.
func openSecret(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "open.key")
	if err := os.WriteFile(p, testKey, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
