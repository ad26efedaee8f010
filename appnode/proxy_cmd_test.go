package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/ringfront/ringfront/appnode/node"
)

// TestProxyCommandErrors: `appnode proxy` says what is wrong with its
// flags before it binds anything.
func TestProxyCommandErrors(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"proxy"}, "--seed: give at least one member"},
		{[]string{"proxy", "--seed", "ftp://x"}, `seed "ftp://x" is not http://host:port`},
		{[]string{"proxy", "--seed", "http://127.0.0.1:1", "--log-level", "loud"}, "--log-level"},
		{[]string{"proxy", "--seed", "http://127.0.0.1:1", "--listen", "nowhere"}, "proxy listener on nowhere"},
	} {
		_, err := run(t, tt.args...)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("appnode %s = %v, want an error with %q", strings.Join(tt.args, " "), err, tt.want)
		}
	}
}

// TestPrintStatusFanout: the status table shows waiting fan-out
// deliveries and live streams when there are any.
func TestPrintStatusFanout(t *testing.T) {
	var b bytes.Buffer
	st := node.Status{Node: "app1"}
	st.Outbox, st.Streams = 4, 2
	printStatus(&b, st)
	if want := "fan-out    4 deliveries waiting, 2 live streams\n"; !strings.Contains(b.String(), want) {
		t.Errorf("status table:\n%s\nlacks %q", b.String(), want)
	}
}
