package main

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ringfront/ringfront/appnode/api"
)

// TestRotateTokenDaemons: three appnode daemons on loopback; a user's
// token is rotated through a member that does not own the user, with
// the old token revoked. The old token then gets a 401 with a JSON
// error through every member, and the new one posts through every
// member.
func TestRotateTokenDaemons(t *testing.T) {
	cl := startDaemons(t, 3, func(int) string { return "replicas: 3\n" })
	hc := &http.Client{Timeout: 5 * time.Second}
	owner := cl.byAddr(cl.ring(3).Owner("joe"))
	via := cl.ds[0]
	if via == owner {
		via = cl.ds[1]
	}
	old := cl.createUser(hc, owner, "joe")
	var ans api.RotateTokenAnswer
	if _, err := apiCall(hc, "POST", "http://"+via.addr+"/v1/users/joe/tokens", old, api.RotateTokenRequest{RevokeCurrent: true}, &ans); err != nil {
		t.Fatalf("rotating: %v", err)
	}
	rotated := time.Now()
	// write_acks 2 of 3 replicas: the third copy may still be on its
	// way, but only the owner (or, were it down, the next replica)
	// checks a token, and both have the revocation.
	for _, d := range cl.ds {
		code, err := apiCall(hc, "POST", "http://"+d.addr+"/v1/users/joe/posts", old, api.PostRequest{Text: "old"}, nil)
		if code != http.StatusUnauthorized || err == nil || !strings.Contains(err.Error(), `"error": "token revoked`) {
			t.Errorf("old token via %s = %d %v, want 401 with a JSON error", d.addr, code, err)
		}
		if _, err := apiCall(hc, "POST", "http://"+d.addr+"/v1/users/joe/posts", ans.Token, api.PostRequest{Text: "new"}, nil); err != nil {
			t.Errorf("new token via %s: %v", d.addr, err)
		}
	}
	t.Logf("old token refused through every member %v after the rotation was acknowledged", time.Since(rotated).Round(time.Millisecond))
}
