package node

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
)

// lockedBuffer is a bytes.Buffer safe for the node's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// topKeys counts the keys of one JSON object at its top level (a group's
// keys are inside its own object).
func topKeys(line string) (map[string]int, error) {
	dec := json.NewDecoder(strings.NewReader(line))
	if _, err := dec.Token(); err != nil { // {
		return nil, err
	}
	keys := map[string]int{}
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			return nil, err
		}
		keys[k.(string)]++
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, err
		}
	}
	return keys, nil
}

// TestLogOneComponent: every record a running node logs in JSON (debug
// level, every subsystem at work) carries the component key once; the
// subsystem is another key.
func TestLogOneComponent(t *testing.T) {
	cfg, loader := testConfig(t, "")
	var out lockedBuffer
	log := slog.New(slog.NewJSONHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug})).With("component", "appnode")
	n, err := Open(cfg, loader, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	waitReady(t, n.Admin().Addr().String())
	resp, err := http.Post("http://"+n.Server().Addr().String()+"/v1/users", "application/json", strings.NewReader(`{"name":"joe"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run = %v", err)
	}

	subsystems := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(out.String()))
	for sc.Scan() {
		keys, err := topKeys(sc.Text())
		if err != nil {
			t.Fatalf("log record %s: %v", sc.Text(), err)
		}
		for k, n := range keys {
			if n > 1 {
				t.Errorf("key %q %d times in %s", k, n, sc.Text())
			}
		}
		if keys["component"] != 1 {
			t.Errorf("no component in %s", sc.Text())
		}
		var rec struct{ Subsystem string }
		json.Unmarshal(sc.Bytes(), &rec)
		subsystems[rec.Subsystem] = true
	}
	if len(subsystems) < 3 {
		t.Errorf("records from subsystems %v: want several (the test logs too little)", subsystems)
	}
}
