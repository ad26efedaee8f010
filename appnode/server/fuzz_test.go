package server

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ringfront/ringfront/appnode/api"
	"github.com/ringfront/ringfront/appnode/ring"
	"github.com/ringfront/ringfront/appnode/store"
	"github.com/ringfront/ringfront/appnode/transport"
)

// FuzzAPI sends arbitrary requests to a one-member server: every answer
// is below 500, and every error answer is {"error": "..."}.
func FuzzAPI(f *testing.F) {
	st, err := store.Open(f.TempDir(), store.Options{Space: func(string) (store.Space, error) { return store.Space{Free: 1 << 40}, nil }})
	if err != nil {
		f.Fatal(err)
	}
	defer st.Close()
	rg, _ := ring.New(ring.Config{Members: []string{"127.0.0.1:1"}})
	srv, err := New(Options{Self: "127.0.0.1:1", Ring: rg, Store: st, Secret: testSecret, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		f.Fatal(err)
	}
	// A user to act as, so that authorised paths are reached too.
	rec := httptest.NewRecorder()
	srv.ServeHTTP(rec, httptest.NewRequest("POST", "/v1/users", strings.NewReader(`{"name":"joe"}`)))
	var created struct{ Token string }
	json.Unmarshal(rec.Body.Bytes(), &created)
	for _, seed := range []struct{ method, path, body string }{
		{"POST", "/v1/users", `{"name":"ann"}`},
		{"POST", "/v1/users", `{"name":`},
		{"POST", "/v1/users/joe/posts", `{"text":"hi"}`},
		{"POST", "/v1/users/joe/posts", `{"text":"\ud800"}`},
		{"GET", "/v1/users/joe/posts?limit=3&before=00000000000000000000000000", ""},
		{"GET", "/v1/users/joe/timeline?limit=x", ""},
		{"PUT", "/v1/users/joe/following/ann", ""},
		{"DELETE", "/v1/users/joe/following/joe", ""},
		{"GET", "/v1/users/joe/followers", ""},
		{"GET", "/v1/ring/lookup?key=%ff", ""},
		{"POST", "/internal/v1/merge", `{"authors":["joe"],"limit":5}`},
		{"PATCH", "/v1/users/joe", ""},
		{"GET", "/v1/users/joe/timeline/stream", ""},
		{"GET", "/web/app.js", ""},
		{"GET", "/web/..%2f..%2fgo.mod", ""},
	} {
		f.Add(seed.method, seed.path, seed.body, true)
	}
	f.Fuzz(func(t *testing.T, method, path, body string, auth bool) {
		if !strings.HasPrefix(path, "/") {
			path = "/" + path
		}
		req, err := http.NewRequest(method, "http://127.0.0.1:1"+path, strings.NewReader(body))
		if err != nil {
			return // not a request a client could send
		}
		if auth {
			req.Header.Set("Authorization", "Bearer "+created.Token)
		}
		// A live stream answers until its client leaves.
		ctx, cancel := context.WithTimeout(req.Context(), 100*time.Millisecond)
		defer cancel()
		req = req.WithContext(ctx)
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("%s %s %q = %d %s", method, path, body, rec.Code, rec.Body)
		}
		if rec.Code >= 400 {
			var e map[string]string
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e["error"] == "" {
				t.Fatalf("%s %s = %d with body %q, not {\"error\": ...}", method, path, rec.Code, rec.Body)
			}
		}
	})
}

// FuzzInternal sends arbitrary bodies, signed with the cluster secret,
// to the node-to-node endpoints that replication, read repair and
// anti-entropy use: every answer is below 500 and every error answer is
// {"error": "..."}. A member must not be broken by a buggy peer.
func FuzzInternal(f *testing.F) {
	st, err := store.Open(f.TempDir(), store.Options{Space: func(string) (store.Space, error) { return store.Space{Free: 1 << 40}, nil }})
	if err != nil {
		f.Fatal(err)
	}
	defer st.Close()
	rg, _ := ring.New(ring.Config{Members: []string{"127.0.0.1:1", "127.0.0.1:2"}, Replicas: 2})
	srv, err := New(Options{Self: "127.0.0.1:1", Ring: rg, Store: st, Secret: testSecret, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		f.Fatal(err)
	}
	paths := []string{"/internal/v1/replicate", "/internal/v1/digests", "/internal/v1/users/joe/records?limit=5"}
	for _, seed := range []struct {
		path uint8
		body string
	}{
		{0, `{"records":[{"user":{"name":"joe","created":"2026-01-01T00:00:00Z"}}]}`},
		{0, `{"records":[{"post":{"id":"00000000000000000000000000","author":"joe","text":"hi"}}]}`},
		{0, `{"records":[{"edge":{"follower":"joe","followee":"ann","clock":5},"side":102}]}`},
		{0, `{"records":[{"edge":{"follower":"joe","followee":"ann","clock":5},"side":0}]}`},
		{0, `{"records":[{}]}`},
		{1, `{"peer":"127.0.0.1:2"}`},
		{1, `{"peer":"127.0.0.1:2","groups":[0,255,300,-1]}`},
		{1, `{"peer":"127.0.0.1:2","groups":[0,255]}`},
		{1, `{"peer":"127.0.0.1:2","leaves":[0,65535,65536]}`},
		{1, `{"peer":"127.0.0.1:2","leaves":[7],"groups":[1]}`},
		{1, `{"peer":"nobody"}`},
		{2, ``},
	} {
		f.Add(seed.path, seed.body)
	}
	f.Fuzz(func(t *testing.T, which uint8, body string) {
		path := paths[int(which)%len(paths)]
		method := "POST"
		if strings.Contains(path, "records") {
			method = "GET"
		}
		req := httptest.NewRequest(method, "http://127.0.0.1:1"+path, strings.NewReader(body))
		req.Header.Set(api.HeaderCluster, transport.Sign(testSecret, time.Now(), method, req.URL.RequestURI(), []byte(body)))
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("%s %s %q = %d %s", method, path, body, rec.Code, rec.Body)
		}
		if rec.Code >= 400 {
			var e map[string]string
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e["error"] == "" {
				t.Fatalf("%s %s = %d with body %q, not {\"error\": ...}", method, path, rec.Code, rec.Body)
			}
		}
	})
}
