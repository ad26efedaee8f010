package queue

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/ringfront/ringfront/appnode/store"
)

// fakeMembers answers Send for each member, records what arrived, and
// fails a member while down says so.
type fakeMembers struct {
	mu       sync.Mutex
	down     map[string]bool
	got      map[string][]string
	sends    map[string]int
	moved    map[string][]string
	gone     map[string]bool
	notReady map[string]bool
}

func (f *fakeMembers) send(_ context.Context, m string, es []store.QueueEntry) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sends[m]++
	if f.down[m] {
		return errors.New("refused")
	}
	for _, e := range es {
		f.got[m] = append(f.got[m], string(e.Value))
	}
	return nil
}

func openQueue(t *testing.T) *store.Queue {
	t.Helper()
	st, err := store.Open(t.TempDir(), store.Options{Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st.Outbox()
}

// TestDeliverer: entries go in batches, at most MaxBatches a member and
// round; a member that fails is passed over with backoff doubling from
// BackoffMin to BackoffMax, reset by a delivery; a member not ready is
// passed over without backoff; entries of a member that left the ring
// are re-addressed; the counters count.
func TestDeliverer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := openQueue(t)
		for i := range 7 {
			q.Add("a:1", []byte(fmt.Sprint("a", i)))
			q.Add("b:1", []byte(fmt.Sprint("b", i)))
		}
		q.Add("c:1", []byte("c0"))
		q.Add("gone:1", []byte("g0"), []byte("g1"))

		f := &fakeMembers{down: map[string]bool{"b:1": true}, got: map[string][]string{}, sends: map[string]int{},
			moved: map[string][]string{}, gone: map[string]bool{"gone:1": true}, notReady: map[string]bool{"c:1": true}}
		delivered := prometheus.NewCounter(prometheus.CounterOpts{Name: "delivered"})
		failed := prometheus.NewCounter(prometheus.CounterOpts{Name: "failed"})
		d := New(Config{
			Name: "test", Queue: q, Batch: 3, MaxBatches: 2, Parallel: 2,
			BackoffMin: time.Second, BackoffMax: 4 * time.Second,
			Ready: func(m string) bool { f.mu.Lock(); defer f.mu.Unlock(); return !f.notReady[m] },
			Gone:  func(m string) bool { return f.gone[m] },
			Send:  f.send,
			Readdress: func(_ context.Context, gone string, es []store.QueueEntry) error {
				add := map[string][][]byte{}
				for _, e := range es {
					f.moved[gone] = append(f.moved[gone], string(e.Value))
					add["a:1"] = append(add["a:1"], e.Value)
				}
				return q.Move(es, add)
			},
			Delivered: delivered, Failed: failed,
			Log: slog.New(slog.DiscardHandler),
		})

		ctx := context.Background()
		// Round 1: a:1 gets two batches of 3; gone:1's two entries are
		// re-addressed to a:1; b:1 fails (backoff 1s); c:1 is not ready.
		if n := d.Round(ctx); n != 8 {
			t.Errorf("round 1 delivered %d, want 8 (6 to a:1, 2 re-addressed)", n)
		}
		if want := []string{"a0", "a1", "a2", "a3", "a4", "a5"}; !slices.Equal(f.got["a:1"], want) {
			t.Errorf("a:1 got %v, want %v", f.got["a:1"], want)
		}
		if want := []string{"g0", "g1"}; !slices.Equal(f.moved["gone:1"], want) {
			t.Errorf("re-addressed %v, want %v", f.moved["gone:1"], want)
		}
		if f.sends["c:1"] != 0 {
			t.Error("a member not ready was sent to")
		}
		// b:1 is passed over for 1s, then 2s, then 4s, then 4s.
		var tries []time.Duration
		start := time.Now()
		for time.Since(start) < 12*time.Second {
			before := f.sends["b:1"]
			d.Round(ctx)
			if f.sends["b:1"] != before {
				tries = append(tries, time.Since(start))
			}
			time.Sleep(100 * time.Millisecond)
		}
		if diff := cmp.Diff([]time.Duration{time.Second, 3 * time.Second, 7 * time.Second, 11 * time.Second}, tries); diff != "" {
			t.Errorf("b:1 tried at (-want +got):\n%s", diff)
		}
		// b:1 comes back: delivered at its next try, its backoff reset.
		f.mu.Lock()
		f.down["b:1"], f.notReady["c:1"] = false, false
		f.mu.Unlock()
		time.Sleep(4 * time.Second)
		d.Round(ctx)
		d.Round(ctx)
		if want := []string{"b0", "b1", "b2", "b3", "b4", "b5", "b6"}; !slices.Equal(f.got["b:1"], want) {
			t.Errorf("b:1 got %v, want %v", f.got["b:1"], want)
		}
		if want := []string{"a0", "a1", "a2", "a3", "a4", "a5", "a6", "g0", "g1"}; !slices.Equal(f.got["a:1"], want) {
			t.Errorf("a:1 got %v, want %v", f.got["a:1"], want)
		}
		if want := []string{"c0"}; !slices.Equal(f.got["c:1"], want) {
			t.Errorf("c:1 got %v, want %v", f.got["c:1"], want)
		}
		if n, _ := q.Count(0); n != 0 {
			t.Errorf("%d entries left", n)
		}
		if got := testutil.ToFloat64(delivered); got != 7+7+1+2 {
			t.Errorf("delivered counter = %v, want 17", got)
		}
		if got := testutil.ToFloat64(failed); got != 5 {
			t.Errorf("failed counter = %v, want 5 (b:1 at 0, 1, 3, 7 and 11s)", got)
		}
	})
}
