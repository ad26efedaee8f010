package node

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ringfront/ringfront/internal/certs"
)

// TestConfigTLS: every bad tls input is refused at load (so by
// check-config and at start) with the key and the value at fault.
func TestConfigTLS(t *testing.T) {
	ca, err := certs.NewAuthority("test CA")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		// prepare writes the files into dir and returns the tls keys.
		prepare func(t *testing.T, dir string) string
		want    string // "" means the config loads
	}{
		{"valid", func(t *testing.T, dir string) string { return pair(t, ca, dir, time.Hour) }, ""},
		{"with a redirect listener", func(t *testing.T, dir string) string {
			return strings.Replace(pair(t, ca, dir, time.Hour), "}", `, redirect_listen: "127.0.0.1:8080"}`, 1)
		}, ""},
		{"missing certificate", func(t *testing.T, dir string) string {
			s := pair(t, ca, dir, time.Hour)
			os.Remove(filepath.Join(dir, "api.crt"))
			return s
		}, `tls.cert_file: "DIR/api.crt" cannot be read`},
		{"missing key", func(t *testing.T, dir string) string {
			s := pair(t, ca, dir, time.Hour)
			os.Remove(filepath.Join(dir, "api.key"))
			return s
		}, `tls.key_file: "DIR/api.key" does not exist`},
		{"key readable by everyone", func(t *testing.T, dir string) string {
			s := pair(t, ca, dir, time.Hour)
			os.Chmod(filepath.Join(dir, "api.key"), 0o644)
			return s
		}, `tls.key_file: "DIR/api.key" is open to other users (mode 0644): chmod 600 or 640 it`},
		{"expired certificate", func(t *testing.T, dir string) string { return pair(t, ca, dir, -time.Minute) }, `tls.cert_file: "DIR/api.crt" holds a certificate that expired on`},
		{"key without certificate", func(t *testing.T, dir string) string { return "tls: {key_file: /x}\n" }, "tls.cert_file: \"\" is required with tls.key_file"},
		{"certificate without key", func(t *testing.T, dir string) string { return "tls: {cert_file: /x}\n" }, "tls.key_file: is required"},
		{"redirect without certificate", func(t *testing.T, dir string) string { return "tls: {redirect_listen: \"127.0.0.1:8080\"}\n" }, "tls.cert_file: \"\" is required with tls.key_file or tls.redirect_listen"},
		{"redirect on the API port", func(t *testing.T, dir string) string {
			return strings.Replace(pair(t, ca, dir, time.Hour), "}", `, redirect_listen: "127.0.0.1:8081"}`, 1)
		}, `tls.redirect_listen: "127.0.0.1:8081" is also listen (127.0.0.1:8081)`},
		{"redirect not host:port", func(t *testing.T, dir string) string {
			return strings.Replace(pair(t, ca, dir, time.Hour), "}", `, redirect_listen: "nowhere"}`, 1)
		}, `tls.redirect_listen: "nowhere" is not host:port`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			_, err := load(t, base+tt.prepare(t, dir))
			want := strings.ReplaceAll(tt.want, "DIR", dir)
			switch {
			case want == "" && err != nil:
				t.Fatalf("load: %v", err)
			case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
				t.Fatalf("load error = %v, want one containing %q", err, want)
			}
		})
	}
}

// pair writes a certificate valid for valid (negative: expired that
// long ago) and its key into dir, and returns the tls config line.
func pair(t *testing.T, ca *certs.Authority, dir string, valid time.Duration) string {
	t.Helper()
	now := time.Now()
	c, k, err := ca.Issue([]string{"127.0.0.1"}, now.Add(-2*time.Hour), now.Add(valid))
	if err != nil {
		t.Fatal(err)
	}
	cf, kf := filepath.Join(dir, "api.crt"), filepath.Join(dir, "api.key")
	os.WriteFile(cf, c, 0o644)
	os.WriteFile(kf, k, 0o600)
	return "tls: {cert_file: " + cf + ", key_file: " + kf + "}\n"
}

// TestRedirect: the redirect listener sends every request to the same
// host and URL over HTTPS on the API's port, with 308 (the method and
// body are kept).
func TestRedirect(t *testing.T) {
	tests := []struct{ apiListen, host, target, want string }{
		{"0.0.0.0:8443", "feed.example.org", "/v1/users/joe/posts?limit=5", "https://feed.example.org:8443/v1/users/joe/posts?limit=5"},
		{"0.0.0.0:443", "feed.example.org:80", "/", "https://feed.example.org/"},
		{"[::]:8443", "[2001:db8::1]:80", "/healthz", "https://[2001:db8::1]:8443/healthz"},
	}
	for _, tt := range tests {
		rd, err := listenRedirect("127.0.0.1:0", tt.apiListen, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		rd.ln.Close()
		r := httptest.NewRequest("POST", "http://"+tt.host+tt.target, strings.NewReader("{}"))
		w := httptest.NewRecorder()
		rd.ServeHTTP(w, r)
		if w.Code != http.StatusPermanentRedirect || w.Header().Get("Location") != tt.want {
			t.Errorf("%s on %s = %d %s, want 308 %s", tt.target, tt.host, w.Code, w.Header().Get("Location"), tt.want)
		}
	}
}
