package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestReadSecretCredentials: under systemd the secret comes from
// $CREDENTIALS_DIRECTORY (named like the file, or FOLDER_FILE for a
// folder passed whole), else from the configured path.
func TestReadSecretCredentials(t *testing.T) {
	etc := t.TempDir()
	creds := t.TempDir()
	put := func(path, body string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(body), 0o400); err != nil {
			t.Fatal(err)
		}
	}
	put(filepath.Join(etc, "cluster.key"), "on disk")
	put(filepath.Join(etc, "vipwatch", "heartbeat.key"), "on disk too")
	put(filepath.Join(etc, "dnslb", "xfr.key"), "disk only")
	put(filepath.Join(creds, "cluster.key"), "credential by file name\n")
	put(filepath.Join(creds, "vipwatch_heartbeat.key"), "credential by folder_file")
	tests := []struct {
		name, credDir, path, want string
	}{
		{"no systemd", "", filepath.Join(etc, "cluster.key"), "on disk"},
		{"credential named like the file", creds, filepath.Join(etc, "cluster.key"), "credential by file name"},
		{"file of a folder passed whole", creds, filepath.Join(etc, "vipwatch", "heartbeat.key"), "credential by folder_file"},
		{"no credential: the path", creds, filepath.Join(etc, "dnslb", "xfr.key"), "disk only"},
		{"folder passed whole, no systemd", "", filepath.Join(etc, "vipwatch", "heartbeat.key"), "on disk too"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(CredentialsDirEnv, tt.credDir)
			got, err := ReadSecret(tt.path)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("ReadSecret(%s) = %q, want %q", tt.path, got, tt.want)
			}
		})
	}
	t.Run("missing everywhere", func(t *testing.T) {
		t.Setenv(CredentialsDirEnv, creds)
		_, err := ReadSecret(filepath.Join(etc, "admin.token"))
		if !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("ReadSecret(missing) = %v, want ErrNotExist", err)
		}
	})
}

func TestCredentialHint(t *testing.T) {
	denied := fmt.Errorf("open /etc/ringfront/cluster.key: %w", fs.ErrPermission)
	t.Setenv("INVOCATION_ID", "")
	if h := credentialHint("/etc/ringfront/cluster.key", denied); h != "" {
		t.Errorf("hint outside systemd = %q, want none", h)
	}
	t.Setenv("INVOCATION_ID", "0123")
	if h := credentialHint("/etc/ringfront/cluster.key", denied); !strings.Contains(h, "LoadCredential=") {
		t.Errorf("hint under systemd = %q, want one naming LoadCredential=", h)
	}
	if h := credentialHint("/etc/ringfront/cluster.key", fs.ErrNotExist); h != "" {
		t.Errorf("hint for a missing file = %q, want none", h)
	}
}

// TestSecret: a secret that serve would refuse is a *FieldError naming
// the key, the path and what to do.
func TestSecret(t *testing.T) {
	t.Setenv(CredentialsDirEnv, "")
	t.Setenv("INVOCATION_ID", "")
	dir := t.TempDir()
	write := func(name, body string, mode os.FileMode) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good", "s3cret\n", 0o640)
	tests := []struct {
		name, path, want string
	}{
		{"ok", good, ""},
		{"missing", filepath.Join(dir, "missing"), `secret_file: "` + dir + `/missing" does not exist`},
		{"world-readable", write("open", "s3cret", 0o644), `secret_file: "` + dir + `/open" is open to other users (mode 0644): chmod 600 or 640 it`},
		{"world-writable", write("writable", "s3cret", 0o602), `secret_file: "` + dir + `/writable" is open to other users (mode 0602): chmod 600 or 640 it`},
		{"empty", write("empty", " \n", 0o600), `secret_file: "` + dir + `/empty" is empty`},
		{"a folder", dir, `secret_file: "` + dir + `" is not a file`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := Secret("secret_file", tt.path)
			if tt.want == "" {
				if err != nil || string(b) != "s3cret" {
					t.Fatalf("Secret = %q, %v", b, err)
				}
				return
			}
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Key != "secret_file" {
				t.Fatalf("Secret error = %v, want a *FieldError for secret_file", err)
			}
			if !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("Secret error\n got %v\nwant %s", err, tt.want)
			}
		})
	}
	if os.Geteuid() != 0 {
		p := write("unreadable", "s3cret", 0o000)
		if _, err := Secret("secret_file", p); err == nil || !strings.Contains(err.Error(), "cannot be read by this user (permission denied)") {
			t.Errorf("Secret(unreadable) = %v", err)
		}
	}
}
