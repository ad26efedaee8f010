package account

import (
	"bytes"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"

	"github.com/ringfront/ringfront/appnode/api"
	"github.com/ringfront/ringfront/appnode/feed"
	"github.com/ringfront/ringfront/appnode/limits"
	"github.com/ringfront/ringfront/appnode/peer"
	"github.com/ringfront/ringfront/appnode/replica"
	"github.com/ringfront/ringfront/appnode/store"
	"github.com/ringfront/ringfront/appnode/transport"
)

// Options configure Accounts.
type Options struct {
	// Cluster is this member's view of the cluster (its clock).
	Cluster *peer.Cluster
	// Store is this member's database.
	Store *store.Store
	// Replica replicates the users' records.
	Replica *replica.Replica
	// Gate charges a signed-in user's requests to the user's limits.
	Gate *limits.Gate
	// Log is the API's logger.
	Log *slog.Logger
}

// Accounts serves the users and their tokens. It is safe for concurrent
// use.
type Accounts struct {
	c     *peer.Cluster
	store *store.Store
	rep   *replica.Replica
	gate  *limits.Gate
	log   *slog.Logger
}

// New returns the accounts of opts.
func New(opts Options) *Accounts {
	return &Accounts{c: opts.Cluster, store: opts.Store, rep: opts.Replica, gate: opts.Gate, log: opts.Log}
}

// Authorize checks the bearer token of user name and answers the
// request itself (401, 403, 404, 429 or a store error) when it is not
// right or the user is over its rate limit.
func (a *Accounts) Authorize(w http.ResponseWriter, r *http.Request, name string) bool {
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || token == "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="appnode"`)
		transport.WriteError(w, http.StatusUnauthorized, fmt.Errorf("this needs %s's token (Authorization: Bearer ...)", name))
		return false
	}
	u, err := a.store.User(name)
	if err != nil {
		transport.StoreError(w, err)
		return false
	}
	if !tokenAccepted(w, u, token) {
		return false
	}
	return a.gate.AdmitUser(w, r, name)
}

// SignUp reads a sign-up (POST /v1/users) and returns the user's name
// and the handler that creates the user on the member that answers for
// it, for the server to route; it answers the request itself (400) and
// returns false when the request is wrong.
func (a *Accounts) SignUp(w http.ResponseWriter, r *http.Request) (string, http.HandlerFunc, bool) {
	var req api.CreateUserRequest
	if !transport.ReadJSON(w, r, &req, transport.MaxBody) {
		return "", nil, false
	}
	if err := feed.ValidName(req.Name); err != nil {
		transport.WriteError(w, http.StatusBadRequest, err)
		return "", nil, false
	}
	if req.Token == "" {
		// Drawn here, before routing, so that a forward to a member that
		// does not answer can be sent to the next with the same token.
		req.Token = NewToken()
		b, err := json.Marshal(req)
		if err != nil {
			transport.WriteError(w, http.StatusInternalServerError, fmt.Errorf("encoding request: %w", err))
			return "", nil, false
		}
		r.Body = io.NopCloser(bytes.NewReader(b))
	} else if raw, err := base64.RawURLEncoding.DecodeString(req.Token); err != nil || len(req.Token) != api.TokenLen || len(raw) != 32 {
		transport.WriteError(w, http.StatusBadRequest, fmt.Errorf("token: is not %d characters of URL-safe base64 (32 random bytes)", api.TokenLen))
		return "", nil, false
	}
	return req.Name, func(w http.ResponseWriter, r *http.Request) { a.create(w, r, req.Name, req.Token) }, true
}

// create creates user name with token on this member, which answers
// for it. The same request served again (a forwarder that did not hear
// the first answer sent it to the next member) finds the user with the
// same token and answers 201 again.
func (a *Accounts) create(w http.ResponseWriter, r *http.Request, name, token string) {
	u := feed.User{Name: name, TokenHash: HashToken(token), Created: a.c.Clock().Now().Time()}
	switch err := a.store.CreateUser(u); {
	case errors.Is(err, store.ErrExists):
		cur, err := a.store.User(name)
		if err != nil {
			transport.StoreError(w, err)
			return
		}
		if subtle.ConstantTimeCompare(cur.TokenHash, u.TokenHash) != 1 {
			transport.WriteError(w, http.StatusConflict, fmt.Errorf("user %s: %w", name, store.ErrExists))
			return
		}
		u = cur // this very request, served before
	case err != nil:
		transport.StoreError(w, err)
		return
	default:
		if err := a.store.SetHorizon(u.Name, feed.ID{}); err != nil {
			// Without it the first timeline read merges and starts the inbox.
			a.log.Warn("starting an inbox", "op", "create", "user", u.Name, "err", err)
		}
	}
	if err := a.rep.Replicate(r.Context(), u.Name, replica.Record{User: &u}); err != nil {
		replica.WriteError(w, err)
		return
	}
	w.Header().Set("Location", "/v1/users/"+u.Name)
	transport.WriteJSON(w, http.StatusCreated, api.CreateUserAnswer{Name: u.Name, Token: token})
}

// Get serves GET /v1/users/{name}: the user's public record.
func (a *Accounts) Get(w http.ResponseWriter, r *http.Request) {
	u, err := a.store.User(r.PathValue("name"))
	if err != nil {
		transport.StoreError(w, err)
		if errors.Is(err, store.ErrNotFound) {
			a.rep.RepairAfterRead(r, r.PathValue("name")) // a replica may have it
		}
		return
	}
	transport.WriteJSON(w, http.StatusOK, api.UserAnswer{Name: u.Name, Created: u.Created})
	a.rep.RepairAfterRead(r, u.Name)
}

// Exists returns nil when user name is stored here, else
// store.ErrNotFound or the store's error.
func (a *Accounts) Exists(name string) error {
	ok, err := a.store.HasUser(name)
	switch {
	case err != nil:
		return err
	case !ok:
		return fmt.Errorf("user %s: %w", name, store.ErrNotFound)
	}
	return nil
}
