package certs

import (
	"crypto/tls"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func testAuthority(t *testing.T) *Authority {
	t.Helper()
	a, err := NewAuthority("test CA")
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func files(dir string) Files {
	return Files{Cert: filepath.Join(dir, "api.crt"), Key: filepath.Join(dir, "api.key"), CertKey: "tls.cert_file", KeyKey: "tls.key_file"}
}

func TestLoad(t *testing.T) {
	a, other := testAuthority(t), testAuthority(t)
	now := time.Now()
	tests := []struct {
		name    string
		prepare func(t *testing.T, f Files)
		wantErr string // "" means the pair loads
	}{
		{"valid", func(t *testing.T, f Files) {}, ""},
		{"missing certificate", func(t *testing.T, f Files) { os.Remove(f.Cert) }, "tls.cert_file: \"" + "DIR/api.crt\" cannot be read"},
		{"missing key", func(t *testing.T, f Files) { os.Remove(f.Key) }, "tls.key_file: \"DIR/api.key\" does not exist"},
		{"key readable by everyone", func(t *testing.T, f Files) { os.Chmod(f.Key, 0o644) }, "tls.key_file: \"DIR/api.key\" is open to other users (mode 0644): chmod 600 or 640 it"},
		{"key of another certificate", func(t *testing.T, f Files) {
			_, k, _ := other.Issue([]string{"localhost"}, now.Add(-time.Hour), now.Add(time.Hour))
			os.WriteFile(f.Key, k, 0o600)
		}, "are not a certificate and its key"},
		{"expired", func(t *testing.T, f Files) {
			c, k, _ := a.Issue([]string{"localhost"}, now.Add(-48*time.Hour), now.Add(-24*time.Hour))
			os.WriteFile(f.Cert, c, 0o644)
			os.WriteFile(f.Key, k, 0o600)
		}, "holds a certificate that expired on"},
		{"not yet valid", func(t *testing.T, f Files) {
			c, k, _ := a.Issue([]string{"localhost"}, now.Add(24*time.Hour), now.Add(48*time.Hour))
			os.WriteFile(f.Cert, c, 0o644)
			os.WriteFile(f.Key, k, 0o600)
		}, "holds a certificate that is not valid before"},
		{"not PEM", func(t *testing.T, f Files) { os.WriteFile(f.Cert, []byte("hello"), 0o644) }, "are not a certificate and its key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			f := files(dir)
			if err := a.IssueFiles([]string{"localhost", "127.0.0.1"}, time.Hour, f.Cert, f.Key); err != nil {
				t.Fatal(err)
			}
			tt.prepare(t, f)
			_, err := Load(f, now)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Load: %v", err)
				}
				return
			}
			want := strings.ReplaceAll(tt.wantErr, "DIR", dir)
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("Load error = %v, want one containing %q", err, want)
			}
		})
	}
}

// fakeClock is a clock tests move by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func servedSerial(t *testing.T, p *Pair) string {
	t.Helper()
	c, err := p.GetCertificate(&tls.ClientHelloInfo{})
	if err != nil {
		t.Fatal(err)
	}
	return c.Leaf.SerialNumber.String()
}

func TestPairFollowsFiles(t *testing.T) {
	a := testAuthority(t)
	f := files(t.TempDir())
	if err := a.IssueFiles([]string{"localhost"}, time.Hour, f.Cert, f.Key); err != nil {
		t.Fatal(err)
	}
	clock := &fakeClock{now: time.Now()}
	p, err := New(f, nil, clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	first := servedSerial(t, p)

	// New files are seen at the first handshake a second after the
	// last look, not before.
	if err := a.IssueFiles([]string{"localhost"}, time.Hour, f.Cert, f.Key); err != nil {
		t.Fatal(err)
	}
	if got := servedSerial(t, p); got != first {
		t.Fatalf("the new files were read within a second of the last look")
	}
	clock.Add(checkEvery)
	second := servedSerial(t, p)
	if second == first {
		t.Fatalf("the new files were not read a second later")
	}

	// A bad replacement (an expired certificate) keeps the current one.
	c, k, _ := a.Issue([]string{"localhost"}, clock.Now().Add(-48*time.Hour), clock.Now().Add(-time.Hour))
	os.WriteFile(f.Cert, c, 0o644)
	os.WriteFile(f.Key, k, 0o600)
	clock.Add(checkEvery)
	if got := servedSerial(t, p); got != second {
		t.Fatalf("an expired certificate replaced the valid one")
	}
	if err := p.Reload(f); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("Reload of an expired certificate = %v, want an error saying it expired", err)
	}
	if got := servedSerial(t, p); got != second {
		t.Fatalf("a failed Reload replaced the certificate")
	}

	// A good one, by Reload, is served at once.
	if err := a.IssueFiles([]string{"localhost"}, time.Hour, f.Cert, f.Key); err != nil {
		t.Fatal(err)
	}
	if err := p.Reload(f); err != nil {
		t.Fatal(err)
	}
	if got := servedSerial(t, p); got == second {
		t.Fatalf("Reload did not serve the new certificate")
	}
}
