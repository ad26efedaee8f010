package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ringfront/ringfront/appnode/account"
	"github.com/ringfront/ringfront/appnode/api"
	"github.com/ringfront/ringfront/appnode/feed"
	"github.com/ringfront/ringfront/appnode/live"
	"github.com/ringfront/ringfront/appnode/transport"
)

func rotate(t *testing.T, m *member, name, token string, req any) answer {
	t.Helper()
	return do(t, nil, "POST", m.url("/v1/users/"+name+"/tokens"), token, req)
}

// records returns every member's record of user name.
func records(t *testing.T, ms []*member, name string) []feed.User {
	t.Helper()
	var out []feed.User
	for _, m := range ms {
		u, err := m.store.User(name)
		if err != nil {
			t.Fatalf("%s's record on %s: %v", name, m.addr, err)
		}
		out = append(out, u)
	}
	return out
}

// TestRotateToken: a rotation through a member that does not own the
// user issues a new token and revokes the old one on every replica; the
// old token then gets a 401 with a JSON error through every member, the
// new one works through every member, and the token is stored hashed.
func TestRotateToken(t *testing.T) {
	ms := newCluster(t, clusterOpts{n: 3, replicas: 3})
	old := createUser(t, ms[0], "joe")
	a := rotate(t, notOwner(ms, "joe"), "joe", old, api.RotateTokenRequest{RevokeCurrent: true})
	if a.code != http.StatusCreated {
		t.Fatalf("rotation = %d %s", a.code, a.body)
	}
	var ans api.RotateTokenAnswer
	a.decode(t, &ans)
	if ans.Name != "joe" || len(ans.Token) != api.TokenLen || ans.Token == old || ans.Revoked != "current" {
		t.Fatalf("rotation answered %+v", ans)
	}
	for _, m := range ms {
		m.srv.Replica().Wait() // the third copy goes out in the background
	}
	for i, u := range records(t, ms, "joe") {
		if u.TokenState(account.HashToken(old)) != feed.TokenRevoked || u.TokenState(account.HashToken(ans.Token)) != feed.TokenLive {
			t.Errorf("%s's record: old token %d, new %d", ms[i].addr, u.TokenState(account.HashToken(old)), u.TokenState(account.HashToken(ans.Token)))
		}
		raw, _ := json.Marshal(u)
		if bytes.Contains(raw, []byte(ans.Token)) || bytes.Contains(raw, []byte(old)) {
			t.Errorf("%s stores a token in clear: %s", ms[i].addr, raw)
		}
	}
	for _, m := range ms {
		a := do(t, nil, "POST", m.url("/v1/users/joe/posts"), old, api.PostRequest{Text: "old"})
		if a.code != http.StatusUnauthorized || !strings.Contains(a.errorText(t), "token revoked") ||
			!strings.Contains(a.header.Get("WWW-Authenticate"), `error="invalid_token"`) {
			t.Errorf("old token via %s = %d %s %q, want 401 token revoked", m.addr, a.code, a.body, a.header.Get("WWW-Authenticate"))
		}
		if a := do(t, nil, "POST", m.url("/v1/users/joe/posts"), ans.Token, api.PostRequest{Text: "new"}); a.code != http.StatusCreated {
			t.Errorf("new token via %s = %d %s", m.addr, a.code, a.body)
		}
	}
}

// TestRotateTokenBadInput: every bad rotation gets a clear error and
// changes no record anywhere.
func TestRotateTokenBadInput(t *testing.T) {
	ms := newCluster(t, clusterOpts{n: 3, replicas: 3})
	tok := createUser(t, ms[0], "joe")
	ann := createUser(t, ms[0], "ann")
	revoked := tok
	a := rotate(t, ms[0], "joe", tok, api.RotateTokenRequest{RevokeCurrent: true})
	var ans api.RotateTokenAnswer
	a.decode(t, &ans)
	tok = ans.Token
	for _, m := range ms {
		m.srv.Replica().Wait()
	}
	before := records(t, ms, "joe")
	for _, tt := range []struct {
		name, user, token string
		body              any
		code              int
		want              string
	}{
		{"unknown user", "nobody", tok, api.RotateTokenRequest{}, 404, "not found"},
		{"bad name", "No-Body", tok, api.RotateTokenRequest{}, 400, "name must be"},
		{"no token", "joe", "", api.RotateTokenRequest{}, 401, "this needs one of joe's tokens"},
		{"wrong token", "joe", "nope", api.RotateTokenRequest{}, 403, "wrong token for joe"},
		{"another user's token", "joe", ann, api.RotateTokenRequest{}, 403, "wrong token for joe"},
		{"revoked token", "joe", revoked, api.RotateTokenRequest{RevokeCurrent: true}, 401, "token revoked"},
		{"malformed body", "joe", tok, `{"revoke_current": tru`, 400, "not the expected JSON"},
		{"unknown field", "joe", tok, `{"revoke_all": true}`, 400, `unknown field "revoke_all"`},
		{"empty body", "joe", tok, "", 400, "not the expected JSON"},
		{"both revocations", "joe", tok, api.RotateTokenRequest{RevokeCurrent: true, RevokeOthers: true}, 400, "choose one"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for _, m := range ms {
				a := rotate(t, m, tt.user, tt.token, tt.body)
				if a.code != tt.code || !strings.Contains(a.errorText(t), tt.want) {
					t.Errorf("via %s: %d %s, want %d with %q", m.addr, a.code, a.body, tt.code, tt.want)
				}
			}
		})
	}
	if diff := cmp.Diff(before, records(t, ms, "joe")); diff != "" {
		t.Errorf("bad rotations changed joe's records (-before +after):\n%s", diff)
	}
	// Live tokens are capped: the ninth is refused, and changes nothing.
	for range feed.MaxLiveTokens - 1 {
		if a := rotate(t, ms[0], "joe", tok, api.RotateTokenRequest{}); a.code != http.StatusCreated {
			t.Fatalf("rotation = %d %s", a.code, a.body)
		}
	}
	for _, m := range ms {
		m.srv.Replica().Wait()
	}
	before = records(t, ms, "joe")
	if a := rotate(t, ms[1], "joe", tok, api.RotateTokenRequest{}); a.code != http.StatusConflict || !strings.Contains(a.errorText(t), "live tokens") {
		t.Errorf("rotation to %d live tokens = %d %s, want 409", feed.MaxLiveTokens+1, a.code, a.body)
	}
	if diff := cmp.Diff(before, records(t, ms, "joe")); diff != "" {
		t.Errorf("a refused rotation changed joe's records (-before +after):\n%s", diff)
	}
	// revoke_others clears them all but the new one.
	a = rotate(t, ms[2], "joe", tok, api.RotateTokenRequest{RevokeOthers: true})
	a.decode(t, &ans)
	if a.code != http.StatusCreated || ans.Revoked != "others" {
		t.Fatalf("revoke_others = %d %s", a.code, a.body)
	}
	if a := do(t, nil, "POST", ms[0].url("/v1/users/joe/posts"), tok, api.PostRequest{Text: "x"}); a.code == http.StatusCreated {
		t.Errorf("a token revoked by revoke_others still posts")
	}
}

// TestRotateTokenPartition: the user's two replicas rotate its token on
// both sides of a partition, one revoking the creation token, the other
// keeping it and revoking its own rotation's predecessor. After healing,
// one anti-entropy round leaves both with the same record (the union of
// the two token sets, revocations winning): the creation token gets 401
// through every member, both new tokens work through every member.
func TestRotateTokenPartition(t *testing.T) {
	p := &partition{group: map[string]int{}}
	var addrs []string
	ms := newCluster(t, clusterOpts{n: 2, writeAcks: 1,
		memberTransport: func(i int) http.RoundTripper { return p.transport(func() string { return addrs[i] }) },
		memberAlive: func(i int) func(string) bool {
			return func(m string) bool { return !p.split(addrs[i], m) }
		},
	})
	for i, m := range ms {
		addrs = append(addrs, m.addr)
		p.group[m.addr] = i
	}
	t0 := createUser(t, ms[0], "joe") // on both: two members, two replicas
	for _, m := range ms {
		m.srv.Replica().Wait() // write_acks 1: the second copy goes out in the background
	}
	p.on.Store(true)
	tokens := make([]string, 2)
	for i, m := range ms {
		var ans api.RotateTokenAnswer
		a := rotate(t, m, "joe", t0, api.RotateTokenRequest{RevokeCurrent: i == 0})
		if a.code != http.StatusCreated {
			t.Fatalf("rotation on side %d = %d %s", i, a.code, a.body)
		}
		a.decode(t, &ans)
		tokens[i] = ans.Token
	}
	recs := records(t, ms, "joe")
	if feed.Same(recs[0], recs[1]) {
		t.Fatal("both sides hold the same record: the partition did not split the rotations")
	}
	p.on.Store(false)
	for _, m := range ms {
		m.srv.Replica().Wait()
	}
	if _, err := ms[0].srv.Syncer().Compare(context.Background(), ms[1].addr); err != nil {
		t.Fatalf("anti-entropy: %v", err)
	}
	recs = records(t, ms, "joe")
	if diff := cmp.Diff(recs[0], recs[1]); diff != "" {
		t.Fatalf("after anti-entropy the replicas differ (-%s +%s):\n%s", ms[0].addr, ms[1].addr, diff)
	}
	for _, m := range ms {
		m.srv.Replica().Handoff(context.Background()) // hints change nothing more
	}
	if diff := cmp.Diff(recs, records(t, ms, "joe")); diff != "" {
		t.Fatalf("hints changed the merged record:\n%s", diff)
	}
	for _, m := range ms {
		if a := do(t, nil, "POST", m.url("/v1/users/joe/posts"), t0, api.PostRequest{Text: "t0"}); a.code != http.StatusUnauthorized {
			t.Errorf("creation token via %s = %d %s, want 401", m.addr, a.code, a.body)
		}
		for i, tok := range tokens {
			if a := do(t, nil, "POST", m.url("/v1/users/joe/posts"), tok, api.PostRequest{Text: fmt.Sprint("side ", i)}); a.code != http.StatusCreated {
				t.Errorf("side %d's token via %s = %d %s, want 201", i, m.addr, a.code, a.body)
			}
		}
	}
}

// TestRotateTokenRetried: a rotation a forwarder sends to a second
// member after the first did not answer (the same pinned token and
// clock) issues one token, and the second answer repeats it, even
// though the first revoked the token the request carries.
func TestRotateTokenRetried(t *testing.T) {
	ms := newCluster(t, clusterOpts{n: 2})
	t0 := createUser(t, ms[0], "joe")
	pin := fmt.Sprint(uint64(ms[0].srv.c.Clock().Now()), " ", account.NewToken())
	var toks []string
	for range 2 {
		req, _ := http.NewRequest("POST", ms[1].url("/v1/users/joe/tokens"), strings.NewReader(`{"revoke_current":true}`))
		req.Header.Set("Authorization", "Bearer "+t0)
		req.Header.Set(api.HeaderNewToken, pin)
		req.Header.Set(api.HeaderCluster, transport.Sign(testSecret, time.Now(), "POST", "/v1/users/joe/tokens", []byte(`{"revoke_current":true}`)))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var ans api.RotateTokenAnswer
		var b bytes.Buffer
		b.ReadFrom(resp.Body)
		resp.Body.Close()
		a := answer{resp.StatusCode, resp.Header, b.Bytes()}
		if a.code != http.StatusCreated {
			t.Fatalf("rotation = %d %s", a.code, a.body)
		}
		a.decode(t, &ans)
		toks = append(toks, ans.Token)
	}
	if toks[0] != toks[1] || !strings.HasSuffix(pin, toks[0]) {
		t.Errorf("a retried rotation issued %q then %q, want the pinned token both times", toks[0], toks[1])
	}
	// A client cannot pin: its header is ignored.
	a := rotate(t, ms[1], "joe", toks[0], api.RotateTokenRequest{})
	var ans api.RotateTokenAnswer
	a.decode(t, &ans)
	if a.code != http.StatusCreated || ans.Token == toks[0] {
		t.Errorf("client rotation = %d %s", a.code, a.body)
	}
}

// TestRotateTokenEndsStream: a live timeline stream opened with a token
// that a rotation then revokes sends nothing more on it: it says so and
// ends (appnode_live_streams_dropped_total{reason="token_revoked"}), and
// a stream opened with the new token goes on.
func TestRotateTokenEndsStream(t *testing.T) {
	var ahead atomic.Int64 // how far the members' clock is ahead of time.Now
	now := func() time.Time { return time.Now().Add(time.Duration(ahead.Load())) }
	ms := newCluster(t, clusterOpts{n: 3, registry: func(int) prometheus.Registerer { return prometheus.NewRegistry() }, now: now})
	for _, m := range ms {
		m.srv.SetStreamHeartbeat(time.Hour) // revocation is noticed without one
	}
	tr := createUser(t, ms[0], "reader")
	ta := createUser(t, ms[0], "ann")
	mustFollow(t, ms[0], "PUT", "reader", tr, "ann")
	old := openStream(t, notOwner(ms, "reader"), "reader", tr, "")
	mustPost(t, ms[1], "ann", ta, "before the rotation")
	old.next(t, 2*time.Second)

	a := rotate(t, ms[2], "reader", tr, api.RotateTokenRequest{RevokeCurrent: true})
	if a.code != http.StatusCreated {
		t.Fatalf("rotation = %d %s", a.code, a.body)
	}
	var ans api.RotateTokenAnswer
	a.decode(t, &ans)
	fresh := openStream(t, ms[0], "reader", ans.Token, "")
	// The old stream's last check may be just before the rotation: move
	// the members' clock on to when its next is due.
	ahead.Add(int64(live.AuthorizedEvery))
	p := mustPost(t, ms[1], "ann", ta, "after the rotation")
	if ev := fresh.next(t, 2*time.Second); ev.ID != p.ID.String() {
		t.Errorf("the new token's stream got %s, want %s", ev.ID, p.ID)
	}
	old.comment(t, "token revoked", 2*time.Second)
	for {
		ev, ok := <-old.events
		if !ok {
			break
		}
		if ev.ID != "" {
			t.Errorf("the revoked token's stream got event %s after the rotation", ev.ID)
		}
	}
	dropped := 0.0
	for _, m := range ms {
		dropped += m.metric(t, "appnode_live_streams_dropped_total", "token_revoked")
	}
	if dropped != 1 {
		t.Errorf("appnode_live_streams_dropped_total{reason=token_revoked} summed over the members = %v, want 1", dropped)
	}
}
