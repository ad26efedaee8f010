package follow

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ringfront/ringfront/appnode/api"
	"github.com/ringfront/ringfront/appnode/feed"
	"github.com/ringfront/ringfront/appnode/peer/peertest"
)

// TestCheckPin: a follow's pinned clock passes when it is a clock no
// further ahead of the member's than clients may be, and is refused
// (400, naming the header and the value) otherwise; no pin passes.
func TestCheckPin(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	g := New(Options{Cluster: peertest.Alone(t, func() time.Time { return now })})
	clockAt := func(at time.Time) string {
		return strconv.FormatUint(uint64(at.UnixMilli())<<16, 10) // the physical part (feed.Timestamp)
	}
	for _, tc := range []struct {
		name, pin string
		wantErr   string // "": passes
	}{
		{"no pin", "", ""},
		{"now", clockAt(now), ""},
		{"a minute ahead", clockAt(now.Add(time.Minute)), ""},
		{"an hour behind", clockAt(now.Add(-time.Hour)), ""},
		{"past the skew", clockAt(now.Add(feed.ClientSkew + time.Minute)), api.HeaderEdgeClock + ": " + clockAt(now.Add(feed.ClientSkew+time.Minute)) + " is 6m0s ahead"},
		{"not a number", "soon", api.HeaderEdgeClock + `: "soon" is not a clock`},
		{"zero", "0", api.HeaderEdgeClock + `: "0" is not a clock`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			served := false
			h := g.CheckPin(func(w http.ResponseWriter, r *http.Request) { served = true })
			r := httptest.NewRequest("PUT", "/v1/users/ann/following/bob", nil)
			if tc.pin != "" {
				r.Header.Set(api.HeaderEdgeClock, tc.pin)
			}
			w := httptest.NewRecorder()
			h(w, r)
			if tc.wantErr == "" {
				if !served {
					t.Errorf("refused: %d %s", w.Code, w.Body)
				}
				return
			}
			var e struct{ Error string }
			if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || served || w.Code != http.StatusBadRequest || !strings.Contains(e.Error, tc.wantErr) {
				t.Errorf("served %v, answer %d %s; want 400 saying %q", served, w.Code, w.Body, tc.wantErr)
			}
		})
	}
}
