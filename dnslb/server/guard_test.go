package server

import (
	"encoding/hex"
	"net"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// sendBurst sends n queries from a socket bound to src and counts the
// full and the truncated answers that come back.
func sendBurst(t *testing.T, src, server string, n int, cookie string) (full, tc int, lastCookie string) {
	full, tc, _, lastCookie = sendBurstRcodes(t, src, server, n, cookie)
	return
}

// sendBurstRcodes is sendBurst that also counts BADCOOKIE answers.
func sendBurstRcodes(t *testing.T, src, server string, n int, cookie string) (full, tc, badCookie int, lastCookie string) {
	t.Helper()
	la, _ := net.ResolveUDPAddr("udp", src+":0")
	ra, _ := net.ResolveUDPAddr("udp", server)
	c, err := net.DialUDP("udp", la, ra)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := range n {
		m := new(dns.Msg)
		m.SetQuestion("mail.example.org.", dns.TypeA)
		m.Id = uint16(i)
		if cookie != "" {
			m.SetEdns0(1232, false)
			m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: cookie})
		}
		b, _ := m.Pack()
		c.Write(b)
	}
	buf := make([]byte, 2048)
	for {
		c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		k, err := c.Read(buf)
		if err != nil {
			return
		}
		r := new(dns.Msg)
		if r.Unpack(buf[:k]) != nil {
			continue
		}
		if r.Rcode == dns.RcodeBadCookie {
			badCookie++
		} else if r.Truncated {
			tc++
		} else if len(r.Answer) == 1 {
			full++
		}
		if o := r.IsEdns0(); o != nil {
			for _, opt := range o.Option {
				if ck, ok := opt.(*dns.EDNS0_COOKIE); ok {
					lastCookie = ck.Cookie
				}
			}
		}
	}
}

func TestRateLimitSparesCookieClients(t *testing.T) {
	ts := startTargets(t, 1)
	s := startServerWith(t, ts, "rrl: {responses_per_second: 20, slip: 2}\n", "")

	// A flood "from" 127.0.0.50 (a spoofed victim, as far as dnslb can
	// tell): about one second's worth of answers, then every other
	// limited answer slips out truncated.
	full, tc, _ := sendBurst(t, "127.0.0.50", s.udp, 200, "")
	if full > 25 || full < 15 || tc < 70 || tc > 100 {
		t.Errorf("flood of 200 got %d full and %d truncated answers, want ~20 full and ~90 truncated", full, tc)
	}
	// A client on the same /24 that holds a valid server cookie is not
	// limited at all. Its first query has only a client cookie.
	_, _, server := sendBurst(t, "127.0.0.51", s.udp, 1, "0102030405060708")
	if len(server) != 48 {
		t.Fatalf("no server cookie issued: %q", server)
	}
	full, tc, _ = sendBurst(t, "127.0.0.51", s.udp, 200, server)
	if full != 200 || tc != 0 {
		t.Errorf("cookie client got %d full and %d truncated of 200, want all full", full, tc)
	}
	// A client that sends only a client cookie is told BADCOOKIE, with a
	// fresh server cookie, once over the limit: never silently dropped.
	full, tc, bad, fresh := sendBurstRcodes(t, "127.0.0.53", s.udp, 100, "0807060504030201")
	if full+bad != 100 || bad < 70 || tc != 0 || len(fresh) != 48 {
		t.Errorf("client-cookie burst: %d full, %d BADCOOKIE, %d truncated, cookie %q", full, bad, tc, fresh)
	}
	// The cookie is bound to the client's address.
	full, _, _ = sendBurst(t, "127.0.0.52", s.udp, 200, server)
	if full > 25 {
		t.Errorf("stolen cookie exempted another address: %d full answers", full)
	}
	m := scrape(t, s.admin)
	if metricValue(m, `dnslb_dropped_total{reason="rate_limited"}`) == 0 || metricValue(m, "dnslb_rrl_slipped_total") == 0 ||
		metricValue(m, `dnslb_cookies_total{cookie="valid"}`) < 200 {
		t.Errorf("rate limiting not counted:\n%s\n%s\n%s", grepLines(m, "dnslb_dropped"), grepLines(m, "dnslb_rrl"), grepLines(m, "dnslb_cookies"))
	}
}

func TestMalformedCookieFormerr(t *testing.T) {
	ts := startTargets(t, 1)
	s := startServer(t, ts, "")
	for _, ck := range []string{"0102", hex.EncodeToString(make([]byte, 12)), hex.EncodeToString(make([]byte, 41))} {
		c := &dns.Client{Timeout: time.Second}
		m := new(dns.Msg)
		m.SetQuestion("mail.example.org.", dns.TypeA)
		m.SetEdns0(1232, false)
		m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: ck})
		r, _, err := c.Exchange(m, s.udp)
		if err != nil {
			t.Fatal(err)
		}
		if r.Rcode != dns.RcodeFormatError || len(r.Answer) != 0 {
			t.Errorf("cookie of %d bytes: rcode %s", len(ck)/2, dns.RcodeToString[r.Rcode])
		}
	}
}
