package client

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/ringfront/ringfront/appnode/api"
	"github.com/ringfront/ringfront/appnode/feed"
)

// Reconnect delays of Stream: the first retry after streamRetryMin,
// doubling up to streamRetryMax while no member answers.
const (
	streamRetryMin = 250 * time.Millisecond
	streamRetryMax = 30 * time.Second
)

// Stream follows user name's live home timeline (GET
// /v1/users/NAME/timeline/stream, with name's token) and calls f with
// every new post, until ctx is done or f returns an error. It connects to
// the first member of name's preference list that answers; when the
// connection breaks it connects again, with Last-Event-ID set to the last
// post seen, so the posts made meanwhile are replayed. after, when not
// empty, is a post id to start after. An error answer from a member (a
// wrong token, an unknown user) ends it. It returns ctx's error, f's, or
// the member's answer.
func (c *Client) Stream(ctx context.Context, name, token, after string, f func(feed.Post) error) error {
	if err := feed.ValidName(name); err != nil {
		return err
	}
	if after != "" {
		if _, err := feed.ParseID(after); err != nil {
			return fmt.Errorf("after: %w", err)
		}
	}
	// A stream lasts: no overall timeout, only the dial's and the
	// transport's own.
	hc := *c.http
	hc.Timeout = 0
	wait := streamRetryMin
	for {
		r, err := c.Ring(ctx)
		if err != nil {
			return err
		}
		var buf [8]string
		for _, m := range r.Preference(buf[:0], name) {
			got, err := c.stream(ctx, &hc, m, name, token, &after, f)
			if got {
				wait = streamRetryMin // it was connected: try again soon
			}
			var e *Error
			var stop stopError
			switch {
			case errors.As(err, &stop):
				return stop.err
			case ctx.Err() != nil:
				return ctx.Err()
			case errors.As(err, &e):
				return err
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, streamRetryMax)
	}
}

// stopError carries the error of Stream's callback, which ends it.
type stopError struct{ err error }

func (e stopError) Error() string { return e.err.Error() }

// stream reads one connection to member until it breaks; connected
// reports whether it answered 200.
func (c *Client) stream(ctx context.Context, hc *http.Client, member, name, token string, after *string, f func(feed.Post) error) (connected bool, err error) {
	// The member has the attempt timeout to answer; then the stream may
	// last as long as it lasts.
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	timer := time.AfterFunc(c.attempt, cancel)
	req, err := http.NewRequestWithContext(sctx, http.MethodGet, c.scheme+"://"+member+"/v1/users/"+name+"/timeline/stream", nil)
	if err != nil {
		timer.Stop()
		return false, fmt.Errorf("building the stream request: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "text/event-stream")
	if *after != "" {
		req.Header.Set("Last-Event-ID", *after)
	}
	resp, err := hc.Do(req)
	if !timer.Stop() && err != nil {
		return false, fmt.Errorf("streaming from %s: no answer within %v", member, c.attempt)
	}
	if err != nil {
		return false, fmt.Errorf("streaming from %s: %w", member, err)
	}
	defer resp.Body.Close()
	c.NoteVersion(resp.Header.Get(api.HeaderRingVersion))
	if resp.StatusCode != http.StatusOK {
		var e api.Error
		json.NewDecoder(io.LimitReader(resp.Body, 1<<16)).Decode(&e)
		if e.Error == "" {
			e.Error = resp.Status
		}
		return false, &Error{Status: resp.StatusCode, Message: e.Error, Member: member}
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 4096), 64<<10)
	var id, data string
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if data != "" {
				var p feed.Post
				if err := json.Unmarshal([]byte(data), &p); err != nil {
					return true, fmt.Errorf("decoding an event from %s: %w", member, err)
				}
				if err := f(p); err != nil {
					return true, stopError{err}
				}
				if id != "" {
					*after = id
				}
			}
			id, data = "", ""
		case strings.HasPrefix(line, "id:"):
			id = strings.TrimPrefix(strings.TrimPrefix(line, "id:"), " ")
		case strings.HasPrefix(line, "data:"):
			data += strings.TrimPrefix(strings.TrimPrefix(line, "data:"), " ")
		}
	}
	if err := sc.Err(); err != nil {
		return true, fmt.Errorf("reading the stream from %s: %w", member, err)
	}
	return true, fmt.Errorf("stream from %s ended", member)
}
