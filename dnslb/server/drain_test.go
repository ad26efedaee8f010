package server

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/ringfront/ringfront/dnslb/state"
	"github.com/ringfront/ringfront/internal/daemon"
)

// startOnce starts a server on the config at path and returns it with a
// stop function; Start's error is returned rather than failing.
func startOnce(t *testing.T, path string) (*testServer, func(), error) {
	t.Helper()
	load := loadFile(path)
	cfg, err := load()
	if err != nil {
		t.Fatal(err)
	}
	srv := mustOpen(t, cfg, Options{Load: load})
	ctx, cancel := context.WithCancel(context.Background())
	if err := srv.Start(ctx); err != nil {
		cancel()
		return nil, nil, err
	}
	stop := func() { cancel(); srv.Wait() }
	return &testServer{Server: srv, udp: srv.UDPAddrs()[0], tcp: srv.TCPAddrs()[0], admin: srv.AdminAddr(), cfgPath: path}, stop, nil
}

// writeStateConfig writes dir/dnslb.yaml for targets ts with state_dir
// stateDir and returns its path.
func writeStateConfig(t *testing.T, dir string, ts []*target, stateDir string) string {
	t.Helper()
	path := filepath.Join(dir, "dnslb.yaml")
	writeConfig(t, path, ts, "")
	b, _ := os.ReadFile(path)
	if err := os.WriteFile(path, append([]byte("state_dir: "+stateDir+"\n"), b...), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// A drain is kept in the state directory: after a restart the target is
// still out, from the first answer on, and status says who drained it,
// since when and why.
func TestDrainSurvivesRestart(t *testing.T) {
	ts := startTargets(t, 2)
	dir := t.TempDir()
	stateDir := filepath.Join(dir, "state")
	path := writeStateConfig(t, dir, ts, stateDir)

	s, stop, err := startOnce(t, path)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	var st TargetStatus
	before := time.Now().Add(-time.Second)
	if err := daemon.AdminRequest(ctx, "POST", s.admin, nil, "/v1/targets/www.example.org./127.0.0.21/drain?by=alice%40ops1&reason=kernel+upgrade", &st); err != nil {
		t.Fatal(err)
	}
	if !st.Drained || st.DrainedBy != "alice@ops1 (127.0.0.1)" || st.DrainReason != "kernel upgrade" || st.DrainedSince.Before(before) {
		t.Errorf("after drain: %+v", st)
	}
	stop()

	s, stop, err = startOnce(t, path)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	// The very first answer leaves the drained target out.
	if got := answered(ask(t, "udp", s.udp, "www.example.org.", dns.TypeA)); !slices.Equal([]string{"127.0.0.22"}, got) {
		t.Errorf("first answer after restart = %v, want the drained .21 left out", got)
	}
	var list []TargetStatus
	if err := daemon.AdminRequest(ctx, "GET", s.admin, nil, "/v1/targets", &list); err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(list, func(t TargetStatus) bool { return t.Address == "127.0.0.21" })
	if i < 0 || !list[i].Drained || list[i].DrainedBy != st.DrainedBy || !list[i].DrainedSince.Equal(st.DrainedSince) || list[i].DrainReason != "kernel upgrade" {
		t.Errorf("status after restart: %+v, want %+v", list, st)
	}

	// Undrain is kept too; a drain without "by" names the address.
	if err := daemon.AdminRequest(ctx, "POST", s.admin, nil, "/v1/targets/www.example.org./127.0.0.21/undrain", nil); err != nil {
		t.Fatal(err)
	}
	var plain TargetStatus
	if err := daemon.AdminRequest(ctx, "POST", s.admin, nil, "/v1/targets/www.example.org./127.0.0.22/drain", &plain); err != nil {
		t.Fatal(err)
	}
	if plain.DrainedBy != "127.0.0.1" || plain.DrainReason != "" {
		t.Errorf("drain without by or reason: %+v", plain)
	}
	drains, err := state.Open(stateDir).Load(func(s, a string) (string, error) { return s + "/" + a, nil })
	if err != nil || len(drains) != 1 || drains["www.example.org./127.0.0.22"].By != "127.0.0.1" {
		t.Errorf("state file holds %+v, %v", drains, err)
	}

	// A reload that removes the target drops its drain from the file.
	writeStateConfig(t, dir, ts[:1], stateDir)
	if err := daemon.AdminRequest(ctx, "POST", s.admin, nil, "/v1/reload", nil); err != nil {
		t.Fatal(err)
	}
	drains, err = state.Open(stateDir).Load(func(s, a string) (string, error) { return s + "/" + a, nil })
	if err != nil || len(drains) != 0 {
		t.Errorf("after the target left the config the state file holds %+v, %v", drains, err)
	}
}

// A state file that cannot be parsed stops the start with an error that
// says what to do; it is never silently reset.
func TestCorruptStateFileRefusesStart(t *testing.T) {
	ts := startTargets(t, 1)
	dir := t.TempDir()
	path := writeStateConfig(t, dir, ts, dir)
	corrupt := `{"version": 1, "drains": [{"service": "www.example.org.", "addr`
	os.WriteFile(filepath.Join(dir, state.FileName), []byte(corrupt), 0o600)
	_, _, err := startOnce(t, path)
	if err == nil || !strings.Contains(err.Error(), "admin-state.json is corrupt") || !strings.Contains(err.Error(), "move it away") {
		t.Fatalf("start with a corrupt state file: %v", err)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, state.FileName)); string(got) != corrupt {
		t.Errorf("the corrupt file was changed to %q", got)
	}
}

// A drain that cannot be saved is refused: it would not survive a
// restart, and the operator must know.
func TestDrainNotSavedIsRefused(t *testing.T) {
	ts := startTargets(t, 2)
	dir := t.TempDir()
	stateDir := filepath.Join(dir, "state")
	path := writeStateConfig(t, dir, ts, stateDir)
	s, stop, err := startOnce(t, path)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	// The state directory turns into a file: nothing can be written.
	os.RemoveAll(stateDir)
	os.WriteFile(stateDir, nil, 0o600)
	err = daemon.AdminRequest(t.Context(), "POST", s.admin, nil, "/v1/targets/www.example.org./127.0.0.21/drain", nil)
	if err == nil || !strings.Contains(err.Error(), "not changed, because it could not be saved") {
		t.Errorf("drain with an unwritable state directory: %v", err)
	}
	if got := answered(ask(t, "udp", s.udp, "www.example.org.", dns.TypeA)); len(got) != 2 {
		t.Errorf("answer = %v, want both targets (the drain was refused)", got)
	}
}
