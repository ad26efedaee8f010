package transport

import (
	"context"
	"net/http"
	"syscall"
	"testing"
	"time"
)

// BenchmarkCallLink measures a member call over a link, plain TCP and
// member TLS: what member TLS costs a call once its link is open. Both
// members run in this process: cpu-ns/op is the CPU of both sides.
//
//	go test ./appnode/transport -run '^$' -bench CallLink -benchtime 2s -count 3
func BenchmarkCallLink(b *testing.B) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(`{}`)) })
	for _, tc := range []struct {
		name string
		tls  bool
	}{{"plain", false}, {"tls", true}} {
		b.Run(tc.name, func(b *testing.B) {
			var from *Transport
			var to string
			if tc.tls {
				a, m := newTLSMember(b, testSecret, true, nil), newTLSMember(b, testSecret, true, nil)
				m.t.SetHandler(internalMux(m.t, ok))
				from, to = a.t, m.addr
			} else {
				a, m := newMember(b, testSecret, true, ok), newMember(b, testSecret, true, ok)
				m.t.SetHandler(internalMux(m.t, ok))
				from, to = a.t, m.addr
			}
			ctx := context.Background()
			var out struct{}
			body := map[string]string{"text": "a post of a usual length, about eighty characters long, give or take"}
			if err := from.Call(ctx, "POST", to, "/internal/v1/echo", body, &out); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			cpu0 := cpuTime()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := from.Call(ctx, "POST", to, "/internal/v1/echo", body, &out); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/op")
		})
	}
}

// cpuTime is the CPU time this process has used, user and system.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// internalMux serves h as a member call on /internal/v1/echo, and links.
func internalMux(t *Transport, h http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc(LinkRoute, t.ServeLink)
	mux.HandleFunc("POST /internal/v1/echo", t.Internal(h.ServeHTTP, MaxBody))
	return mux
}
