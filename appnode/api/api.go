// Package api defines the JSON bodies of appnode's HTTP API and the
// headers it uses, shared by the server and the Go client. It has no
// dependencies beyond the data model, so importing it (or the client)
// does not pull in the server or its storage engine.
package api

import (
	"fmt"
	"net/url"
	"strconv"
	"time"

	"github.com/ringfront/ringfront/appnode/feed"
	"github.com/ringfront/ringfront/appnode/ring"
)

// Request and answer bodies.
type (
	// CreateUserRequest is the body of POST /v1/users.
	CreateUserRequest struct {
		Name string `json:"name"`
		// Token, when set, is the token to create the user with
		// (TokenLen characters of URL-safe base64, 32 random bytes)
		// instead of one the member draws. A client that sets it can
		// send the same request to another member when the first does
		// not answer: both store the same user, and the second answers
		// 201 too.
		Token string `json:"token,omitempty"`
	}
	// CreateUserAnswer is the answer to POST /v1/users; the token is
	// shown only here.
	CreateUserAnswer struct {
		Name  string `json:"name"`
		Token string `json:"token"`
	}
	// RotateTokenRequest is the body of POST /v1/users/{name}/tokens,
	// authorised with one of the user's live tokens (the current one):
	// it issues a new token and, when asked, revokes the current one or
	// every other. "{}" issues a token and revokes nothing.
	RotateTokenRequest struct {
		RevokeCurrent bool `json:"revoke_current,omitempty"`
		RevokeOthers  bool `json:"revoke_others,omitempty"`
	}
	// RotateTokenAnswer is the answer to POST /v1/users/{name}/tokens;
	// the new token is shown only here. Revoked says what was revoked:
	// "", "current" or "others".
	RotateTokenAnswer struct {
		Name    string `json:"name"`
		Token   string `json:"token"`
		Revoked string `json:"revoked,omitempty"`
	}
	// UserAnswer is the answer to GET /v1/users/{name}.
	UserAnswer struct {
		Name    string    `json:"name"`
		Created time.Time `json:"created"`
	}
	// PostRequest is the body of POST /v1/users/{name}/posts.
	PostRequest struct {
		Text string `json:"text"`
		// ID, when set, is the new post's id (feed.ID's text form, its
		// time within a few minutes of the member's clock) instead of
		// one the member makes. A client that sets it can send the same
		// post to another member when the first does not answer: both
		// store the same post, never two.
		ID string `json:"id,omitempty"`
	}
	// PostsAnswer is a page of posts, newest first; Next is the cursor
	// for the following page (?before=Next), empty on the last page.
	PostsAnswer struct {
		Posts []feed.Post `json:"posts"`
		Next  string      `json:"next"`
	}
	// FollowingAnswer is the answer to GET .../following.
	FollowingAnswer struct {
		Following []string `json:"following"`
	}
	// FollowersAnswer is the answer to GET .../followers.
	FollowersAnswer struct {
		Followers []string `json:"followers"`
	}
	// RingAnswer is the answer to GET /v1/ring.
	RingAnswer struct {
		ring.Info
		Self    string `json:"self"`
		Routing string `json:"routing"`
		// Previous is the ring before the last change, while this
		// member may still be streaming users to their new members.
		Previous *ring.Info `json:"previous,omitempty"`
	}
	// Error is the body of every error answer.
	Error struct {
		Error string `json:"error"`
	}
	// LookupAnswer is the answer to GET /v1/ring/lookup.
	LookupAnswer struct {
		Key        string   `json:"key"`
		Hash       string   `json:"hash"`
		Owner      string   `json:"owner"`
		Preference []string `json:"preference"`
		Version    string   `json:"version"`
	}
)

// TokenLen is the length of a user token: 32 bytes in URL-safe base64
// without padding.
const TokenLen = 43

// Headers between members and towards clients.
const (
	// HeaderCluster authenticates a node-to-node request sent over HTTP
	// (appnode/transport): "<unix seconds>.<hex HMAC-SHA256(secret,
	// seconds \n method \n URI \n sha256=<hex SHA-256 of the body>)>".
	HeaderCluster = "X-Ringfront-Cluster"
	// HeaderHops counts how often a request has been forwarded; it is
	// believed only on a request with a valid HeaderCluster.
	HeaderHops = "X-Ringfront-Hops"
	// HeaderUnreachable lists, comma-separated, the members a forwarder
	// could not connect to for this request; the member it forwarded to
	// then passes over them as if they were dead. Believed only on a
	// request with a valid HeaderCluster.
	HeaderUnreachable = "X-Ringfront-Unreachable"
	// HeaderFallback asks a member of a user's previous preference list
	// to answer from what it holds, because the user has not yet been
	// streamed to its new members after a ring change. Believed only on
	// a request with a valid HeaderCluster.
	HeaderFallback = "X-Ringfront-Fallback"
	// HeaderBudget is how long, in milliseconds, the forwarder waits for
	// this member's answer before it asks another: the calls the member
	// makes to answer it share that time (peer.WithBudget). Believed
	// only on a request with a valid HeaderCluster.
	HeaderBudget = "X-Ringfront-Budget"
	// HeaderClient is the address of the client whose request a member
	// forwards, as the member that first took the request saw it (the
	// rate limits' and logs' client address). Believed only on a request
	// from another member; a client's own, like its X-Forwarded-For, is
	// never believed.
	HeaderClient = "X-Ringfront-Client"
	// HeaderOwner names the member that owns the request's user.
	HeaderOwner = "X-Ringfront-Owner"
	// HeaderRingVersion is the answering member's ring version; a client
	// whose ring differs refetches it.
	HeaderRingVersion = "X-Ringfront-Ring-Version"
	// HeaderEdgeClock carries the clock of a follow or unfollow (a
	// decimal feed.Timestamp), pinned by the client or else by the
	// first member it reached, so that every member that serves the
	// request — a retry, the next member when one does not answer, or a
	// paused member that reads it late — stores the same edge, and a
	// late copy never beats a later change: a pinned clock older than
	// the edge stored is answered 409 Conflict, and one more than 5
	// minutes ahead of the member's clock 400.
	HeaderEdgeClock = "X-Ringfront-Edge-Clock"
	// HeaderNewToken carries the token a rotation issues and its clock,
	// "<decimal feed.Timestamp> <token>", drawn by the member that took
	// the request, so the member that serves it (or the next one, if
	// that one does not answer) issues the same token entry. Believed
	// only from another member.
	HeaderNewToken = "X-Ringfront-New-Token"
	// HeaderClock carries the sender's hybrid logical clock on every
	// request and answer between members and clients (a decimal
	// feed.Timestamp): each side moves its own clock past it, so a
	// change made after another was seen gets a later clock even when
	// one member's wall clock runs ahead. A client that sends back the
	// latest it saw orders its own changes the same way.
	HeaderClock = "X-Ringfront-Clock"
)

// Page reads a page's query, ?limit= (1 to feed.MaxPage, default
// feed.DefaultPage) and ?before= (a post id, the cursor).
func Page(q url.Values) (limit int, before feed.ID, err error) {
	limit = feed.DefaultPage
	if v := q.Get("limit"); v != "" {
		limit, err = strconv.Atoi(v)
		if err != nil || limit < 1 || limit > feed.MaxPage {
			return 0, before, fmt.Errorf("limit: %q is not a number from 1 to %d", v, feed.MaxPage)
		}
	}
	if v := q.Get("before"); v != "" {
		before, err = feed.ParseID(v)
		if err != nil {
			return 0, before, fmt.Errorf("before: %w", err)
		}
	}
	return limit, before, nil
}
