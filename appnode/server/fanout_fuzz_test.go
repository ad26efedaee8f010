package server

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ringfront/ringfront/appnode/api"
	"github.com/ringfront/ringfront/appnode/ring"
	"github.com/ringfront/ringfront/appnode/store"
	"github.com/ringfront/ringfront/appnode/transport"
)

// FuzzFanoutInternal sends arbitrary signed bodies to the fan-out's
// node-to-node endpoints (inbox deliveries, follower counts): every
// answer is below 500 and every error answer is {"error": "..."}.
func FuzzFanoutInternal(f *testing.F) {
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
	paths := []string{"/internal/v1/inbox", "/internal/v1/follower-counts"}
	for _, seed := range []struct {
		path uint8
		body string
	}{
		{0, `{"deliveries":[{"users":["joe"],"posts":[{"id":"06h1q186kr00094b1y2000000c","author":"ann","text":"hi","created":"2026-01-01T00:00:00Z"}]}]}`},
		{0, `{"deliveries":[{"users":["joe"],"posts":[],"horizon":"06h1q186kr00094b1y2000000c","backfill":true}]}`},
		{0, `{"deliveries":[{"users":["Joe"],"posts":[{"author":"ann"}]}]}`},
		{0, `{"deliveries":[{}]}`},
		{1, `{"users":["joe","ann"],"max":10}`},
		{1, `{"users":["../x"],"max":-1}`},
	} {
		f.Add(seed.path, seed.body)
	}
	f.Fuzz(func(t *testing.T, which uint8, body string) {
		path := paths[int(which)%len(paths)]
		req := httptest.NewRequest("POST", "http://127.0.0.1:1"+path, strings.NewReader(body))
		req.Header.Set(api.HeaderCluster, transport.Sign(testSecret, time.Now(), "POST", req.URL.RequestURI(), []byte(body)))
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("POST %s %q = %d %s", path, body, rec.Code, rec.Body)
		}
		if rec.Code >= 400 {
			var e map[string]string
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e["error"] == "" {
				t.Fatalf("POST %s = %d with body %q, not {\"error\": ...}", path, rec.Code, rec.Body)
			}
		}
	})
}
