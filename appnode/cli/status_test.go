package cli

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/ringfront/ringfront/appnode/antientropy"
	"github.com/ringfront/ringfront/appnode/gossip"
	"github.com/ringfront/ringfront/appnode/node"
	"github.com/ringfront/ringfront/appnode/ring"
	"github.com/ringfront/ringfront/appnode/transport"
)

func TestPrintStatus(t *testing.T) {
	var b bytes.Buffer
	st := node.Status{Node: "app1"}
	st.Self = "127.0.0.1:8081"
	st.Routing = "forward"
	st.Ring = ring.Info{Members: []string{"127.0.0.1:8081", "127.0.0.1:8082"}, VNodes: 128, Replicas: 2, Placement: ring.Successor, Version: "abcd"}
	st.Store.DiskBytes = 3 << 20
	st.Liveness = []gossip.State{{Member: "127.0.0.1:8081", State: gossip.Alive},
		{Member: "127.0.0.1:8082", State: gossip.Dead, Since: time.Date(2026, 11, 27, 4, 30, 0, 0, time.UTC), Gossip: "127.0.0.1:8182"},
		{Member: "127.0.0.1:8083", Problem: "could not learn its gossip address: connection refused"}}
	st.MembersAlive, st.Members = 1, 3
	st.EdgeNotes = 2
	st.HintsByMember = map[string]int{"127.0.0.1:8083": 7, "127.0.0.1:8082": 12}
	st.Rebalance = antientropy.RebalanceStatus{From: "abcd", To: "ef01", Pending: 3, Done: 40}
	st.Links = []transport.LinkStatus{
		{Member: "127.0.0.1:8082", Open: 2},
		{Member: "127.0.0.1:8083", HTTPUntil: time.Date(2026, 11, 27, 4, 31, 0, 0, time.UTC), Reason: "it refused the cluster secret"},
	}
	st.LinksServed = 3
	PrintStatus(&b, st)
	want := `node           app1
advertise      127.0.0.1:8081
routing        forward
ring           abcd (128 vnodes, 2 replicas, successor)
members        127.0.0.1:8081 (this member)
               127.0.0.1:8082
members alive  1 of 3
liveness       127.0.0.1:8081 alive (this member)
               127.0.0.1:8082 dead since 2026-11-27T04:30:00Z, gossip 127.0.0.1:8182
               127.0.0.1:8083 not seen yet: could not learn its gossip address: connection refused
hints          12 waiting for 127.0.0.1:8082
               7 waiting for 127.0.0.1:8083
rebalance      abcd -> ef01: 40 users streamed, 3 pending
edge notes     2 follow edges to confirm with their other side
forwarding     127.0.0.1:8082 over 2 member links
               127.0.0.1:8083 over HTTP until 2026-11-27T04:31:00Z: it refused the cluster secret
links served   3 from other members
store          3.0 MiB on disk
`
	if b.String() != want {
		t.Errorf("status table:\n%s\nwant:\n%s", b.String(), want)
	}
}

// TestPrintStatusFanout: the status table shows waiting fan-out
// deliveries and live streams when there are any.
func TestPrintStatusFanout(t *testing.T) {
	var b bytes.Buffer
	st := node.Status{Node: "app1"}
	st.Outbox, st.Streams = 4, 2
	PrintStatus(&b, st)
	if want := "fan-out    4 deliveries waiting, 2 live streams\n"; !strings.Contains(b.String(), want) {
		t.Errorf("status table:\n%s\nlacks %q", b.String(), want)
	}
}
