package daemon

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ringfront/ringfront/internal/config"
)

func TestAdmin(t *testing.T) {
	for _, token := range []string{"", "s3cret"} {
		t.Run("token="+token, func(t *testing.T) {
			a := NewAdmin([]byte(token))
			a.Handle("GET /v1/thing", func(w http.ResponseWriter, r *http.Request) {
				WriteJSON(w, http.StatusOK, map[string]int{"n": 1})
			})
			if err := a.Listen("127.0.0.1:0"); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(t.Context())
			done := make(chan error)
			go func() { done <- a.Serve(ctx) }()
			defer func() { cancel(); <-done }()
			addr := a.Addr().String()

			get := func(path string) int {
				resp, err := http.Get("http://" + addr + path)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				return resp.StatusCode
			}
			if got := get("/healthz"); got != 200 {
				t.Errorf("/healthz = %d", got)
			}
			if got := get("/readyz"); got != 503 {
				t.Errorf("/readyz before ready = %d, want 503", got)
			}
			a.SetReady(true)
			if got := get("/readyz"); got != 200 {
				t.Errorf("/readyz when ready = %d", got)
			}
			if got := get("/metrics"); got != 200 {
				t.Errorf("/metrics = %d", got)
			}
			var out map[string]int
			err := AdminRequest(ctx, "GET", addr, []byte(token), "/v1/thing", &out)
			if err != nil || out["n"] != 1 {
				t.Errorf("AdminRequest with right token = %v, %v", out, err)
			}
			err = AdminRequest(ctx, "GET", addr, []byte("wrong"), "/v1/thing", &out)
			if token != "" && (err == nil || !strings.Contains(err.Error(), "admin token")) {
				t.Errorf("AdminRequest with wrong token = %v, want a token error", err)
			}
		})
	}
}

func testContext(t *testing.T) (context.Context, context.CancelFunc) {
	return context.WithCancel(t.Context())
}

// TestAdminConfigValidate: a listen address that is no host:port and a
// token serve could not read are refused by validation (so by
// check-config), naming the key and the value.
func TestAdminConfigValidate(t *testing.T) {
	t.Setenv(config.CredentialsDirEnv, "")
	dir := t.TempDir()
	tok := filepath.Join(dir, "admin.token")
	if err := os.WriteFile(tok, []byte("t0ken\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	open := filepath.Join(dir, "open.token")
	if err := os.WriteFile(open, []byte("t0ken\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(open, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		in   AdminConfig
		want string // error; "" for none
	}{
		{"default", AdminConfig{}, ""},
		{"token", AdminConfig{Listen: "127.0.0.1:0", TokenFile: tok}, ""},
		{"no port", AdminConfig{Listen: "127.0.0.1"}, `listen: "127.0.0.1" is not host:port (like 127.0.0.1:9081)`},
		{"bad port", AdminConfig{Listen: "127.0.0.1:http"}, `listen: "127.0.0.1:http" has no valid port (0 to 65535)`},
		{"port too big", AdminConfig{Listen: "127.0.0.1:90810"}, `listen: "127.0.0.1:90810" has no valid port (0 to 65535)`},
		{"token missing", AdminConfig{TokenFile: filepath.Join(dir, "nope")}, `token_file: "` + dir + `/nope" does not exist`},
		{"token open", AdminConfig{TokenFile: open}, `token_file: "` + open + `" is open to other users (mode 0644): chmod 600 or 640 it`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.in
			err := c.Validate("127.0.0.1:9081")
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tt.want {
				t.Fatalf("Validate error\n got %s\nwant %s", got, tt.want)
			}
			if err == nil && c.TokenFile != "" && string(c.Token) != "t0ken" {
				t.Errorf("Token = %q, want the file's", c.Token)
			}
			if tt.in.Listen == "" && c.Listen != "127.0.0.1:9081" {
				t.Errorf("Listen = %q, want the default", c.Listen)
			}
		})
	}
}

func TestLogConfigValidate(t *testing.T) {
	for _, tt := range []struct {
		in   LogConfig
		want string
	}{
		{LogConfig{}, ""},
		{LogConfig{Format: "json", Level: "debug"}, ""},
		{LogConfig{Format: "xml"}, `format: "xml" is not a log format (want text or json)`},
		{LogConfig{Level: "loud"}, `level: "loud" is not a log level (want debug, info, warn or error)`},
	} {
		err := tt.in.Validate()
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != tt.want {
			t.Errorf("Validate(%+v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
