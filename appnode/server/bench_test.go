package server

import (
	"io"
	"net/http"
	"net/http/httptest"
	"syscall"
	"testing"
	"time"

	"github.com/ringfront/ringfront/appnode/api"
)

// benchClient keeps enough idle connections for RunParallel.
var benchClient = &http.Client{
	Transport:     &http.Transport{MaxIdleConnsPerHost: 256},
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// cpuTime is the CPU time this process has used: a measure that other
// processes on a shared machine do not disturb the way they disturb
// wall time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func benchGet(b *testing.B, url string, want int) {
	b.ReportAllocs()
	start := cpuTime()
	defer func() {
		b.ReportMetric(float64((cpuTime()-start).Microseconds())/float64(b.N), "cpu-µs/op")
	}()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := benchClient.Get(url)
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != want {
				b.Fatalf("GET %s = %d", url, resp.StatusCode)
			}
		}
	})
}

func benchCluster(b *testing.B, routing Routing, httpForward ...bool) ([]*member, string) {
	ms := newCluster(b, clusterOpts{n: 2, routing: routing, httpForward: len(httpForward) > 0 && httpForward[0]})
	token := createUser(b, owner(ms, "joe"), "joe")
	for range 20 {
		do(b, nil, "POST", owner(ms, "joe").url("/v1/users/joe/posts"), token, api.PostRequest{Text: "a post of some length, like people write"})
	}
	return ms, token
}

func BenchmarkFeedDirect(b *testing.B) {
	ms, _ := benchCluster(b, Forward)
	benchGet(b, owner(ms, "joe").url("/v1/users/joe/posts?limit=20"), 200)
}

func BenchmarkFeedForward(b *testing.B) {
	ms, _ := benchCluster(b, Forward)
	benchGet(b, notOwner(ms, "joe").url("/v1/users/joe/posts?limit=20"), 200)
}

func BenchmarkFeedForwardHTTP(b *testing.B) {
	ms, _ := benchCluster(b, Forward, true)
	benchGet(b, notOwner(ms, "joe").url("/v1/users/joe/posts?limit=20"), 200)
}

func BenchmarkRedirect(b *testing.B) {
	ms, _ := benchCluster(b, Redirect)
	benchGet(b, notOwner(ms, "joe").url("/v1/users/joe/posts?limit=20"), 307)
}

func BenchmarkFeedForwardH2C(b *testing.B) {
	ms := newCluster(b, clusterOpts{n: 2, routing: Forward, h2c: true})
	token := createUser(b, owner(ms, "joe"), "joe")
	for range 20 {
		do(b, nil, "POST", owner(ms, "joe").url("/v1/users/joe/posts"), token, api.PostRequest{Text: "a post of some length, like people write"})
	}
	benchGet(b, notOwner(ms, "joe").url("/v1/users/joe/posts?limit=20"), 200)
}

// BenchmarkRedirectHandler is the redirect tier's own work for one 307:
// ServeHTTP from the request net/http parsed to the header it writes,
// without the network (bench/appnode -tier measures the whole path).
func BenchmarkRedirectHandler(b *testing.B) {
	ms := newCluster(b, clusterOpts{n: 3, routing: Redirect, memFS: true})
	var via *member
	for _, m := range ms {
		if !m.srv.Ring().InPreference("joe", m.addr) {
			via = m
		}
	}
	base := httptest.NewRequest("GET", "/v1/users/joe/posts?limit=20", nil)
	w := &headerWriter{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		r := *base
		clear(w.h)
		via.srv.ServeHTTP(w, &r)
		if w.code != http.StatusTemporaryRedirect {
			b.Fatalf("answered %d, want 307", w.code)
		}
	}
}

// headerWriter is a ResponseWriter that keeps the status and headers.
type headerWriter struct {
	h    http.Header
	code int
}

func (w *headerWriter) Header() http.Header         { return w.h }
func (w *headerWriter) WriteHeader(code int)        { w.code = code }
func (w *headerWriter) Write(b []byte) (int, error) { return len(b), nil }
