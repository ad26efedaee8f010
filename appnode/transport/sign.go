package transport

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/ringfront/ringfront/appnode/feed"
	"github.com/ringfront/ringfront/internal/daemon"
)

// How a member knows that a request comes from another member. Over a
// member link, the link's connection was authenticated once, by
// challenge and response (package link), and every request on it is trusted.
// Over HTTP, HeaderCluster is "<unix time>.<hex HMAC-SHA256>" under the
// cluster secret of the time, method, URI and the SHA-256 of the body:
// internal calls and forwarded client requests alike (a forward's body
// is buffered anyway, so that it can go to a second member). The
// receiver reads the body (bounded) before it believes anything, so a
// body changed on the way is refused (401). For a forwarded client
// request the signature only makes the owner believe the hop count and
// the members to pass over; what the request may do is decided by the
// client's own bearer token, which the owner checks itself, exactly as
// for a request that reached it directly.

// ClockSkew is how far a signed request's time may be from ours: wide
// enough for unsynchronised clocks, narrow enough that a captured
// request cannot be replayed for long.
const ClockSkew = 5 * time.Minute

// ErrCluster is the answer to a member request without valid
// credentials.
var ErrCluster = errors.New("missing or wrong cluster credentials")

// Sign returns the HeaderCluster value for a request with the given
// body (nil: none).
func Sign(secret []byte, now time.Time, method, uri string, body []byte) string {
	ts := strconv.FormatInt(now.Unix(), 10)
	return ts + "." + mac(secret, ts, method, uri, body)
}

func mac(secret []byte, ts, method, uri string, body []byte) string {
	sum := sha256.Sum256(body)
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts + "\n" + method + "\n" + uri + "\nsha256=" + hex.EncodeToString(sum[:])))
	return hex.EncodeToString(m.Sum(nil))
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
	if d := now.Sub(time.Unix(sec, 0)); d > ClockSkew || d < -ClockSkew {
		return "", "", false
	}
	return ts, sum, true
}

// memberKey marks, in a request's context, a request that another
// member sent: over a link, or signed.
type memberKey struct{}

// FromMember reports whether r came from another member: over a link,
// or signed and checked by Authenticate.
func FromMember(r *http.Request) bool { return r.Context().Value(memberKey{}) != nil }

// errUnsigned is Authenticate's error for a request without a valid
// signature.
var errUnsigned = fmt.Errorf("%w", ErrCluster)

// errPlainMember refuses a member request that did not come over a
// member TLS connection, on a member that has member TLS.
var errPlainMember = fmt.Errorf("%w: member traffic must come over TLS with this cluster's member certificate", ErrCluster)

// Authenticate checks that r comes from another member: over a link, or
// signed (HeaderCluster) over its body, which it reads whole (at most
// limit bytes) and puts back. It returns r marked as from a member
// (FromMember), or an error: errUnsigned, or a body over limit
// (*http.MaxBytesError) or unreadable.
func (t *Transport) Authenticate(w http.ResponseWriter, r *http.Request, limit int64) (*http.Request, error) {
	if FromMember(r) {
		return r, nil
	}
	if t.tls != nil && !MemberConn(r) {
		return r, errPlainMember
	}
	secret := t.key()
	ts, sum, ok := signedAt(secret, t.now(), r)
	if !ok {
		// Refused before its body is read.
		return r, errUnsigned
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	r.Body = io.NopCloser(bytes.NewReader(body))
	if err != nil {
		return r, err
	}
	if !hmac.Equal([]byte(sum), []byte(mac(secret, ts, r.Method, r.URL.RequestURI(), body))) {
		return r, errUnsigned
	}
	return r.WithContext(context.WithValue(r.Context(), memberKey{}, true)), nil
}

// Internal wraps a handler of the members' own calls (/internal/ routes):
// it refuses (401) a request that does not come from another member
// (Authenticate), reads the body (at most limit bytes), checks the
// {name} in the path, and serves the request here, never routed. The
// handler reads the body again from memory.
func (t *Transport) Internal(h http.HandlerFunc, limit int64) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		r, err := t.Authenticate(w, r, limit)
		if err == nil && !FromMember(r) {
			err = errUnsigned
		}
		if err == nil {
			// A request over a link has its body still to read.
			var body []byte
			body, err = io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		var mbe *http.MaxBytesError
		switch {
		case errors.Is(err, errUnsigned):
			daemon.WriteError(w, http.StatusUnauthorized, ErrCluster)
			return
		case errors.Is(err, errPlainMember):
			daemon.WriteError(w, http.StatusUnauthorized, err)
			return
		case errors.As(err, &mbe):
			daemon.WriteError(w, http.StatusRequestEntityTooLarge, fmt.Errorf("request body is larger than %d bytes", limit))
			return
		case err != nil:
			daemon.WriteError(w, http.StatusBadRequest, fmt.Errorf("reading request body: %w", err))
			return
		}
		if name := r.PathValue("name"); name != "" {
			if err := feed.ValidName(name); err != nil {
				daemon.WriteError(w, http.StatusBadRequest, err)
				return
			}
		}
		h(w, r)
	}
}
