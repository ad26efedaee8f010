package node

import (
	"strings"
	"testing"
	"time"
)

func TestConfigFanout(t *testing.T) {
	tests := []struct {
		name, body, want string
	}{
		{"defaults", base, ""},
		{"fanout off", base + "fanout_limit: -1\n", ""},
		{"fanout limit", base + "fanout_limit: 5\n", ""},
		{"fanout below -1", base + "fanout_limit: -2\n", `fanout_limit: "-2" is not -1 (push to nobody) or from 1 to 1000000 followers`},
		{"fanout too big", base + "fanout_limit: 2000000\n", `fanout_limit: "2000000" is not -1`},
		{"fanout not a number", base + "fanout_limit: lots\n", `fanout_limit: "lots" is not a valid integer`},
		{"inbox_max negative", base + "inbox_max: -5\n", `inbox_max: "-5" is not from 1 to 100000 entries`},
		{"inbox_max too big", base + "inbox_max: 100001\n", `inbox_max: "100001" is not from 1`},
		{"heartbeat too short", base + "stream_heartbeat: 1ms\n", `stream_heartbeat: "1ms" is not from 100ms to 10m0s`},
		{"heartbeat not a duration", base + "stream_heartbeat: often\n", `stream_heartbeat`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := load(t, tt.body)
			if tt.want == "" {
				if err != nil {
					t.Errorf("got %v, want no error", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
	cfg, err := load(t, base)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.FanoutLimit != 10_000 || cfg.InboxMax != 800 || cfg.StreamHeartbeat != 15*time.Second {
		t.Errorf("fan-out defaults not filled: fanout_limit %d, inbox_max %d, stream_heartbeat %v", cfg.FanoutLimit, cfg.InboxMax, cfg.StreamHeartbeat)
	}
}
