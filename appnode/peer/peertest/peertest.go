// Package peertest builds cluster views (peer.Cluster) for the unit
// tests of the packages built on them, without a network.
package peertest

import (
	"testing"
	"time"

	"github.com/ringfront/ringfront/appnode/peer"
	"github.com/ringfront/ringfront/appnode/ring"
)

// Self is the member Alone's cluster view is of.
const Self = "198.51.100.1:80"

// Alone returns the view of a one-member cluster (Self) whose clock
// reads now; it fails t when the view cannot be built.
func Alone(t testing.TB, now func() time.Time) *peer.Cluster {
	t.Helper()
	rg, err := ring.New(ring.Config{Members: []string{Self}, VNodes: 1, Replicas: 1})
	if err != nil {
		t.Fatal(err)
	}
	c, err := peer.New(peer.Options{Self: Self, Ring: rg, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	return c
}
