package config

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/spf13/pflag"
)

type testConfig struct {
	Listen []string `mapstructure:"listen"`
	Admin  struct {
		Listen    string `mapstructure:"listen"`
		TokenFile string `mapstructure:"token_file" secret:"true"`
	} `mapstructure:"admin"`
	Interval time.Duration `mapstructure:"interval"`
	Optional *struct {
		Port int `mapstructure:"port"`
	} `mapstructure:"optional"`
	Items []struct {
		Name string `mapstructure:"name"`
		TTL  uint32 `mapstructure:"ttl"`
	} `mapstructure:"items"`
}

func (c *testConfig) Validate() error {
	if c.Interval == 0 {
		c.Interval = time.Second
	}
	for i, it := range c.Items {
		if it.Name == "" {
			return Join("items["+itoa(i)+"]", Missing("name"))
		}
	}
	return nil
}

func itoa(i int) string { return strconv.Itoa(i) }

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name, body, want string
	}{
		{"ok", "listen: [a]\ninterval: 2s\n", ""},
		{"unknown top key", "listne: [a]\n", "listne: unknown key"},
		{"unknown nested key", "admin: {listen: x, tokenfile: y}\n", "admin.tokenfile: unknown key"},
		{"unknown key in list", "items: [{name: a, tll: 3}]\n", "items[0].tll: unknown key"},
		{"bare number duration", "interval: 5\n", `interval: "5" is not a duration`},
		{"bad duration", "interval: fast\n", `interval: "fast" is not a duration`},
		{"bad integer", "items: [{name: a, ttl: soon}]\n", `items[0].ttl: "soon" is not a valid integer`},
		{"negative ttl", "items: [{name: a, ttl: -3}]\n", `items[0].ttl`},
		{"validate", "items: [{ttl: 3}]\n", "items[0].name: is required"},
		{"bad yaml", "listen: [a\n", "parsing config"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c testConfig
			err := Load(Options{File: writeFile(t, tt.body)}, &c)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Load: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Load error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestLoadMissingFile(t *testing.T) {
	var c testConfig
	err := Load(Options{File: "/nonexistent/c.yaml"}, &c)
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Load error = %v, want ErrNotExist", err)
	}
}

func TestLoadPrecedence(t *testing.T) {
	p := writeFile(t, "listen: [file]\nadmin: {listen: file-admin}\ninterval: 1s\n")
	fs := pflag.NewFlagSet("x", pflag.ContinueOnError)
	fs.String("admin-listen", "", "")
	fs.Duration("interval", 0, "")
	if err := fs.Parse([]string{"--interval=3s"}); err != nil {
		t.Fatal(err)
	}
	var c testConfig
	err := Load(Options{
		File:      p,
		EnvPrefix: "TESTD",
		Environ:   []string{"TESTD_ADMIN_LISTEN=env-admin", "TESTD_INTERVAL=2s", "TESTD_LISTEN=a,b", "TESTD_OPTIONAL_PORT=81"},
		Flags:     map[string]*pflag.Flag{"admin.listen": fs.Lookup("admin-listen"), "interval": fs.Lookup("interval")},
	}, &c)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"a", "b"}, c.Listen); diff != "" {
		t.Errorf("listen (-want +got):\n%s", diff)
	}
	if got, want := c.Admin.Listen, "env-admin"; got != want {
		t.Errorf("admin.listen = %q, want %q (env beats file, unset flag does not count)", got, want)
	}
	if c.Optional == nil || c.Optional.Port != 81 {
		t.Errorf("optional section from the environment = %+v, want port 81", c.Optional)
	}
	if got, want := c.Interval, 3*time.Second; got != want {
		t.Errorf("interval = %v, want %v (flag beats env)", got, want)
	}
}

func TestYAMLMasksSecrets(t *testing.T) {
	var c testConfig
	c.Admin.TokenFile = "/etc/token"
	c.Interval = 1500 * time.Millisecond
	out, err := YAML(&c)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out, "/etc/token") || !strings.Contains(out, Masked) {
		t.Errorf("secret not masked:\n%s", out)
	}
	if !strings.Contains(out, "interval: 1.5s") {
		t.Errorf("duration not rendered as Go duration:\n%s", out)
	}
}

func TestReadSecret(t *testing.T) {
	t.Setenv(CredentialsDirEnv, "")
	dir := t.TempDir()
	write := func(name, body string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	if b, err := ReadSecret(write("ok", "s3cret\n", 0o600)); err != nil || string(b) != "s3cret" {
		t.Errorf("ReadSecret(ok) = %q, %v", b, err)
	}
	if _, err := ReadSecret(write("world", "s3cret", 0o644)); !errors.Is(err, ErrInsecureSecret) {
		t.Errorf("ReadSecret(world-readable) error = %v, want ErrInsecureSecret", err)
	}
	if _, err := ReadSecret(write("empty", " \n", 0o600)); err == nil {
		t.Error("ReadSecret(empty) succeeded")
	}
	if _, err := ReadSecret(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("ReadSecret(missing) error = %v", err)
	}
}
