package cli

import (
	"regexp"
	"strings"
	"testing"

	"github.com/ringfront/ringfront/appnode/apptest"
)

// TestTokenCLI: `appnode user token NAME --revoke` prints a new token,
// after which the old one is refused through every member and the new
// one posts.
func TestTokenCLI(t *testing.T) {
	ms := apptest.Cluster(t, 3, apptest.Options{})
	srvFlag := "--server=" + ms[2].Addr
	tokenLine := regexp.MustCompile(`(?m)^token (\S+)$`)
	out, err := run(t, "user", "create", "joe", srvFlag)
	if err != nil {
		t.Fatal(err)
	}
	old := tokenLine.FindStringSubmatch(out)[1]
	if _, err := run(t, "user", "token", "joe", "--revoke", "--revoke-others", "--token", old, srvFlag); err == nil || !strings.Contains(err.Error(), "choose one") {
		t.Errorf("--revoke with --revoke-others = %v, want an error", err)
	}
	if _, err := run(t, "user", "token", "joe", "--token", "nope", srvFlag); err == nil || !strings.Contains(err.Error(), "wrong token") {
		t.Errorf("rotation with a wrong token = %v, want an error", err)
	}
	out, err = run(t, "user", "token", "joe", "--revoke", "--token", old, srvFlag)
	if err != nil || !strings.Contains(out, "revoked the current token") {
		t.Fatalf("user token --revoke = %q, %v", out, err)
	}
	m := tokenLine.FindStringSubmatch(out)
	if m == nil || m[1] == old {
		t.Fatalf("no new token in %q", out)
	}
	for _, mb := range ms {
		if _, err := run(t, "user", "post", "joe", "old", "--token", old, "--server="+mb.Addr); err == nil || !strings.Contains(err.Error(), "token revoked") {
			t.Errorf("post with the old token via %s = %v, want token revoked", mb.Addr, err)
		}
		if out, err := run(t, "user", "post", "joe", "new", "--token", m[1], "--server="+mb.Addr); err != nil || !strings.Contains(out, "posted ") {
			t.Errorf("post with the new token via %s = %q, %v", mb.Addr, out, err)
		}
	}
}
