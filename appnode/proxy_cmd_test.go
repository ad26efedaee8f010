package main

import (
	"strings"
	"testing"
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
