package config

import (
	"errors"
	"net/netip"
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

// envConfig has addresses of every kind and says which variables with
// its prefix are not keys.
type envConfig struct {
	Size   int            `mapstructure:"udp_size"`
	Listen string         `mapstructure:"listen"`
	Peer   netip.AddrPort `mapstructure:"peer"`
	VIPs   []netip.Prefix `mapstructure:"vips"`
	Target netip.Addr     `mapstructure:"target"`
	Admin  struct {
		Listen string `mapstructure:"listen"`
	} `mapstructure:"admin"`
}

func (c *envConfig) Validate() error {
	if c.Listen == "bad" {
		return Errorf("listen", c.Listen, "is not an address to listen on")
	}
	for i, p := range c.VIPs {
		if p.Addr().IsLoopback() {
			return Join("vips", Errorf("["+itoa(i)+"]", p, "is a loopback address"))
		}
	}
	return nil
}

func (c *envConfig) OtherEnv() []string { return []string{"TESTD_TOKEN"} }

// TestLoadBadInput: every bad value names its key, and the environment
// variable or flag it came from, with the value in words an operator
// understands; variables with the prefix that name no key are errors.
func TestLoadBadInput(t *testing.T) {
	tests := []struct {
		name  string
		body  string
		env   []string
		flags []string
		want  string // the whole error; "" for none
	}{
		{"ok", "udp_size: 1232\n", []string{"TESTD_TOKEN=abc", "OTHER_X=1", "TESTD=1"}, nil, ""},
		{"integer from the environment", "", []string{"TESTD_UDP_SIZE=abc"}, nil,
			`config: TESTD_UDP_SIZE (udp_size): "abc" is not a valid integer`},
		{"integer from the file", "udp_size: abc\n", nil, nil,
			`config: udp_size: "abc" is not a valid integer`},
		{"misspelt variable", "", []string{"TESTD_LISTNE=:53"}, nil,
			`environment: TESTD_LISTNE: no such setting (did you mean TESTD_LISTEN?); every TESTD_ variable must name a config key (TESTD_ADMIN_LISTEN for admin.listen)`},
		{"unknown variable, nothing near", "", []string{"TESTD_COLOUR=blue", "TESTD_ADMIN_LISTNE=x"}, nil,
			`environment: TESTD_ADMIN_LISTNE: no such setting (did you mean TESTD_ADMIN_LISTEN?); TESTD_COLOUR: no such setting; every TESTD_ variable must name a config key (TESTD_ADMIN_LISTEN for admin.listen)`},
		{"prefix in another case", "", []string{"testd_listen=x"}, nil, ""},
		{"prefix: no go internals", "vips: [198.51.100.310/24]\n", nil, nil,
			`config: vips[0]: "198.51.100.310/24" is not a valid IP prefix (address/length, like 198.51.100.10/24 or 2001:db8::10/64): IPv4 field has value >255`},
		{"prefix without length", "", []string{"TESTD_VIPS=198.51.100.10,198.51.100.20/24"}, nil,
			`config: TESTD_VIPS (vips[0]): "198.51.100.10" is not a valid IP prefix (address/length, like 198.51.100.10/24 or 2001:db8::10/64): the /length is missing`},
		{"address:port names the value", "peer: 198.51.100.12\n", nil, nil,
			`config: peer: "198.51.100.12" is not a valid address:port (like 198.51.100.12:7201 or [2001:db8::12]:7201)`},
		{"port out of range", "peer: 198.51.100.12:70000\n", nil, nil,
			`config: peer: "198.51.100.12:70000" is not a valid address:port (like 198.51.100.12:7201 or [2001:db8::12]:7201): invalid port "70000" parsing "198.51.100.12:70000"`},
		{"address", "", []string{"TESTD_TARGET=198.51.100"}, nil,
			`config: TESTD_TARGET (target): "198.51.100" is not a valid IP address (like 198.51.100.10 or 2001:db8::10): IPv4 address too short`},
		{"validate names the variable", "", []string{"TESTD_LISTEN=bad"}, nil,
			`TESTD_LISTEN (listen): "bad" is not an address to listen on`},
		{"validate names the list's variable", "", []string{"TESTD_VIPS=198.51.100.10/24,127.0.0.1/8"}, nil,
			`TESTD_VIPS (vips[1]): "127.0.0.1/8" is a loopback address`},
		{"validate names the flag", "", nil, []string{"--listen=bad"},
			`--listen (listen): "bad" is not an address to listen on`},
		{"validate, from the file", "listen: bad\n", nil, nil,
			`listen: "bad" is not an address to listen on`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := pflag.NewFlagSet("x", pflag.ContinueOnError)
			fs.String("listen", "", "")
			if err := fs.Parse(tt.flags); err != nil {
				t.Fatal(err)
			}
			var c envConfig
			err := Load(Options{File: writeFile(t, tt.body), EnvPrefix: "TESTD", Environ: append(tt.env, "PATH=/bin"),
				Flags: map[string]*pflag.Flag{"listen": fs.Lookup("listen")}}, &c)
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tt.want {
				t.Errorf("Load error\n got %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestEditDistance(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"LISTEN", "LISTEN", 0},
		{"LISTNE", "LISTEN", 1}, // a swap is one edit
		{"LISTN", "LISTEN", 1},
		{"LISTENS", "LISTEN", 1},
		{"COLOUR", "LISTEN", 6},
		{"", "AB", 2},
	}
	for _, tt := range tests {
		if got := editDistance(tt.a, tt.b); got != tt.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}

// TestLoadEmptyAddress: an empty address is the zero value, for
// Validate to call missing, as netip's UnmarshalText has it.
func TestLoadEmptyAddress(t *testing.T) {
	var c envConfig
	if err := Load(Options{File: writeFile(t, "peer: \"\"\ntarget: \"\"\n")}, &c); err != nil {
		t.Fatalf("Load: %v", err)
	}
	if c.Peer.IsValid() || c.Target.IsValid() {
		t.Errorf("peer %v, target %v: want zero values", c.Peer, c.Target)
	}
}
