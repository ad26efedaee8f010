package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
)

// ErrInsecureSecret is returned by ReadSecret for a secret file that
// other users can read.
var ErrInsecureSecret = errors.New("secret file is readable by other users (chmod 600 or 640)")

// ReadSecret reads a secret from path, refusing a file that is missing,
// empty, or readable by everyone. Surrounding whitespace is trimmed.
func ReadSecret(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("reading secret: %w", err)
	}
	if fi.Mode().Perm()&0o004 != 0 {
		return nil, fmt.Errorf("reading secret %s (mode %v): %w", path, fi.Mode().Perm(), ErrInsecureSecret)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading secret: %w", err)
	}
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return nil, fmt.Errorf("reading secret %s: file is empty", path)
	}
	return b, nil
}
