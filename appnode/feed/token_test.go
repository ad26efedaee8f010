package feed

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

func hashOf(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

var created = time.UnixMilli(1_700_000_000_000).UTC()

// at is a clock d milliseconds after the user's creation.
func at(d int) Timestamp { return Timestamp(uint64(created.UnixMilli()+int64(d)) << logicalBits) }

func newUser() User { return User{Name: "joe", TokenHash: hashOf("t0"), Created: created} }

func mustRotate(t *testing.T, u User, token string, clock Timestamp, current string, rev Revocation) User {
	t.Helper()
	out, err := u.Rotate(hashOf(token), clock, hashOf(current), rev)
	if err != nil {
		t.Fatalf("rotating to %s: %v", token, err)
	}
	return out
}

func TestRotate(t *testing.T) {
	u := newUser()
	keep := mustRotate(t, u, "t1", at(10), "t0", KeepCurrent)
	cur := mustRotate(t, u, "t1", at(10), "t0", RevokeCurrent)
	two := mustRotate(t, keep, "t2", at(20), "t1", KeepCurrent)
	others := mustRotate(t, two, "t3", at(30), "t1", RevokeOthers)
	for _, tt := range []struct {
		name  string
		u     User
		token string
		want  TokenState
	}{
		{"new user's token", u, "t0", TokenLive},
		{"unknown", u, "nope", TokenUnknown},
		{"kept: old", keep, "t0", TokenLive},
		{"kept: new", keep, "t1", TokenLive},
		{"revoke current: old", cur, "t0", TokenRevoked},
		{"revoke current: new", cur, "t1", TokenLive},
		{"revoke others: creation token", others, "t0", TokenRevoked},
		{"revoke others: t1", others, "t1", TokenRevoked},
		{"revoke others: t2", others, "t2", TokenRevoked},
		{"revoke others: new", others, "t3", TokenLive},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.u.TokenState(hashOf(tt.token)); got != tt.want {
				t.Errorf("TokenState(%s) = %d, want %d (record %+v)", tt.token, got, tt.want, tt.u)
			}
		})
	}
	if again := mustRotate(t, cur, "t1", at(10), "t0", RevokeCurrent); !Same(again, cur) {
		t.Errorf("the same rotation applied twice changed the record:\n%+v\n%+v", cur, again)
	}
}

// TestRotateBounds: the live tokens are capped; revoked entries are
// compacted once a rotation revokes past them, so a user who rotates
// for ever keeps a bounded record.
func TestRotateBounds(t *testing.T) {
	u := newUser()
	cur := "t0"
	for i := 1; i < MaxLiveTokens; i++ {
		u = mustRotate(t, u, fmt.Sprint("k", i), at(i), cur, KeepCurrent)
	}
	if _, err := u.Rotate(hashOf("over"), at(100), hashOf(cur), KeepCurrent); !errors.Is(err, ErrTooManyTokens) {
		t.Errorf("rotation to %d live tokens = %v, want ErrTooManyTokens", MaxLiveTokens+1, err)
	}
	u = mustRotate(t, u, "r0", at(200), cur, RevokeOthers)
	cur = "r0"
	for i := 1; i <= 1000; i++ {
		next := fmt.Sprint("r", i)
		u = mustRotate(t, u, next, at(200+i), cur, RevokeCurrent)
		cur = next
	}
	if n := len(u.Tokens); n > MaxTokenEntries {
		t.Errorf("after 1000 rotations %d entries, want at most %d", n, MaxTokenEntries)
	}
	b, _ := json.Marshal(u)
	if len(b) > 4<<10 {
		t.Errorf("record is %d bytes, over the 4 KiB a replicated record may take", len(b))
	}
	for _, tok := range []string{"t0", "r999"} {
		if u.TokenState(hashOf(tok)) == TokenLive {
			t.Errorf("%s is live after its revocation", tok)
		}
	}
	if u.TokenState(hashOf(cur)) != TokenLive {
		t.Errorf("the last token %s is not live", cur)
	}
	// An old live token holds the watermark down: once its tombstones
	// fill the set, a rotation is refused rather than growing it.
	v := mustRotate(t, newUser(), "a", at(1), "t0", KeepCurrent)
	cur = "a"
	var err error
	for i := 2; i < 100 && err == nil; i++ {
		next := fmt.Sprint("a", i)
		var w User
		w, err = v.Rotate(hashOf(next), at(i), hashOf(cur), RevokeCurrent)
		if err == nil {
			v, cur = w, next
		}
	}
	if !errors.Is(err, ErrTooManyTokens) || len(v.Tokens) > MaxTokenEntries {
		t.Errorf("rotations behind an old live token: %v with %d entries, want ErrTooManyTokens within %d", err, len(v.Tokens), MaxTokenEntries)
	}
}

// TestJoin: copies of one record rotated on different replicas merge
// into one record whatever the order, and a revocation seen anywhere
// holds after every merge.
func TestJoin(t *testing.T) {
	base := newUser()
	a := mustRotate(t, base, "a1", at(10), "t0", RevokeCurrent) // one side revokes t0
	b := mustRotate(t, base, "b1", at(11), "t0", KeepCurrent)   // the other keeps it
	b = mustRotate(t, b, "b2", at(12), "b1", RevokeCurrent)
	c := mustRotate(t, base, "c1", at(13), "t0", RevokeOthers)
	copies := []User{base, a, b, c}
	rng := rand.New(rand.NewPCG(1, 2))
	var first User
	for trial := range 50 {
		order := rng.Perm(len(copies))
		got := copies[order[0]]
		for _, i := range order[1:] {
			if rng.IntN(2) == 0 {
				got = Join(got, copies[i])
			} else {
				got = Join(copies[i], got)
			}
			got = Join(got, got)
		}
		if trial == 0 {
			first = got
		} else if !Same(first, got) {
			t.Fatalf("merge order %v gave\n%+v\nwant\n%+v", order, got, first)
		}
	}
	for tok, want := range map[string]TokenState{"t0": TokenRevoked, "a1": TokenLive, "b1": TokenRevoked, "b2": TokenLive, "c1": TokenLive} {
		if got := first.TokenState(hashOf(tok)); got != want {
			t.Errorf("after the merge %s is %d, want %d", tok, got, want)
		}
	}
	if r := Join(a, b); r.TokenState(hashOf("t0")) != TokenRevoked {
		t.Error("the revocation of t0 on one side was lost in the merge")
	}
	// Another creation of the name: the winner's record replaces the
	// loser's, tokens and all.
	other := User{Name: "joe", TokenHash: hashOf("x0"), Created: created.Add(time.Second)}
	if got := Join(other, a); !Same(got, a) {
		t.Errorf("Join of a later creation = %+v, want the first creation's record", got)
	}
}

// TestUserCompatible: a record stored before rotation existed loads as
// it did, with its creation token live, and encodes to the same bytes.
func TestUserCompatible(t *testing.T) {
	old := []byte(`{"name":"joe","token_hash":"` + b64(hashOf("t0")) + `","created":"2023-11-14T22:13:20Z"}`)
	var u User
	if err := json.Unmarshal(old, &u); err != nil {
		t.Fatal(err)
	}
	if u.TokenState(hashOf("t0")) != TokenLive || u.TokenState(hashOf("t1")) != TokenUnknown {
		t.Errorf("old record's tokens: t0 %d, t1 %d", u.TokenState(hashOf("t0")), u.TokenState(hashOf("t1")))
	}
	b, err := json.Marshal(Join(u, u))
	if err != nil || string(b) != string(old) {
		t.Errorf("old record re-encoded as %s, %v; want %s", b, err, old)
	}
}

func b64(b []byte) string {
	s, _ := json.Marshal(b)
	return string(s[1 : len(s)-1])
}
