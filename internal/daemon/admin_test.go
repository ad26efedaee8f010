package daemon

import (
	"context"
	"net/http"
	"strings"
	"testing"
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
