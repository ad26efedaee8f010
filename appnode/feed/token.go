package feed

import (
	"bytes"
	"crypto/subtle"
	"errors"
	"fmt"
	"slices"
)

// Tokens that can be rotated and revoked.
//
// A user record keeps the hash of the token it was created with
// (TokenHash, which with Created identifies the record: see Wins) and a
// set of token entries, one per token issued or revoked since. The set
// is a state-based CRDT, so that rotations on different replicas (two
// sides of a partition, or a replica serving while the owner is down)
// merge deterministically, whatever order the copies meet in:
//
//   - an entry is keyed by its token's hash and carries the clock it was
//     issued at and, once revoked, the clock it was revoked at. A hash
//     has one issue clock: the member that takes a rotation draws the
//     token and its clock before routing it, so a retry served by
//     another member issues the same entry;
//   - merging two copies of one record takes the union of the entries;
//     for a hash in both, revocation wins (the earlier revocation clock
//     is kept), so a revoked token never comes back;
//   - RevokedBefore is a watermark: every token issued before it is
//     revoked, the creation token included (issued at Created). Merging
//     takes the larger watermark, and entries below it are dropped: they
//     are revoked whatever they say. It is how the set stays bounded:
//     revoked entries are tombstones, kept until a rotation moves the
//     watermark past them (compact), and a rotation never moves it past
//     a token it knows to be live;
//   - two different creations of one name (see Wins) do not merge: the
//     winner's record, tokens and all, replaces the loser's.
//
// A member therefore never accepts a token once it has seen its
// revocation: every merge keeps or adds revocations, none removes one.

// Token is one entry of a user's token set (see above).
type Token struct {
	// Hash is sha256 of the bearer token; the token itself is never
	// stored.
	Hash []byte `json:"hash"`
	// Issued is the hybrid logical clock the token was issued at.
	Issued Timestamp `json:"issued"`
	// Revoked is the clock it was revoked at; 0 while it is live.
	Revoked Timestamp `json:"revoked,omitempty"`
}

// Bounds of a user's token set: a record stays well inside the
// replication's per-record budget (replica.MaxRecordsBody assumes 4 KiB;
// an entry is about 120 bytes of JSON).
const (
	// MaxLiveTokens is how many tokens a user may hold at once.
	MaxLiveTokens = 8
	// MaxTokenEntries is how many entries, live and revoked, the set
	// may keep after compaction.
	MaxTokenEntries = 24
)

// ErrTooManyTokens refuses a rotation that would leave the set over one
// of its bounds.
var ErrTooManyTokens = errors.New("too many tokens")

// TokenState is what a user record says of a token.
type TokenState int

// Token states.
const (
	// TokenUnknown: not one of the user's tokens (or one revoked so
	// long ago that its entry has been dropped).
	TokenUnknown TokenState = iota
	// TokenLive: the token is valid.
	TokenLive
	// TokenRevoked: the token was the user's and has been revoked.
	TokenRevoked
)

// createdClock is the clock the creation token counts as issued at.
func (u User) createdClock() Timestamp {
	return Timestamp(uint64(u.Created.UnixMilli()) << logicalBits)
}

// TokenState says whether hash (sha256 of a bearer token) is one of
// u's live tokens, a revoked one, or neither.
func (u User) TokenState(hash []byte) TokenState {
	for _, t := range u.Tokens {
		if subtle.ConstantTimeCompare(t.Hash, hash) == 1 {
			if t.Revoked != 0 || t.Issued < u.RevokedBefore {
				return TokenRevoked
			}
			return TokenLive
		}
	}
	if subtle.ConstantTimeCompare(u.TokenHash, hash) == 1 {
		if u.createdClock() < u.RevokedBefore {
			return TokenRevoked
		}
		return TokenLive
	}
	return TokenUnknown
}

// Issued returns the entry of hash when u has one.
func (u User) Issued(hash []byte) (Token, bool) {
	for _, t := range u.Tokens {
		if bytes.Equal(t.Hash, hash) {
			return t, true
		}
	}
	return Token{}, false
}

// live lists the hashes of u's live tokens with their issue clocks.
func (u User) live() []Token {
	var out []Token
	if u.TokenState(u.TokenHash) == TokenLive {
		out = append(out, Token{Hash: u.TokenHash, Issued: u.createdClock()})
	}
	for _, t := range u.Tokens {
		if t.Revoked == 0 && t.Issued >= u.RevokedBefore && !bytes.Equal(t.Hash, u.TokenHash) {
			out = append(out, t)
		}
	}
	return out
}

// Revocation says which tokens a rotation revokes besides issuing one.
type Revocation int

// Revocations.
const (
	// KeepCurrent revokes nothing.
	KeepCurrent Revocation = iota
	// RevokeCurrent revokes the token the rotation was authorised with.
	RevokeCurrent
	// RevokeOthers revokes every token but the new one.
	RevokeOthers
)

// Rotate returns u with the token whose hash is newHash issued at
// clock at, and current (the hash of the token the request was
// authorised with) or every other token revoked at the same clock as
// rev says. Applying the same rotation twice gives the same record.
// It fails with ErrTooManyTokens when the user would hold more than
// MaxLiveTokens, or the set keep more than MaxTokenEntries entries
// after compaction; u is then unchanged.
func (u User) Rotate(newHash []byte, at Timestamp, current []byte, rev Revocation) (User, error) {
	d := u.clone()
	d.add(Token{Hash: bytes.Clone(newHash), Issued: at})
	switch rev {
	case RevokeCurrent:
		d.revoke(current, at)
	case RevokeOthers:
		for _, t := range u.live() {
			if !bytes.Equal(t.Hash, newHash) {
				d.revoke(t.Hash, at)
			}
		}
	}
	d.compact()
	d.normalize()
	if n := len(d.live()); n > MaxLiveTokens {
		return u, fmt.Errorf("%w: %s would hold %d live tokens, at most %d (revoke the current one, or all others)", ErrTooManyTokens, u.Name, n, MaxLiveTokens)
	}
	if n := len(d.Tokens); n > MaxTokenEntries {
		return u, fmt.Errorf("%w: %s would keep %d token entries, at most %d (revoke all others to let the old ones go)", ErrTooManyTokens, u.Name, n, MaxTokenEntries)
	}
	return d, nil
}

// revoke marks the token hash revoked at clock at (the creation token
// gets an entry of its own).
func (u *User) revoke(hash []byte, at Timestamp) {
	issued := u.createdClock()
	if t, ok := u.Issued(hash); ok {
		issued = t.Issued
	} else if !bytes.Equal(hash, u.TokenHash) {
		return // not one of u's tokens: nothing to revoke
	}
	u.add(Token{Hash: bytes.Clone(hash), Issued: issued, Revoked: at})
}

// add merges entry t into u's set.
func (u *User) add(t Token) {
	for i, cur := range u.Tokens {
		if bytes.Equal(cur.Hash, t.Hash) {
			u.Tokens[i] = joinToken(cur, t)
			return
		}
	}
	u.Tokens = append(u.Tokens, t)
}

// compact moves the watermark up to the oldest live token, when the set
// has more entries than live tokens allow for, so the tombstones older
// than every live token are dropped (normalize). It never revokes a
// token u knows to be live; a token issued elsewhere (on the other side
// of a partition) before the new watermark is revoked when the copies
// merge: deterministic, and on the safe side.
func (u *User) compact() {
	if len(u.Tokens) <= MaxLiveTokens {
		return
	}
	live := u.live()
	if len(live) == 0 {
		return
	}
	oldest := live[0].Issued
	for _, t := range live[1:] {
		oldest = min(oldest, t.Issued)
	}
	u.RevokedBefore = max(u.RevokedBefore, oldest)
}

// joinToken merges two entries of one hash: revocation wins, with the
// earlier revocation clock; the issue clock is the earlier one (they
// are the same for a hash, see above).
func joinToken(a, b Token) Token {
	out := a
	out.Issued = min(a.Issued, b.Issued)
	switch {
	case a.Revoked == 0:
		out.Revoked = b.Revoked
	case b.Revoked != 0:
		out.Revoked = min(a.Revoked, b.Revoked)
	}
	return out
}

// normalize drops the entries below the watermark and sorts the rest by
// hash, so equal sets encode to equal bytes (the anti-entropy digests
// compare records by their encoding).
func (u *User) normalize() {
	u.Tokens = slices.DeleteFunc(u.Tokens, func(t Token) bool { return t.Issued < u.RevokedBefore })
	slices.SortFunc(u.Tokens, func(a, b Token) int { return bytes.Compare(a.Hash, b.Hash) })
	if len(u.Tokens) == 0 {
		u.Tokens = nil
	}
}

func (u User) clone() User {
	u.Tokens = slices.Clone(u.Tokens)
	return u
}

// Join merges two copies of the user record of one name: the winner of
// two different creations (Wins), or, for copies of one creation, the
// union of their token sets (see above). It is commutative, associative
// and idempotent, so every replica converges on the same record.
func Join(a, b User) User {
	switch {
	case Wins(a, b):
		a = a.clone()
		a.normalize()
		return a
	case Wins(b, a):
		b = b.clone()
		b.normalize()
		return b
	}
	out := a.clone()
	out.RevokedBefore = max(a.RevokedBefore, b.RevokedBefore)
	for _, t := range b.Tokens {
		out.add(t)
	}
	out.normalize()
	return out
}

// Same reports whether a and b are the same record: one creation, and
// the same token set.
func Same(a, b User) bool {
	return a.Name == b.Name && a.Created.Equal(b.Created) && bytes.Equal(a.TokenHash, b.TokenHash) &&
		a.RevokedBefore == b.RevokedBefore &&
		slices.EqualFunc(a.Tokens, b.Tokens, func(x, y Token) bool {
			return bytes.Equal(x.Hash, y.Hash) && x.Issued == y.Issued && x.Revoked == y.Revoked
		})
}
