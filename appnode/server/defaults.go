package server

import (
	"github.com/ringfront/ringfront/appnode/antientropy"
	"github.com/ringfront/ringfront/appnode/fanout"
	"github.com/ringfront/ringfront/appnode/peer"
)

// The defaults of what a member's config tunes, from the subsystem each
// belongs to (package node fills a config's zero values with them).
const (
	DefaultMemberTimeout       = peer.DefaultMemberTimeout
	DefaultAntiEntropyInterval = antientropy.DefaultInterval
	DefaultAntiEntropyRate     = antientropy.DefaultRate
	DefaultRebalanceRate       = antientropy.DefaultRebalanceRate
	DefaultFanoutLimit         = fanout.DefaultFanoutLimit
	DefaultInboxMax            = fanout.DefaultInboxMax
)
