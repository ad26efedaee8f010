package cli

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ringfront/ringfront/appnode/apptest"
	"github.com/ringfront/ringfront/appnode/client"
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

// TestUserStreamCLI: `appnode user stream NAME --after ID` prints the
// posts after ID, then the new ones as they come.
func TestUserStreamCLI(t *testing.T) {
	addr := apptest.Cluster(t, 1, apptest.Options{})[0].Addr

	c, err := client.New([]string{addr}, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	joe, _ := c.CreateUser(ctx, "joe")
	ann, _ := c.CreateUser(ctx, "ann")
	if err := c.Follow(ctx, "joe", joe.Token, "ann"); err != nil {
		t.Fatal(err)
	}
	first, _ := c.Post(ctx, "ann", ann.Token, "seen already")
	if _, err := c.Post(ctx, "ann", ann.Token, "missed"); err != nil {
		t.Fatal(err)
	}
	go func() {
		time.Sleep(300 * time.Millisecond)
		c.Post(ctx, "ann", ann.Token, "live")
	}()
	t.Setenv("APPNODE_TOKEN", joe.Token)
	root := newRoot()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetArgs([]string{"user", "stream", "joe", "--after", first.ID.String(), "--server", addr})
	sctx, cancel := context.WithTimeout(ctx, 1500*time.Millisecond)
	defer cancel()
	err = root.ExecuteContext(sctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("stream ended with %v, want the deadline", err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 || !strings.HasSuffix(lines[0], "@ann: missed") || !strings.HasSuffix(lines[1], "@ann: live") {
		t.Errorf("stream printed:\n%s\nwant the missed post, then the live one", out.String())
	}
}
