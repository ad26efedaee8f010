package server

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/ringfront/ringfront/appnode/api"
)

// benchTimeline reads the timeline of a user following 100 users with
// 20 posts each, from its owner, with fan-out (limit) on or off (-1).
func benchTimeline(b *testing.B, limit int) {
	ms := newCluster(b, clusterOpts{n: 1})
	ms[0].srv.SetFanout(limit, 0)
	reader := createUser(b, ms[0], "reader")
	for i := range 100 {
		u := fmt.Sprintf("user%d", i)
		token := createUser(b, ms[0], u)
		mustFollow(b, ms[0], "PUT", "reader", reader, u)
		for j := range 20 {
			do(b, nil, "POST", ms[0].url("/v1/users/"+u+"/posts"), token, api.PostRequest{Text: fmt.Sprint("a post of some length, like people write ", j)})
		}
	}
	req := func() (*http.Request, error) {
		r, err := http.NewRequest("GET", ms[0].url("/v1/users/reader/timeline?limit=20"), nil)
		if err == nil {
			r.Header.Set("Authorization", "Bearer "+reader)
		}
		return r, err
	}
	b.ReportAllocs()
	start := cpuTime()
	defer func() {
		b.ReportMetric(float64((cpuTime()-start).Microseconds())/float64(b.N), "cpu-µs/op")
	}()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r, err := req()
			if err != nil {
				b.Fatal(err)
			}
			resp, err := benchClient.Do(r)
			if err != nil {
				b.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Fatalf("timeline = %d", resp.StatusCode)
			}
		}
	})
}

func BenchmarkTimelineMerge(b *testing.B) { benchTimeline(b, -1) }

func BenchmarkTimelineInbox(b *testing.B) { benchTimeline(b, 0) }
