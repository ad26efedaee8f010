package heartbeat

import (
	"bytes"
	"log/slog"
	"testing"
)

// A state in a JSON log record is its name, as in a text one.
func TestStateInJSONLog(t *testing.T) {
	for _, tc := range []struct {
		s    State
		want string
	}{{StateStarting, `"state":"starting"`}, {StateRunning, `"state":"running"`}, {StateFault, `"state":"fault"`}, {StateStopping, `"state":"stopping"`}} {
		var b bytes.Buffer
		slog.New(slog.NewJSONHandler(&b, nil)).Info("changed", "state", tc.s)
		if !bytes.Contains(b.Bytes(), []byte(tc.want)) {
			t.Errorf("%v logged as %s, want %s", tc.s, b.Bytes(), tc.want)
		}
	}
}
