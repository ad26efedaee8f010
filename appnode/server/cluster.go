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
)

// Headers, as in package api.
const (
	HeaderCluster     = api.HeaderCluster
	HeaderHops        = api.HeaderHops
	HeaderOwner       = api.HeaderOwner
	HeaderUnreachable = api.HeaderUnreachable
	HeaderFallback    = api.HeaderFallback
	HeaderRingVersion = api.HeaderRingVersion
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

// sign returns the HeaderCluster value for a request.
func sign(secret []byte, now time.Time, method, uri string) string {
	ts := strconv.FormatInt(now.Unix(), 10)
	return ts + "." + mac(secret, ts, method, uri)
}

func mac(secret []byte, ts, method, uri string) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts + "\n" + method + "\n" + uri))
	return hex.EncodeToString(m.Sum(nil))
}

// verify checks a request's HeaderCluster.
func verify(secret []byte, now time.Time, r *http.Request) bool {
	v := r.Header.Get(HeaderCluster)
	ts, sum, ok := strings.Cut(v, ".")
	if !ok || len(secret) == 0 {
		return false
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return false
	}
	if d := now.Sub(time.Unix(sec, 0)); d > clockSkew || d < -clockSkew {
		return false
	}
	return hmac.Equal([]byte(sum), []byte(mac(secret, ts, r.Method, r.URL.RequestURI())))
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
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("encoding request to %s: %w", member, err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://"+member+uri, rd)
	if err != nil {
		return fmt.Errorf("building request to %s: %w", member, err)
	}
	req.Header.Set(HeaderCluster, sign(s.secret, s.now(), method, uri))
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := s.peers.Do(req)
	if err != nil {
		return fmt.Errorf("calling %s: %w", member, err)
	}
	defer resp.Body.Close()
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
