package feed

import (
	"errors"
	"fmt"
	"time"
	"unicode/utf8"
)

// Limits on user input.
const (
	MaxNameLen = 32
	// MaxTextLen is the longest post, in characters (runes).
	MaxTextLen = 280
	// MaxPage is the largest page a read returns; DefaultPage is used
	// when the request gives no limit.
	MaxPage     = 200
	DefaultPage = 20
)

// Errors for bad input; the server maps them to 400.
var (
	ErrBadName = errors.New("name must be 1-32 characters of a-z, 0-9 and _")
	ErrBadText = errors.New("text must be 1-280 characters of valid UTF-8")
)

// ValidName checks a user name: 1-32 characters of [a-z0-9_].
func ValidName(name string) error {
	if len(name) == 0 || len(name) > MaxNameLen {
		return fmt.Errorf("%w: got %d characters", ErrBadName, len(name))
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return fmt.Errorf("%w: %q has %q", ErrBadName, name, rune(c))
		}
	}
	return nil
}

// ValidText checks a post's text: 1-280 characters of valid UTF-8.
func ValidText(text string) error {
	if !utf8.ValidString(text) {
		return fmt.Errorf("%w: not valid UTF-8", ErrBadText)
	}
	if n := utf8.RuneCountInString(text); n == 0 || n > MaxTextLen {
		return fmt.Errorf("%w: got %d characters", ErrBadText, n)
	}
	return nil
}

// User is a user record. TokenHash is sha256 of the bearer token the
// user was created with; the token itself is never stored. Tokens and
// RevokedBefore are the tokens issued and revoked since (token.go);
// records from before rotation have neither, and load as before.
type User struct {
	Name          string    `json:"name"`
	TokenHash     []byte    `json:"token_hash,omitempty"`
	Created       time.Time `json:"created"`
	Tokens        []Token   `json:"tokens,omitempty"`
	RevokedBefore Timestamp `json:"revoked_before,omitempty"`
}

// Post is an immutable post.
type Post struct {
	ID      ID        `json:"id"`
	Author  string    `json:"author"`
	Text    string    `json:"text"`
	Created time.Time `json:"created"`
}

// Edge is one follow edge, Follower → Followee, as a register resolved
// by its hybrid logical clock: a later add or remove wins, so replicas
// merge edges without losing either side's change.
type Edge struct {
	Follower string    `json:"follower"`
	Followee string    `json:"followee"`
	Clock    Timestamp `json:"clock"`
	Removed  bool      `json:"removed,omitempty"`
}

// Merge returns the edge that wins between a and b (same endpoints): the
// higher clock, and on a tie the removal, so merging is commutative,
// associative and idempotent.
func Merge(a, b Edge) Edge {
	switch {
	case a.Clock > b.Clock:
		return a
	case b.Clock > a.Clock:
		return b
	case b.Removed:
		return b
	}
	return a
}
