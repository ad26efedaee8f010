package node

import (
	"time"

	"github.com/ringfront/ringfront/appnode/server"
	"github.com/ringfront/ringfront/internal/config"
)

// Bounds of the fan-out keys.
const (
	maxFanoutLimit     = 1_000_000
	maxInboxMax        = 100_000
	minStreamHeartbeat = 100 * time.Millisecond
	maxStreamHeartbeat = 10 * time.Minute
)

// validateFanout fills the defaults of fanout_limit, inbox_max and
// stream_heartbeat and checks them.
func (c *Config) validateFanout() error {
	if c.FanoutLimit == 0 {
		c.FanoutLimit = server.DefaultFanoutLimit
	}
	if c.FanoutLimit < -1 || c.FanoutLimit > maxFanoutLimit {
		return config.Errorf("fanout_limit", c.FanoutLimit, "is not -1 (push to nobody) or from 1 to %d followers", maxFanoutLimit)
	}
	if c.InboxMax == 0 {
		c.InboxMax = server.DefaultInboxMax
	}
	if c.InboxMax < 1 || c.InboxMax > maxInboxMax {
		return config.Errorf("inbox_max", c.InboxMax, "is not from 1 to %d entries", maxInboxMax)
	}
	if c.StreamHeartbeat == 0 {
		c.StreamHeartbeat = server.DefaultStreamHeartbeat
	}
	if c.StreamHeartbeat < minStreamHeartbeat || c.StreamHeartbeat > maxStreamHeartbeat {
		return config.Errorf("stream_heartbeat", c.StreamHeartbeat, "is not from %v to %v", minStreamHeartbeat, maxStreamHeartbeat)
	}
	return nil
}

// tuning is what of the config a running member can change: applied at
// start and on every reload.
func (c *Config) tuning() server.Tuning {
	return server.Tuning{
		Routing: server.Routing(c.Routing), WriteAcks: c.WriteAcks, MemberTimeout: c.MemberTimeout,
		ReadRepair: c.ReadRepair, Links: c.ForwardOver == "link",
		AntiEntropyInterval: c.AntiEntropyInterval, AntiEntropyRate: c.AntiEntropyRate,
		FanoutLimit: c.FanoutLimit, InboxMax: c.InboxMax, StreamHeartbeat: c.StreamHeartbeat,
		Limits: c.Limits.limitsConfig(),
	}
}
