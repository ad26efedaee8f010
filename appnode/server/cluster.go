package server

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/ringfront/ringfront/appnode/api"
	"github.com/ringfront/ringfront/appnode/feed"
)

// Headers, as in package api.
const (
	HeaderCluster     = api.HeaderCluster
	HeaderHops        = api.HeaderHops
	HeaderOwner       = api.HeaderOwner
	HeaderUnreachable = api.HeaderUnreachable
	HeaderFallback    = api.HeaderFallback
	HeaderRingVersion = api.HeaderRingVersion
	HeaderClock       = api.HeaderClock
)

// clockSkew is how far a signed request's time may be from ours: wide
// enough for unsynchronised clocks, narrow enough that a captured
// request cannot be replayed for long.
const clockSkew = 5 * time.Minute

// maxHops bounds forwarding: a request that reaches a second non-owner
// (two members whose rings disagree) is forwarded once more, then
// refused with 508.
const maxHops = 2

// errCluster is the answer to a node-to-node request without valid
// credentials.
var errCluster = errors.New("missing or wrong cluster credentials")

// Node-to-node authentication: HeaderCluster is "<unix time>.<hex
// HMAC-SHA256>" under the cluster secret. There are two kinds, and the
// MAC input says which, so a signature of one kind is never accepted as
// the other:
//
//   - Internal calls (replication, hints, records, digests, merges,
//     followers: every /internal/ route) sign time, method, URI and the
//     SHA-256 of the body. Their bodies are small and bounded (each
//     route has its limit) and read whole before anything is done, so
//     the receiver hashes the body it got and a body changed on the way
//     is refused (401). These calls carry the data itself, and nothing
//     else vouches for it.
//   - Forwarded client requests (the ReverseProxy in server.go) sign
//     time, method and URI only, marked "forward". They stream the
//     client's body through, and buffering it only to hash it would cost
//     every forwarded write a copy. (Forwards over a member link, see
//     link.go, carry no per-request signature at all: the link's
//     connection was authenticated once, by challenge and response.) The signature only makes the owner
//     believe the hop count and the members to pass over; what the
//     request may do is decided by the client's own bearer token, which
//     the owner checks itself, exactly as for a request that reached it
//     directly. A tampered forwarded body is therefore no more than a
//     client request with that body: it needs the user's token.

// sign returns the HeaderCluster value for a forwarded client request.
func sign(secret []byte, now time.Time, method, uri string) string {
	ts := strconv.FormatInt(now.Unix(), 10)
	return ts + "." + mac(secret, ts, method, uri, forwardMark)
}

// signBody returns the HeaderCluster value for an internal call with
// the given body (nil: none).
func signBody(secret []byte, now time.Time, method, uri string, body []byte) string {
	ts := strconv.FormatInt(now.Unix(), 10)
	return ts + "." + mac(secret, ts, method, uri, bodyMark(body))
}

// forwardMark ends the MAC input of a forwarded request; bodyMark that
// of an internal call. They cannot be equal: one has no "sha256=".
const forwardMark = "forward"

func bodyMark(body []byte) string {
	sum := sha256.Sum256(body)
	return "sha256=" + hex.EncodeToString(sum[:])
}

func mac(secret []byte, ts, method, uri, mark string) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts + "\n" + method + "\n" + uri + "\n" + mark))
	return hex.EncodeToString(m.Sum(nil))
}

// verify checks a forwarded request's HeaderCluster.
func verify(secret []byte, now time.Time, r *http.Request) bool {
	return verifyMark(secret, now, r, forwardMark)
}

// verifyBody checks an internal call's HeaderCluster against the body
// it arrived with.
func verifyBody(secret []byte, now time.Time, r *http.Request, body []byte) bool {
	return verifyMark(secret, now, r, bodyMark(body))
}

func verifyMark(secret []byte, now time.Time, r *http.Request, mark string) bool {
	ts, sum, ok := signedAt(secret, now, r)
	return ok && hmac.Equal([]byte(sum), []byte(mac(secret, ts, r.Method, r.URL.RequestURI(), mark)))
}

// signedAt splits a request's HeaderCluster into its time and MAC, and
// reports whether it could be valid at all (well formed, recent): what
// can be checked before reading the body.
func signedAt(secret []byte, now time.Time, r *http.Request) (ts, sum string, ok bool) {
	ts, sum, ok = strings.Cut(r.Header.Get(HeaderCluster), ".")
	if !ok || len(secret) == 0 {
		return "", "", false
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return "", "", false
	}
	if d := now.Sub(time.Unix(sec, 0)); d > clockSkew || d < -clockSkew {
		return "", "", false
	}
	return ts, sum, true
}

// peerError is a non-2xx answer from another member.
type peerError struct {
	Status int
	Msg    string
}

func (e *peerError) Error() string { return fmt.Sprintf("%d %s", e.Status, e.Msg) }

// call makes a signed node-to-node request to member and decodes a JSON
// answer into out (if not nil).
func (s *Server) call(ctx context.Context, method, member, uri string, body, out any) error {
	var rd io.Reader
	var b []byte
	if body != nil {
		var err error
		if b, err = json.Marshal(body); err != nil {
			return fmt.Errorf("encoding request to %s: %w", member, err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://"+member+uri, rd)
	if err != nil {
		return fmt.Errorf("building request to %s: %w", member, err)
	}
	req.Header.Set(HeaderCluster, signBody(s.secret, s.now(), method, uri, b))
	req.Header.Set(HeaderClock, strconv.FormatUint(uint64(s.clock.Last()), 10))
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := s.peers.Do(req)
	if err != nil {
		return fmt.Errorf("calling %s: %w", member, err)
	}
	defer resp.Body.Close()
	s.observeClock(resp.Header.Get(HeaderClock))
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error string `json:"error"`
		}
		json.NewDecoder(io.LimitReader(resp.Body, 1<<16)).Decode(&e)
		if e.Error == "" {
			e.Error = resp.Status
		}
		return fmt.Errorf("%s %s on %s: %w", method, uri, member, &peerError{resp.StatusCode, e.Error})
	}
	if out == nil {
		io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("decoding answer from %s: %w", member, err)
	}
	return nil
}

// internal wraps a node-to-node handler: it reads the body (at most
// limit bytes), checks the cluster signature over it (verifyBody), and
// serves the request here, never routed. The handler reads the body
// again from memory.
func (s *Server) internal(h http.HandlerFunc, limit int64) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		viaLink := r.Context().Value(linkRequestKey{}) != nil
		if _, _, ok := signedAt(s.secret, s.now(), r); !ok && !viaLink {
			// Refused before its body is read.
			writeError(w, http.StatusUnauthorized, errCluster)
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
		var mbe *http.MaxBytesError
		switch {
		case errors.As(err, &mbe):
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Errorf("request body is larger than %d bytes", limit))
			return
		case err != nil:
			writeError(w, http.StatusBadRequest, fmt.Errorf("reading request body: %w", err))
			return
		}
		// A request that came over a member link is trusted on the
		// link's own authentication (see link.go), like a forward.
		if !viaLink && !verifyBody(s.secret, s.now(), r, body) {
			writeError(w, http.StatusUnauthorized, errCluster)
			return
		}
		if name := r.PathValue("name"); name != "" {
			if err := feed.ValidName(name); err != nil {
				writeError(w, http.StatusBadRequest, err)
				return
			}
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		h(w, r)
	}
}
