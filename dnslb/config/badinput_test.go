package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	iconfig "github.com/ringfront/ringfront/internal/config"
)

// TestBadInput: what serve would refuse, check-config (which loads the
// same way) refuses too, and every error names the key or the
// environment variable and the value.
func TestBadInput(t *testing.T) {
	t.Setenv(iconfig.CredentialsDirEnv, "")
	dir := t.TempDir()
	secret := func(name, body string, mode os.FileMode) string {
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
	cookie := secret("cookie", "00112233445566778899aabbccddeeff\n", 0o600)
	openCookie := secret("open-cookie", "00112233445566778899aabbccddeeff\n", 0o644)
	tsig := secret("xfr.key", "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0Cg==\n", 0o640)
	token := secret("admin.token", "t0ken\n", 0o600)
	missing := filepath.Join(dir, "missing")
	withXFR := func(keyFile, address string) string {
		return "tsig_keys: [{name: xfr, secret_file: " + keyFile + "}]\n" +
			strings.Replace(goodZone, "    services:\n", "    secondaries: [{address: \""+address+"\", tsig_key: xfr}]\n    services:\n", 1)
	}
	tests := []struct {
		name string
		body string
		env  []string
		want string // the whole error; "" for none
	}{
		{"ok", "cookie_secret_file: " + cookie + "\nadmin: {token_file: " + token + "}\n" + withXFR(tsig, "198.51.100.53"), nil, ""},
		{"udp size from the environment", goodZone, []string{"DNSLB_UDP_SIZE=abc"},
			`config: DNSLB_UDP_SIZE (udp_size): "abc" is not a valid integer`},
		{"udp size out of range from the environment", goodZone, []string{"DNSLB_UDP_SIZE=100"},
			`DNSLB_UDP_SIZE (udp_size): "100" must be between 512 and 65535`},
		{"misspelt variable", goodZone, []string{"DNSLB_LISTNE=127.0.0.1:53"},
			`environment: DNSLB_LISTNE: no such setting (did you mean DNSLB_LISTEN?); every DNSLB_ variable must name a config key (DNSLB_ADMIN_LISTEN for admin.listen)`},
		{"listen port", goodZone, []string{"DNSLB_LISTEN=127.0.0.1:53,127.0.0.1:dns"},
			`DNSLB_LISTEN (listen[1]): "127.0.0.1:dns" has no valid port (0 to 65535)`},
		{"admin listen", goodZone, []string{"DNSLB_ADMIN_LISTEN=localhost"},
			`DNSLB_ADMIN_LISTEN (admin.listen): "localhost" is not host:port (like 127.0.0.1:9081)`},
		{"cookie secret missing", "cookie_secret_file: " + missing + "\n" + goodZone, nil,
			`cookie_secret_file: "` + missing + `" does not exist`},
		{"cookie secret open", "cookie_secret_file: " + openCookie + "\n" + goodZone, nil,
			`cookie_secret_file: "` + openCookie + `" is open to other users (mode 0644): chmod 600 or 640 it`},
		{"tsig secret missing", withXFR(missing, "198.51.100.53"), nil,
			`tsig_keys[0].secret_file: "` + missing + `" does not exist`},
		{"admin token missing", goodZone, []string{"DNSLB_ADMIN_TOKEN_FILE=" + missing},
			`DNSLB_ADMIN_TOKEN_FILE (admin.token_file): "` + missing + `" does not exist`},
		{"secondary address", withXFR(tsig, "198.51.100.353"), nil,
			`zones[0].secondaries[0].address: "198.51.100.353" is not an IP address with an optional port (like 198.51.100.53 or 198.51.100.53:53)`},
		{"log level", goodZone, []string{"DNSLB_LOG_LEVEL=loud"},
			`DNSLB_LOG_LEVEL (log.level): "loud" is not a log level (want debug, info, warn or error)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "dnslb.yaml")
			if err := os.WriteFile(p, []byte(tt.body), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := Load(iconfig.Options{File: p, EnvPrefix: EnvPrefix, Environ: tt.env})
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
