package config

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// ErrInsecureSecret is returned by ReadSecret for a secret file that
// other users can read or write.
var ErrInsecureSecret = errors.New("secret file is open to other users (chmod 600 or 640)")

// ErrNotFile is returned by ReadSecret for a path that is a folder or
// anything else but a file.
var ErrNotFile = errors.New("not a file")

// ErrEmptySecret is returned by ReadSecret for a secret file that holds
// nothing but whitespace.
var ErrEmptySecret = errors.New("secret file is empty")

// CredentialsDirEnv is the variable in which systemd names the folder of
// the credentials it passes to a service (LoadCredential=).
const CredentialsDirEnv = "CREDENTIALS_DIRECTORY"

// ReadSecret reads the secret configured at path, refusing one that is
// missing, empty, or readable by everyone. Surrounding whitespace is
// trimmed.
//
// Under systemd, when $CREDENTIALS_DIRECTORY is set, the secret comes
// from the credential that carries path's file, if there is one: the
// credential named like the file (LoadCredential=vipwatch.key:/etc/
// ringfront/vipwatch.key), or named FOLDER_FILE, which is what systemd
// calls each file of a folder passed whole (LoadCredential=vipwatch:/etc/
// ringfront/vipwatch hands /etc/ringfront/vipwatch/heartbeat.key over as
// vipwatch_heartbeat.key). That is how a secret that only root can read
// reaches a service running as a DynamicUser. Without such a credential
// the secret is read from path itself.
func ReadSecret(path string) ([]byte, error) {
	src := CredentialPath(path)
	fi, err := os.Stat(src)
	if err != nil {
		return nil, fmt.Errorf("reading secret: %w%s", err, credentialHint(path, err))
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("reading secret %s: %w", src, ErrNotFile)
	}
	if fi.Mode().Perm()&0o007 != 0 {
		return nil, fmt.Errorf("reading secret %s (mode %v): %w", src, fi.Mode().Perm(), ErrInsecureSecret)
	}
	b, err := os.ReadFile(src)
	if err != nil {
		return nil, fmt.Errorf("reading secret: %w%s", err, credentialHint(path, err))
	}
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return nil, fmt.Errorf("reading secret %s: %w", src, ErrEmptySecret)
	}
	return b, nil
}

// Secret reads the secret that the config key (a *_file key) names,
// as ReadSecret does, and reports what is wrong with it as a
// *FieldError an operator can act on: the key, the path, and what to
// do. Every daemon's Validate reads its secrets with it, so that
// check-config refuses what serve would.
func Secret(key, path string) ([]byte, error) {
	b, err := ReadSecret(path)
	if err == nil {
		return b, nil
	}
	var msg string
	switch {
	case errors.Is(err, fs.ErrNotExist):
		msg = "does not exist"
	case errors.Is(err, fs.ErrPermission):
		msg = "cannot be read by this user (permission denied)" + credentialHint(path, err)
	case errors.Is(err, ErrInsecureSecret):
		mode := "?"
		if fi, serr := os.Stat(path); serr == nil {
			mode = fmt.Sprintf("%04o", fi.Mode().Perm())
		}
		msg = fmt.Sprintf("is open to other users (mode %s): chmod 600 or 640 it", mode)
	case errors.Is(err, ErrNotFile):
		msg = "is not a file"
	case errors.Is(err, ErrEmptySecret):
		msg = "is empty"
	default:
		msg = "cannot be read: " + err.Error()
	}
	return nil, Errorf(key, path, "%s", msg)
}

// CredentialPath is where a file configured at path is read: the
// systemd credential that carries it (see ReadSecret), or path itself.
// Files that are not secrets (a TLS certificate kept beside its key)
// are found the same way.
func CredentialPath(path string) string {
	if dir := os.Getenv(CredentialsDirEnv); dir != "" {
		if cred, ok := credential(dir, path); ok {
			return cred
		}
	}
	return path
}

// credential finds the credential in dir that carries the file at path.
func credential(dir, path string) (string, bool) {
	file := filepath.Base(path)
	folder := filepath.Base(filepath.Dir(path))
	for _, name := range []string{file, folder + "_" + file} {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			return p, true
		}
	}
	return "", false
}

// credentialHint explains a secret that a systemd service (which has
// $INVOCATION_ID) is not allowed to read.
func credentialHint(path string, err error) string {
	if !errors.Is(err, fs.ErrPermission) || os.Getenv("INVOCATION_ID") == "" {
		return ""
	}
	return fmt.Sprintf(" (a service reads a root-only secret as a systemd credential: pass %s with LoadCredential=, or keep it in the folder the unit passes)", path)
}
