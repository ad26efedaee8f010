package live

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"time"

	"github.com/ringfront/ringfront/appnode/fanout"
	"github.com/ringfront/ringfront/appnode/feed"
	"github.com/ringfront/ringfront/appnode/store"
	"github.com/ringfront/ringfront/appnode/timeline"
)

// Live timelines: GET /v1/users/{name}/timeline/stream serves
// server-sent events, one per new entry of name's inbox on the member
// that answers for name (forwarded there from any member; the reverse
// proxy flushes text/event-stream at once). Each event's id is the post
// id and its data the post's JSON; a client that reconnects with
// Last-Event-ID gets the entries after it replayed from the inbox first.
// Posts of followees above the fan-out limit (never pushed) are polled
// for at each heartbeat, so they arrive within one heartbeat interval.

const (
	// maxReplay bounds one replay from the inbox; a client further
	// behind reads the timeline instead.
	maxReplay = 1000
	// recentIDs is how many sent ids a stream remembers to drop an
	// entry it already sent (replayed, then delivered live).
	recentIDs = 256
	// streamRetry is the reconnect delay the stream suggests.
	streamRetry = 2 * time.Second
	// maxPolled bounds the posts of not-pushed followees one heartbeat
	// sends.
	maxPolled = 50
)

// Timelines serves live timelines. It is safe for concurrent use.
type Timelines struct {
	Store    *store.Store
	Timeline *timeline.Timeline
	Hub      *fanout.Hub
	Log      *slog.Logger
	// WriteTimeout bounds one write to a stream's client (the
	// listener's write timeout, moved on at each write so the stream
	// outlives it): a client that stops reading is dropped instead of
	// holding the handler. Zero means DefaultWriteTimeout.
	WriteTimeout time.Duration
	// Authorized, when set, says whether the stream's token is still
	// good (not revoked since the stream began). It is asked before
	// events go out, at most once per AuthorizedEvery, and at every
	// heartbeat: a stream whose token was revoked ends (DropRevoked).
	Authorized func() bool
	// Now is the member's clock, which times the Authorized checks; nil
	// means time.Now.
	Now func() time.Time
}

// AuthorizedEvery is how often, at most, a stream asks Authorized
// before it sends events: no event goes out on a revoked token later
// than this after the revocation reached the member.
const AuthorizedEvery = time.Second

// errRevoked ends a stream whose token was revoked.
var errRevoked = errors.New("the stream's token was revoked")

// DefaultWriteTimeout is a stream's WriteTimeout when none is set.
const DefaultWriteTimeout = 30 * time.Second

// Reasons a member ends a stream (Serve's dropped).
const (
	DropWriteFailed  = "write_failed"  // the client took no events for the write timeout, or its connection broke
	DropReplayFailed = "replay_failed" // a stream that lagged or resumed could not be replayed from the inbox
	DropShutdown     = "shutdown"      // the member is stopping
	DropRevoked      = "token_revoked" // the stream's token was revoked
)

// Drops lists every reason a member ends a stream.
var Drops = []string{DropWriteFailed, DropReplayFailed, DropShutdown, DropRevoked}

// dropFor is the reason for a stream ended by a failed flush.
func dropFor(err error, otherwise string) string {
	if errors.Is(err, errRevoked) {
		return DropRevoked
	}
	return otherwise
}

// Serve streams name's timeline to w, after last (zero: from now), with
// a heartbeat every heartbeat, until the client goes away or the hub
// closes. The caller has checked the request's authorization. dropped
// says why this member ended the stream, if it did (empty: it did not).
func (lt *Timelines) Serve(w http.ResponseWriter, r *http.Request, name string, last feed.ID, heartbeat time.Duration) (dropped string) {
	// Subscribe before the replay, so nothing falls between the two.
	hub := lt.Hub
	sub := hub.Subscribe(name)
	defer hub.Unsubscribe(name, sub)
	st := &eventStream{w: w, rc: http.NewResponseController(w), timeout: lt.WriteTimeout, authorized: lt.Authorized, now: lt.Now}
	if st.now == nil {
		st.now = time.Now
	}
	if st.timeout <= 0 {
		st.timeout = DefaultWriteTimeout
	}
	// sent is the newest id sent; without Last-Event-ID, now, so that a
	// stream that lags before its first event still catches up.
	sent := last
	if sent.IsZero() {
		sent = lt.Timeline.HorizonNow()
	}
	replay := func() error {
		following, err := lt.Store.ActiveFollowing(name)
		if err != nil {
			return err
		}
		follows := map[string]bool{name: true}
		for _, f := range following {
			follows[f] = true
		}
		es, err := lt.Store.InboxAfter(name, sent, maxReplay, func(a string) bool { return follows[a] })
		if err != nil {
			return err
		}
		for _, e := range es {
			st.event(e)
			if e.ID.Compare(sent) > 0 {
				sent = e.ID
			}
		}
		return st.flush()
	}
	// Followees that are not pushed (above the fan-out limit) have no
	// inbox entries: their posts newer than merged are polled for at
	// each heartbeat (and sent when emit is set).
	merged := last
	pollMerged := func(emit bool) error {
		following, err := lt.Store.ActiveFollowing(name)
		if err != nil {
			return err
		}
		celebs, err := lt.Timeline.Merged(r.Context(), following)
		if err != nil || len(celebs) == 0 {
			return err
		}
		posts, _, _, err := lt.Timeline.MergeAuthors(r.Context(), celebs, feed.ID{}, maxPolled)
		if err != nil {
			return err
		}
		newest := merged
		for i := len(posts) - 1; i >= 0; i-- { // oldest first
			p := posts[i]
			if p.ID.Compare(merged) <= 0 {
				continue
			}
			if emit {
				st.event(store.InboxEntry{RawPost: p})
			}
			if p.ID.Compare(newest) > 0 {
				newest = p.ID
			}
		}
		merged = newest
		if !emit {
			return nil
		}
		if merged.Compare(sent) > 0 {
			sent = merged
		}
		return st.flush()
	}
	if last.IsZero() {
		// The newest not-pushed post now is the baseline, taken before
		// the client has an answer: a post it makes after that is new.
		// (Ids come from each member's own clock, so this member's
		// "now" is no bound.)
		if err := pollMerged(false); err != nil {
			lt.Log.Debug("stream poll", "op", "stream", "user", name, "err", err)
		}
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no") // for an nginx in front
	w.WriteHeader(http.StatusOK)
	st.comment(fmt.Sprintf("timeline of %s\nretry: %d", name, streamRetry.Milliseconds()))
	if err := st.flush(); err != nil {
		dropped = dropFor(err, DropWriteFailed)
		return
	}
	if !last.IsZero() {
		if err := replay(); err != nil {
			lt.Log.Debug("stream replay", "op", "stream", "user", name, "err", err)
			dropped = dropFor(err, DropReplayFailed)
			return
		}
		if err := pollMerged(true); err != nil {
			lt.Log.Debug("stream poll", "op", "stream", "user", name, "err", err)
		}
	}
	hb := time.NewTicker(heartbeat)
	defer hb.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-hub.Done():
			dropped = DropShutdown
			return
		case e := <-sub.C:
			if st.sent(e.ID) {
				continue
			}
			st.event(e)
			if e.ID.Compare(sent) > 0 {
				sent = e.ID
			}
		case <-sub.Lagged:
			// Entries were dropped: everything newer than the newest
			// sent is in the inbox.
			if err := replay(); err != nil {
				dropped = dropFor(err, DropReplayFailed)
				return
			}
			continue
		case <-hb.C:
			st.checked = time.Time{} // ask at every heartbeat
			if err := pollMerged(true); err != nil {
				lt.Log.Debug("stream poll", "op", "stream", "user", name, "err", err)
			}
			st.comment("heartbeat")
		}
		if err := st.flush(); err != nil {
			dropped = dropFor(err, DropWriteFailed)
			return
		}
	}
}

// eventStream writes server-sent events.
type eventStream struct {
	w          http.ResponseWriter
	rc         *http.ResponseController
	timeout    time.Duration // for one write
	authorized func() bool   // Timelines.Authorized
	now        func() time.Time
	checked    time.Time // when authorized last said yes, by now
	revoked    bool
	recent     []feed.ID // the last recentIDs ids sent
	err        error
	buf        bytes.Buffer
}

func (st *eventStream) sent(id feed.ID) bool { return slices.Contains(st.recent, id) }

func (st *eventStream) event(e store.InboxEntry) {
	if st.sent(e.ID) {
		return
	}
	if len(st.recent) == recentIDs {
		st.recent = st.recent[1:]
	}
	st.recent = append(st.recent, e.ID)
	st.buf.WriteString("id: ")
	st.buf.WriteString(e.ID.String())
	st.buf.WriteString("\ndata: ")
	// JSON from the store is one line; a newline would end the field.
	st.buf.Write(bytes.ReplaceAll(bytes.TrimSpace(e.JSON), []byte("\n"), nil))
	st.buf.WriteString("\n\n")
}

func (st *eventStream) comment(text string) {
	for _, line := range bytes.Split([]byte(text), []byte("\n")) {
		if bytes.HasPrefix(line, []byte("retry:")) {
			st.buf.Write(line)
		} else {
			st.buf.WriteString(": ")
			st.buf.Write(line)
		}
		st.buf.WriteByte('\n')
	}
	st.buf.WriteByte('\n')
}

// flush writes what is buffered and pushes it to the client, unless the
// stream's token was revoked: then it says so instead and fails with
// errRevoked.
func (st *eventStream) flush() error {
	// A clock that went back since the last check makes a check due.
	if since := st.now().Sub(st.checked); st.authorized != nil && (st.revoked || since >= AuthorizedEvery || since < 0) {
		if st.revoked || !st.authorized() {
			if !st.revoked {
				st.revoked = true
				st.buf.Reset() // nothing more goes out on this token
				st.comment("token revoked: reconnect with a current token")
				st.write()
			}
			return errRevoked
		}
		st.checked = st.now()
	}
	return st.write()
}

// write writes what is buffered and pushes it to the client.
func (st *eventStream) write() error {
	if err := st.rc.SetWriteDeadline(time.Now().Add(st.timeout)); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return fmt.Errorf("setting a write deadline: %w", err)
	}
	if st.buf.Len() > 0 {
		if _, err := st.w.Write(st.buf.Bytes()); err != nil {
			return fmt.Errorf("writing events: %w", err)
		}
		st.buf.Reset()
	}
	if err := st.rc.Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return fmt.Errorf("flushing events: %w", err)
	}
	return nil
}
