package node

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ringfront/ringfront/internal/config"
)

// TestNodeStream: a running node applies stream_heartbeat, delivers a
// post to a live stream, and on stop ends its streams, so it stops well
// within its shutdown grace.
func TestNodeStream(t *testing.T) {
	cfg, loader := testConfig(t, "stream_heartbeat: 100ms\ninbox_max: 50\n")
	n, err := Open(cfg, loader, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	waitReady(t, n.Admin().Addr().String())
	api := "http://" + n.Server().Addr().String()

	resp, err := http.Post(api+"/v1/users", "application/json", strings.NewReader(`{"name":"joe"}`))
	if err != nil {
		t.Fatal(err)
	}
	var created struct{ Token string }
	json.NewDecoder(resp.Body).Decode(&created)
	resp.Body.Close()

	req, _ := http.NewRequest("GET", api+"/v1/users/joe/timeline/stream", nil)
	req.Header.Set("Authorization", "Bearer "+created.Token)
	stream, err := http.DefaultClient.Do(req)
	if err != nil || stream.StatusCode != 200 {
		t.Fatalf("stream = %v, %v", stream, err)
	}
	defer stream.Body.Close()
	lines := make(chan string, 100)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stream.Body)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	wait := func(prefix string, d time.Duration) string {
		t.Helper()
		timer := time.NewTimer(d)
		defer timer.Stop()
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("stream ended waiting for %q", prefix)
				}
				if strings.HasPrefix(l, prefix) {
					return l
				}
			case <-timer.C:
				t.Fatalf("no %q line within %v", prefix, d)
			}
		}
	}
	wait(": heartbeat", time.Second) // 100ms from the config, not 15s

	preq, _ := http.NewRequest("POST", api+"/v1/users/joe/posts", strings.NewReader(`{"text":"hello"}`))
	preq.Header.Set("Authorization", "Bearer "+created.Token)
	presp, err := http.DefaultClient.Do(preq)
	if err != nil || presp.StatusCode != 201 {
		t.Fatalf("post = %v, %v", presp, err)
	}
	var p struct{ ID string }
	json.NewDecoder(presp.Body).Decode(&p)
	presp.Body.Close()
	if got := wait("id: ", time.Second); got != "id: "+p.ID {
		t.Errorf("event %q, want id %s", got, p.ID)
	}

	stopped := time.Now()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run = %v", err)
		}
	case <-time.After(8 * time.Second):
		t.Fatal("Run did not return within 8s with a stream open")
	}
	if took := time.Since(stopped); took > 3*time.Second {
		t.Errorf("stopping with a live stream took %v", took)
	}
	// The stream ends (the server closed it), within a bounded time.
	timer := time.NewTimer(5 * time.Second)
	defer timer.Stop()
	for {
		select {
		case _, ok := <-lines:
			if !ok {
				return
			}
		case <-timer.C:
			t.Fatal("the stream did not end after the node stopped")
		}
	}
}

// testConfig writes a one-member node's config (extra appended) and
// returns it and its loader.
func testConfig(t *testing.T, extra string) (Config, Loader) {
	t.Helper()
	write, loader := configFile(t)
	write(extra)
	cfg, err := loader()
	if err != nil {
		t.Fatal(err)
	}
	return cfg, loader
}

// configFile returns write, which writes a one-member node's config
// file (extra appended), and the file's loader.
func configFile(t *testing.T) (write func(extra string), loader Loader) {
	t.Helper()
	dir := t.TempDir()
	key := filepath.Join(dir, "key")
	os.WriteFile(key, []byte("secret\n"), 0o600)
	file := filepath.Join(dir, "appnode.yaml")
	write = func(extra string) {
		body := "listen: 127.0.0.1:0\nadvertise: 127.0.0.1:18183\nmembers: [127.0.0.1:18183]\nreplicas: 1\n" +
			"data_dir: " + filepath.Join(dir, "data") + "\ncluster_secret_file: " + key +
			"\nadmin: {listen: \"127.0.0.1:0\"}\n" + extra
		if err := os.WriteFile(file, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	loader = func() (Config, error) {
		var cfg Config
		err := config.Load(config.Options{File: file, Environ: []string{}}, &cfg)
		return cfg, err
	}
	return write, loader
}

// runNode opens and runs a node until the test ends, and waits until
// it is ready.
func runNode(t *testing.T, cfg Config, loader Loader) *Node {
	t.Helper()
	n, err := Open(cfg, loader, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			t.Error("Run did not return after cancel")
		}
	})
	waitReady(t, n.Admin().Addr().String())
	return n
}
