package account

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ringfront/ringfront/appnode/feed"
	"github.com/ringfront/ringfront/appnode/limits"
	"github.com/ringfront/ringfront/appnode/store"
)

// TestAuthorize: a request passes with one of the user's live tokens;
// without a token it gets 401 asking for one, with a revoked token 401
// saying so (invalid_token), with any other token 403, for a user not
// stored here 404, and 429 once the user is over its rate limit.
func TestAuthorize(t *testing.T) {
	st, err := store.Open(t.TempDir(), store.Options{Space: func(string) (store.Space, error) { return store.Space{Free: 1 << 40}, nil }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	created := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	u := feed.User{Name: "ann", TokenHash: HashToken("first"), Created: created}
	u, err = u.Rotate(HashToken("second"), feed.Timestamp(uint64(created.Add(time.Minute).UnixMilli())<<16), HashToken("first"), feed.RevokeCurrent)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.CreateUser(u); err != nil {
		t.Fatal(err)
	}
	gate := limits.NewGate(nil, 1)
	var cfg limits.Config
	cfg.User[limits.Read] = limits.Rule{Rate: 0.001, Burst: 1}
	gate.Limiter().Configure(cfg)
	a := New(Options{Store: st, Gate: gate})
	for _, tc := range []struct {
		name, user, auth string
		wantCode         int    // 0: authorized
		wantChallenge    string // in WWW-Authenticate
		wantErr          string
	}{
		{"live token", "ann", "Bearer second", 0, "", ""},
		{"no token", "ann", "", http.StatusUnauthorized, `Bearer realm="appnode"`, "this needs ann's token"},
		{"revoked token", "ann", "Bearer first", http.StatusUnauthorized, `error="invalid_token"`, "token revoked"},
		{"wrong token", "ann", "Bearer guess", http.StatusForbidden, "", "wrong token for ann"},
		{"unknown user", "bob", "Bearer second", http.StatusNotFound, "", "bob"},
		{"over the user's rate", "ann", "Bearer second", http.StatusTooManyRequests, "", "too many reads from user ann"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/v1/users/"+tc.user+"/timeline", nil)
			r.Pattern = "GET /v1/users/{name}/timeline"
			if tc.auth != "" {
				r.Header.Set("Authorization", tc.auth)
			}
			w := httptest.NewRecorder()
			ok := a.Authorize(w, r, tc.user)
			if tc.wantCode == 0 {
				if !ok {
					t.Errorf("refused: %d %s", w.Code, w.Body)
				}
				return
			}
			if ok || w.Code != tc.wantCode || !strings.Contains(w.Body.String(), tc.wantErr) {
				t.Errorf("authorized %v, answer %d %s; want %d saying %q", ok, w.Code, w.Body, tc.wantCode, tc.wantErr)
			}
			if got := w.Header().Get("WWW-Authenticate"); !strings.Contains(got, tc.wantChallenge) {
				t.Errorf("WWW-Authenticate %q, want %q in it", got, tc.wantChallenge)
			}
		})
	}
	if !a.StillLive("ann", "second") || a.StillLive("ann", "first") {
		t.Errorf("StillLive: second %v, first %v; want true, false", a.StillLive("ann", "second"), a.StillLive("ann", "first"))
	}
}
