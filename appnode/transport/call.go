package transport

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"syscall"

	"github.com/ringfront/ringfront/appnode/transport/frame"
	"github.com/ringfront/ringfront/appnode/transport/link"
)

// Error is a non-2xx answer from another member: it is up, and refused
// or failed this request.
type Error struct {
	Status int
	Msg    string
}

func (e *Error) Error() string { return fmt.Sprintf("%d %s", e.Status, e.Msg) }

// Unreachable reports whether err means the request never reached the
// member: the connection could not be made.
func Unreachable(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// Refused reports whether err is a refused connection: the member's
// machine answered, but no appnode listens.
func Refused(err error) bool {
	return errors.Is(err, syscall.ECONNREFUSED)
}

// Call makes a call to another member: method and uri on member, body
// (nil: none) sent as JSON, the JSON answer decoded into out (nil:
// discarded). It waits at most CallTimeout. A non-2xx answer is an
// *Error (wrapped).
func (t *Transport) Call(ctx context.Context, method, member, uri string, body, out any) error {
	var b []byte
	if body != nil {
		var err error
		if b, err = json.Marshal(body); err != nil {
			return fmt.Errorf("encoding request to %s: %w", member, err)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, CallTimeout)
	defer cancel()
	code, h, ans, err := t.exchange(ctx, method, member, uri, b)
	if err != nil {
		return fmt.Errorf("calling %s: %w", member, err)
	}
	t.observe(h.Get(HeaderClock))
	if code/100 != 2 {
		var e struct {
			Error string `json:"error"`
		}
		json.Unmarshal(ans, &e)
		if e.Error == "" {
			e.Error = fmt.Sprintf("%d %s", code, http.StatusText(code))
		}
		return fmt.Errorf("%s %s on %s: %w", method, uri, member, &Error{code, e.Error})
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(ans, out); err != nil {
		return fmt.Errorf("decoding answer from %s: %w", member, err)
	}
	return nil
}

// exchange sends one request to member, over a link when links are on
// and the member offers them, else signed over HTTP, and returns the
// whole answer.
func (t *Transport) exchange(ctx context.Context, method, member, uri string, body []byte) (int, http.Header, []byte, error) {
	h := http.Header{}
	h.Set(HeaderClock, t.stamp())
	if body != nil {
		h.Set("Content-Type", "application/json")
	}
	if t.links.Load() {
		payload, err := t.pool.RoundTrip(ctx, member, link.EncodeRequest(method, uri, "", h), body)
		if err == nil {
			code, ah, ans, err := link.DecodeAnswer(payload)
			return code, ah, ans, err
		}
		if !errors.Is(err, link.ErrUnsupported) {
			return 0, nil, nil, err
		}
	}
	req, err := http.NewRequestWithContext(ctx, method, t.scheme+"://"+member+uri, bytes.NewReader(body))
	if err != nil {
		return 0, nil, nil, fmt.Errorf("building request: %w", err)
	}
	if body == nil {
		req.Body, req.GetBody, req.ContentLength = http.NoBody, nil, 0
	}
	req.Header = h
	req.Header.Set(HeaderCluster, Sign(t.key(), t.now(), method, uri, body))
	resp, err := t.http.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	ans, err := io.ReadAll(io.LimitReader(resp.Body, frame.Max))
	if err != nil {
		return 0, nil, nil, fmt.Errorf("reading the answer: %w", err)
	}
	return resp.StatusCode, resp.Header, ans, nil
}
