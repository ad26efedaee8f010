package account

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/ringfront/ringfront/appnode/api"
	"github.com/ringfront/ringfront/appnode/feed"
	"github.com/ringfront/ringfront/appnode/replica"
	"github.com/ringfront/ringfront/appnode/store"
	"github.com/ringfront/ringfront/appnode/transport"
)

// NewToken draws a user token: 32 random bytes (nobody guesses them) in
// URL-safe base64, api.TokenLen characters.
func NewToken() string {
	var raw [32]byte
	rand.Read(raw[:])
	return base64.RawURLEncoding.EncodeToString(raw[:])
}

// HashToken is what a user's record keeps of token (feed.User's token
// hashes).
func HashToken(token string) []byte {
	sum := sha256.Sum256([]byte(token))
	return sum[:]
}

// tokenAccepted checks a bearer token against user u's token set and
// answers the request itself when it is not a live token: 401 for one
// that was u's and has been revoked, 403 for any other.
func tokenAccepted(w http.ResponseWriter, u feed.User, token string) bool {
	switch u.TokenState(HashToken(token)) {
	case feed.TokenLive:
		return true
	case feed.TokenRevoked:
		w.Header().Set("WWW-Authenticate", `Bearer realm="appnode", error="invalid_token", error_description="the token was revoked"`)
		transport.WriteError(w, http.StatusUnauthorized, fmt.Errorf("token revoked: this token of %s was revoked (a rotation replaced it); use the new one", u.Name))
		return false
	}
	transport.WriteError(w, http.StatusForbidden, fmt.Errorf("wrong token for %s", u.Name))
	return false
}

// PinToken fixes the token a forwarded rotation issues, and its clock
// (api.HeaderNewToken), unless another member fixed them already (see
// the server's pinner).
func (a *Accounts) PinToken(r *http.Request, body []byte) []byte {
	if _, _, ok := pinnedToken(r); !ok {
		r.Header.Set(api.HeaderNewToken, strconv.FormatUint(uint64(a.c.Clock().Now()), 10)+" "+NewToken())
	}
	return body
}

// pinnedToken reads api.HeaderNewToken from a request another member
// sent.
func pinnedToken(r *http.Request) (string, feed.Timestamp, bool) {
	if !transport.FromMember(r) {
		return "", 0, false
	}
	clock, token, ok := strings.Cut(r.Header.Get(api.HeaderNewToken), " ")
	if !ok {
		return "", 0, false
	}
	at, err := strconv.ParseUint(clock, 10, 64)
	if err != nil || at == 0 || len(token) != api.TokenLen {
		return "", 0, false
	}
	return token, feed.Timestamp(at), true
}

// RotateToken is POST /v1/users/{name}/tokens on the member that
// answers for name: it issues a new token for the user, authorised by
// one of the user's live tokens, and revokes the current one or every
// other as the body asks; then replicates the record like any write
// (write_acks copies before the answer). The same request served again
// (a forwarder that did not hear the first answer sent it on) finds its
// token issued and answers 201 again with it.
func (a *Accounts) RotateToken(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	current, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || current == "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="appnode"`)
		transport.WriteError(w, http.StatusUnauthorized, fmt.Errorf("this needs one of %s's tokens (Authorization: Bearer ...)", name))
		return
	}
	var req api.RotateTokenRequest
	if !transport.ReadJSON(w, r, &req, transport.MaxBody) {
		return
	}
	rev, revoked := feed.KeepCurrent, ""
	switch {
	case req.RevokeCurrent && req.RevokeOthers:
		transport.WriteError(w, http.StatusBadRequest, errors.New("revoke_current and revoke_others: choose one (revoke_others revokes the current token too)"))
		return
	case req.RevokeCurrent:
		rev, revoked = feed.RevokeCurrent, "current"
	case req.RevokeOthers:
		rev, revoked = feed.RevokeOthers, "others"
	}
	token, at, pinned := pinnedToken(r)
	if pinned {
		a.c.Clock().Observe(at)
	} else {
		token, at = NewToken(), a.c.Clock().Now()
	}
	newHash, curHash := HashToken(token), HashToken(current)
	var denied func(http.ResponseWriter) // answers an authorisation failure
	u, _, err := a.store.UpdateUser(name, func(cur *feed.User) (feed.User, error) {
		if cur == nil {
			return feed.User{}, fmt.Errorf("reading user %s: %w", name, store.ErrNotFound)
		}
		if t, ok := cur.Issued(newHash); ok && t.Issued == at {
			return *cur, nil // this very request, served before
		}
		if cur.TokenState(curHash) != feed.TokenLive {
			u := *cur
			denied = func(w http.ResponseWriter) { tokenAccepted(w, u, current) }
			return feed.User{}, errDenied
		}
		return cur.Rotate(newHash, at, curHash, rev)
	})
	switch {
	case errors.Is(err, errDenied):
		denied(w)
		return
	case errors.Is(err, feed.ErrTooManyTokens):
		transport.WriteError(w, http.StatusConflict, err)
		return
	case err != nil:
		transport.StoreError(w, err)
		if errors.Is(err, store.ErrNotFound) {
			a.rep.RepairAfterRead(r, name) // a replica may have it
		}
		return
	}
	if err := a.rep.Replicate(r.Context(), name, replica.Record{User: &u}); err != nil {
		replica.WriteError(w, err)
		return
	}
	transport.WriteJSON(w, http.StatusCreated, api.RotateTokenAnswer{Name: name, Token: token, Revoked: revoked})
}

// errDenied stops a rotation whose token is not live (RotateToken).
var errDenied = errors.New("token not accepted")

// StillLive reports whether token is still one of user name's live
// tokens, for a long request (a live stream) that checks again while it
// runs: false once a rotation revoked it. A store error is no answer:
// the token was good and is not known bad, so it reports true.
func (a *Accounts) StillLive(name, token string) bool {
	u, err := a.store.User(name)
	return err != nil || u.TokenState(HashToken(token)) == feed.TokenLive
}
