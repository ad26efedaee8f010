package daemon

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/spf13/cobra"
)

// testStatus is a daemon's status answer in these tests.
type testStatus struct {
	Node  string `json:"node"`
	State string `json:"state"`
}

// fakeDaemon is an admin API with a status, and a reload that fails
// when refuse is set.
type fakeDaemon struct {
	addr    string
	reloads atomic.Int32
	refuse  atomic.Bool
}

func startFake(t *testing.T, token string) *fakeDaemon {
	t.Helper()
	f := &fakeDaemon{}
	a := NewAdmin([]byte(token))
	a.Handle("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		WriteJSON(w, http.StatusOK, testStatus{Node: "fe1", State: "running"})
	})
	log := slog.New(slog.DiscardHandler)
	a.HandleReload(log, NewNotifier(log), func(context.Context) error {
		if f.refuse.Load() {
			return errors.New(`routing: "sideways" is not forward or redirect`)
		}
		f.reloads.Add(1)
		return nil
	})
	if err := a.Listen("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	f.addr = a.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- a.Serve(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return f
}

// testCLI is a daemon's CLI with status and reload; its config's admin
// section is admin (or the error loadErr).
func testCLI(configFile string, admin AdminConfig, loadErr error) *cobra.Command {
	root := &cobra.Command{Use: "testd", SilenceUsage: true, SilenceErrors: true}
	target := AdminTarget{
		Program: "testd", Default: "127.0.0.1:1", ConfigFile: func() string { return configFile },
		Load: func(*cobra.Command) (AdminConfig, error) { return admin, loadErr },
	}
	status := StatusCommand(target, "status", func(w io.Writer, st testStatus) {
		fmt.Fprintf(w, "node %s  state %s\n", st.Node, st.State)
	})
	root.AddCommand(status, ReloadCommand(target, 5*time.Second))
	return root
}

func runCLI(root *cobra.Command, args ...string) (string, error) {
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), err
}

func writeFile(t *testing.T, name, body string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(body), mode); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestStatusAndReload: status prints the table or, with --json, the
// admin API's JSON; reload reports the daemon's answer; the address
// and token come from the flags (the old --admin-listen included),
// else from the config, else the defaults.
func TestStatusAndReload(t *testing.T) {
	f := startFake(t, "s3cret")
	token := writeFile(t, "token", "s3cret\n", 0o600)
	cfgFile := writeFile(t, "testd.yaml", "", 0o600)
	fromConfig := AdminConfig{Listen: f.addr, Token: []byte("s3cret")}
	tests := []struct {
		name   string
		file   string // the config file; "" means none exists
		args   []string
		want   string
		reload bool
	}{
		{"table", "", []string{"status", "--admin", f.addr, "--token-file", token}, "node fe1  state running\n", false},
		{"json", "", []string{"status", "--admin", f.addr, "--token-file", token, "--json"}, "{\n  \"node\": \"fe1\",\n  \"state\": \"running\"\n}\n", false},
		{"old flag spelling", "", []string{"status", "--admin-listen", f.addr, "--token-file", token}, "node fe1  state running\n", false},
		{"from the config", cfgFile, []string{"status"}, "node fe1  state running\n", false},
		{"token from the config", cfgFile, []string{"status", "--admin", f.addr, "--json"}, "\"node\": \"fe1\"", false},
		{"reload", cfgFile, []string{"reload"}, "reloaded\n", true},
		{"reload json", "", []string{"reload", "--admin", f.addr, "--token-file", token, "--json"}, "{\n  \"result\": \"reloaded\"\n}\n", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := f.reloads.Load()
			out, err := runCLI(testCLI(tt.file, fromConfig, nil), tt.args...)
			if err != nil {
				t.Fatalf("%v: %v", tt.args, err)
			}
			if !strings.Contains(out, tt.want) {
				t.Errorf("%v printed %q, want %q", tt.args, out, tt.want)
			}
			if got := f.reloads.Load() - before; (got == 1) != tt.reload {
				t.Errorf("%v made %d reloads", tt.args, got)
			}
		})
	}
}

// TestAdminCLIBadInput: every bad input to status and reload gets an
// error that names the flag or the config and the value.
func TestAdminCLIBadInput(t *testing.T) {
	f := startFake(t, "s3cret")
	token := writeFile(t, "token", "s3cret\n", 0o600)
	wrong := writeFile(t, "wrong", "guess\n", 0o600)
	open := writeFile(t, "open", "s3cret\n", 0o644)
	cfgFile := writeFile(t, "testd.yaml", "", 0o600)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	nobody := ln.Addr().String()
	ln.Close()
	tests := []struct {
		name    string
		file    string
		loadErr error
		args    []string
		want    string
	}{
		{"admin not host:port", "", nil, []string{"status", "--admin", "localhost"}, `--admin: "localhost" is not host:port`},
		{"admin bad port", "", nil, []string{"status", "--admin", "127.0.0.1:99999"}, `--admin: "127.0.0.1:99999" has no valid port`},
		{"token file missing", "", nil, []string{"status", "--admin", f.addr, "--token-file", "/nonexistent/token"}, `--token-file: "/nonexistent/token" does not exist`},
		{"token file open", "", nil, []string{"reload", "--admin", f.addr, "--token-file", open}, "is open to other users (mode 0644)"},
		{"wrong token", "", nil, []string{"status", "--admin", f.addr, "--token-file", wrong}, "admin API GET /v1/status: missing or wrong admin token"},
		{"no token", "", nil, []string{"status", "--admin", f.addr}, "missing or wrong admin token"},
		{"nothing listening", "", nil, []string{"status", "--admin", nobody}, "no answer from the admin API at " + nobody + " (is testd running there?)"},
		{"bad config", cfgFile, errors.New(`log.level: "loud" is not debug, info, warn or error`), []string{"status"}, "reading the admin address and token from " + cfgFile + ` (or give --admin and --token-file): log.level: "loud"`},
		{"argument", "", nil, []string{"status", "fe1"}, `unknown command "fe1"`},
		{"unknown flag", "", nil, []string{"reload", "--admin-addr", f.addr}, "unknown flag: --admin-addr"},
		{"reload refused", "", nil, []string{"reload", "--admin", f.addr, "--token-file", token}, `admin API POST /v1/reload: routing: "sideways" is not forward or redirect`},
	}
	f.refuse.Store(true)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := runCLI(testCLI(tt.file, AdminConfig{}, tt.loadErr), tt.args...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("%v = %q, %v; want an error with %q", tt.args, out, err, tt.want)
			}
		})
	}
}

// TestServiceRun: a service's main loop runs with the admin listener
// and POST /v1/reload; a clean stop returns nil, a failure its error.
func TestServiceRun(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	tests := []struct {
		name    string
		mainErr error // what main returns after its reload was called
		want    string
	}{
		{"stop", nil, ""},
		{"fails", errors.New("heartbeat socket closed"), "heartbeat socket closed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := NewAdmin(nil)
			if err := a.Listen("127.0.0.1:0"); err != nil {
				t.Fatal(err)
			}
			reloaded := make(chan struct{})
			svc := Service{Log: log, Admin: a, Notifier: NewNotifier(log), Reload: func(context.Context) error {
				close(reloaded)
				return nil
			}}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan error, 1)
			go func() {
				done <- svc.Run(ctx, func(ctx context.Context) error {
					<-reloaded
					if tt.mainErr != nil {
						return tt.mainErr
					}
					<-ctx.Done()
					return ctx.Err()
				})
			}()
			var ans map[string]string
			if err := AdminRequest(ctx, "POST", a.Addr().String(), nil, "/v1/reload", &ans); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(map[string]string{"result": "reloaded"}, ans); diff != "" {
				t.Errorf("reload answer (-want +got):\n%s", diff)
			}
			cancel()
			err := <-done
			if got := fmt.Sprint(err); (tt.want == "" && err != nil) || (tt.want != "" && got != tt.want) {
				t.Errorf("Run = %v, want %q", err, tt.want)
			}
		})
	}
}
