package server

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ringfront/ringfront/appnode/api"
)

// TestLinkOwnerShutdown shuts an owner down (listener first, then its
// links drain, as Serve does) while another member forwards reads and
// writes to it without pause: no request fails, because what the owner
// never read goes to the replica (and writes get their second copy as a
// hinted copy on the third member).
func TestLinkOwnerShutdown(t *testing.T) {
	ms := newCluster(t, clusterOpts{n: 3})
	o := owner(ms, "joe")
	fwd := notOwner(ms, "joe")
	token := createUser(t, fwd, "joe")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second) // bounds the load if the test stops early
	defer cancel()
	var failed, reads, writes atomic.Int64
	var firstErr atomic.Value
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}, Timeout: 5 * time.Second}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 100_000; i++ {
				select {
				case <-stop:
					return
				case <-ctx.Done():
					return
				default:
				}
				var a answer
				if g%2 == 0 {
					a = do(t, client, "GET", fwd.url("/v1/users/joe/posts?limit=5"), "", nil)
					reads.Add(1)
				} else {
					a = do(t, client, "POST", fwd.url("/v1/users/joe/posts"), token, api.PostRequest{Text: "during the owner's shutdown"})
					writes.Add(1)
				}
				if a.code != 200 && a.code != 201 {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, fmt.Sprintf("%d %s", a.code, a.body))
				}
			}
		}()
	}
	// Reads and writes go over a link to the owner before it shuts
	// down, and go on across its shutdown.
	const some = 20
	if err := waitUntil(5*time.Second, func() bool {
		return o.metric(t, "appnode_links_served") > 0 && reads.Load() >= some && writes.Load() >= some
	}); err != nil {
		t.Errorf("the forwarder opened no link to the owner (links served %v, %d reads and %d writes done): %v",
			o.metric(t, "appnode_links_served"), reads.Load(), writes.Load(), err)
	}
	o.ts.Listener.Close() // redials are refused from now on
	dctx, dcancel := context.WithTimeout(context.Background(), 5*time.Second)
	o.srv.tr.Drain(dctx)
	dcancel()
	r0, w0 := reads.Load(), writes.Load()
	if err := waitUntil(5*time.Second, func() bool { return reads.Load() >= r0+some && writes.Load() >= w0+some }); err != nil {
		t.Errorf("after the owner's shutdown %d reads and %d writes were done: %v", reads.Load()-r0, writes.Load()-w0, err)
	}
	close(stop)
	wg.Wait()
	if n := failed.Load(); n > 0 {
		t.Errorf("%d of %d reads and %d writes failed during the owner's shutdown; first: %v", n, reads.Load(), writes.Load(), firstErr.Load())
	}
	t.Logf("%d reads and %d writes across the owner's shutdown, %d failed", reads.Load(), writes.Load(), failed.Load())
}
