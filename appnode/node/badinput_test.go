package node

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/ringfront/ringfront/internal/config"
)

// TestBadInput: what serve would refuse, check-config (which loads the
// same way) refuses too, and every error names the key or the
// environment variable and the value.
func TestBadInput(t *testing.T) {
	t.Setenv(config.CredentialsDirEnv, "")
	dir := t.TempDir()
	write := func(name string, mode os.FileMode) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("secret\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	key := write("cluster.key", 0o600)
	open := write("open.key", 0o644)
	file := write("a-file", 0o600)
	missing := filepath.Join(dir, "missing.key")
	body := `listen: "127.0.0.1:8081"
members: ["127.0.0.1:8081", "127.0.0.1:8082"]
data_dir: ` + filepath.Join(dir, "data") + `
cluster_secret_file: ` + key + "\n"
	tests := []struct {
		name string
		env  []string
		want string // the whole error; "" for none
	}{
		{"ok, with the client's variables", []string{"APPNODE_TOKEN=abc", "APPNODE_SERVER=127.0.0.1:8081"}, ""},
		{"secret missing", []string{"APPNODE_CLUSTER_SECRET_FILE=" + missing},
			`APPNODE_CLUSTER_SECRET_FILE (cluster_secret_file): "` + missing + `" does not exist`},
		{"secret open to others", []string{"APPNODE_CLUSTER_SECRET_FILE=" + open},
			`APPNODE_CLUSTER_SECRET_FILE (cluster_secret_file): "` + open + `" is open to other users (mode 0644): chmod 600 or 640 it`},
		{"admin token missing", []string{"APPNODE_ADMIN_TOKEN_FILE=" + missing},
			`APPNODE_ADMIN_TOKEN_FILE (admin.token_file): "` + missing + `" does not exist`},
		{"typo'd member address", []string{"APPNODE_MEMBERS=127.0.0.1:8081,127.0.0.300:8082"},
			`APPNODE_MEMBERS (members[1]): "127.0.0.300:8082" has a host that is neither an IP address nor a DNS name`},
		{"member without port", []string{"APPNODE_MEMBERS=127.0.0.1:8081,127.0.0.1"},
			`APPNODE_MEMBERS (members[1]): "127.0.0.1" is not host:port`},
		{"replicas not a number", []string{"APPNODE_REPLICAS=two"},
			`config: APPNODE_REPLICAS (replicas): "two" is not a valid integer`},
		{"misspelt variable", []string{"APPNODE_MEMBRES=127.0.0.1:8081"},
			`environment: APPNODE_MEMBRES: no such setting (did you mean APPNODE_MEMBERS?); every APPNODE_ variable must name a config key (APPNODE_ADMIN_LISTEN for admin.listen)`},
		{"data_dir is a file", []string{"APPNODE_DATA_DIR=" + file},
			`APPNODE_DATA_DIR (data_dir): "` + file + `" is a file, not a directory`},
		{"admin listen", []string{"APPNODE_ADMIN_LISTEN=localhost"},
			`APPNODE_ADMIN_LISTEN (admin.listen): "localhost" is not host:port (like 127.0.0.1:9081)`},
		{"log format", []string{"APPNODE_LOG_FORMAT=xml"},
			`APPNODE_LOG_FORMAT (log.format): "xml" is not a log format (want text or json)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "appnode.yaml")
			if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
				t.Fatal(err)
			}
			var cfg Config
			err := config.Load(config.Options{File: p, EnvPrefix: "APPNODE", Environ: tt.env}, &cfg)
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tt.want {
				t.Errorf("Load error\n got %s\nwant %s", got, tt.want)
			}
			if err == nil && string(cfg.ClusterSecret) != "secret" {
				t.Errorf("ClusterSecret = %q, want the file's", cfg.ClusterSecret)
			}
		})
	}
}
