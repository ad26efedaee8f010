package member

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"testing/synctest"
	"time"
)

// TestHandover moves fe1's home VIP to fe2 and back through the admin
// handlers. Each move is make before break: the taker's claim and first
// announcement come before the giver's release.
func TestHandover(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fx, _, a, b := startPair(t)

		post := func(m *Member, h http.HandlerFunc, target string) int {
			t.Helper()
			w := httptest.NewRecorder()
			h(w, httptest.NewRequest("POST", target, nil).WithContext(t.Context()))
			return w.Code
		}
		if got := post(a.m, a.m.ServeHandover, "/v1/handover?vip=198.51.100.20"); got != http.StatusBadRequest {
			t.Errorf("handover of the partner's VIP: status %d, want 400", got)
		}
		if got := post(a.m, a.m.ServeHandover, "/v1/handover?vip=nonsense"); got != http.StatusBadRequest {
			t.Errorf("handover of a malformed VIP: status %d, want 400", got)
		}
		if got := post(a.m, a.m.ServeHandover, "/v1/handover?vip=198.51.100.10"); got != http.StatusOK {
			t.Fatalf("handover: status %d, want 200", got)
		}
		time.Sleep(500 * time.Millisecond)
		check(t, fx, "",
			"1.000s fe2: ip addr replace 198.51.100.10/24 dev eth0 label eth0:vw",
			"1.000s fe2: garp 198.51.100.10",
			"1.000s fe1: ip addr del 198.51.100.10/24 dev eth0",
			"1.100s fe2: garp 198.51.100.10",
		)
		if s := a.m.Status(); len(s.Gives) != 1 || s.VIPs[0].Holder != "fe2" {
			t.Errorf("fe1 status after handover: gives %v, holder of its VIP %q", s.Gives, s.VIPs[0].Holder)
		}
		// It stays handed over.
		time.Sleep(time.Second)
		check(t, fx, "garp")

		if got := post(a.m, a.m.ServeTakeback, "/v1/takeback"); got != http.StatusOK {
			t.Fatalf("takeback: status %d, want 200", got)
		}
		time.Sleep(500 * time.Millisecond)
		check(t, fx, "",
			"2.500s fe1: ip addr replace 198.51.100.10/24 dev eth0 label eth0:vw",
			"2.500s fe1: garp 198.51.100.10",
			"2.500s fe2: ip addr del 198.51.100.10/24 dev eth0",
			"2.600s fe1: garp 198.51.100.10",
		)

		// With the partner gone there is nobody to hand over to.
		b.stop(t)
		time.Sleep(500 * time.Millisecond)
		fx.take("")
		if err := a.m.Handover(t.Context(), nil); !errors.Is(err, ErrPartnerDown) {
			t.Errorf("handover with the partner stopped = %v, want ErrPartnerDown", err)
		}
		if got := post(a.m, a.m.ServeHandover, "/v1/handover"); got != http.StatusConflict {
			t.Errorf("handover with the partner stopped: status %d, want 409", got)
		}
		a.stop(t)
		if err := a.m.Takeback(t.Context()); !errors.Is(err, ErrNotRunning) {
			t.Errorf("takeback after Run returned = %v, want ErrNotRunning", err)
		}
	})
}
