package server

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ringfront/ringfront/appnode/feed"
)

// sseEvent is one server-sent event, or a comment when Comment is set.
type sseEvent struct {
	ID, Data, Comment string
}

// sseClient reads a timeline stream the way a client does.
type sseClient struct {
	resp   *http.Response
	events chan sseEvent
	cancel context.CancelFunc
}

// openStream opens name's stream at m with token, resuming after
// lastID when it is set, and fails the test unless it answers 200.
func openStream(t testing.TB, m *member, name, token, lastID string) *sseClient {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, "GET", m.url("/v1/users/"+name+"/timeline/stream"), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatalf("opening the stream: %v", err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		resp.Body.Close()
		cancel()
		t.Fatalf("stream answered %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	c := &sseClient{resp: resp, events: make(chan sseEvent, 100), cancel: cancel}
	go func() {
		defer close(c.events)
		sc := bufio.NewScanner(resp.Body)
		var ev sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if ev != (sseEvent{}) {
					c.events <- ev
				}
				ev = sseEvent{}
			case strings.HasPrefix(line, ": "):
				ev.Comment += line[2:]
			case strings.HasPrefix(line, "id: "):
				ev.ID = line[4:]
			case strings.HasPrefix(line, "data: "):
				ev.Data += line[6:]
			}
		}
	}()
	t.Cleanup(c.close)
	return c
}

func (c *sseClient) close() {
	c.cancel()
	c.resp.Body.Close()
}

// next returns the next event (not comment) within d.
func (c *sseClient) next(t testing.TB, d time.Duration) sseEvent {
	t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		select {
		case ev, ok := <-c.events:
			if !ok {
				t.Fatal("stream ended")
			}
			if ev.ID == "" {
				continue // a comment
			}
			return ev
		case <-timer.C:
			t.Fatalf("no event within %v", d)
		}
	}
}

// comment waits for a comment containing text within d.
func (c *sseClient) comment(t testing.TB, text string, d time.Duration) {
	t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		select {
		case ev, ok := <-c.events:
			if !ok {
				t.Fatal("stream ended")
			}
			if strings.Contains(ev.Comment, text) {
				return
			}
		case <-timer.C:
			t.Fatalf("no %q comment within %v", text, d)
		}
	}
}

// quiet checks that no event arrives within d.
func (c *sseClient) quiet(t testing.TB, d time.Duration) {
	t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		select {
		case ev := <-c.events:
			if ev.ID != "" {
				t.Fatalf("unexpected event %s: %s", ev.ID, ev.Data)
			}
		case <-timer.C:
			return
		}
	}
}

// TestStreamLive: on a 3-member cluster, a follower's stream opened at a
// member that forwards it receives a followee's post within 1 s; after a
// disconnect, a reconnect with Last-Event-ID replays exactly the posts
// missed, then goes on live.
func TestStreamLive(t *testing.T) {
	ms := newCluster(t, clusterOpts{n: 3})
	for _, m := range ms {
		m.srv.SetStreamHeartbeat(50 * time.Millisecond)
	}
	tr := createUser(t, ms[0], "reader")
	ta := createUser(t, ms[0], "ann")
	tb := createUser(t, ms[0], "bob")
	mustFollow(t, ms[0], "PUT", "reader", tr, "ann")
	entry := notOwner(ms, "reader") // the stream is forwarded to the owner
	st := openStream(t, entry, "reader", tr, "")
	st.comment(t, "heartbeat", 2*time.Second)

	start := time.Now()
	p := mustPost(t, notOwner(ms, "ann"), "ann", ta, "hello, live")
	ev := st.next(t, time.Second)
	if took := time.Since(start); took > time.Second {
		t.Errorf("the event took %v", took)
	}
	var got feed.Post
	decodeJSON(t, ev.Data, &got)
	if ev.ID != p.ID.String() || !cmp.Equal(p, got) {
		t.Errorf("event %s %+v, want %s %+v", ev.ID, got, p.ID, p)
	}
	// bob is not followed: nothing arrives.
	mustPost(t, ms[0], "bob", tb, "not for reader")
	st.quiet(t, 300*time.Millisecond)

	st.close()
	var missed []string
	for i := range 3 {
		missed = append(missed, mustPost(t, ms[i], "ann", ta, "missed").ID.String())
	}
	mustPost(t, ms[1], "bob", tb, "still not for reader")
	st2 := openStream(t, ms[2], "reader", tr, ev.ID)
	var replayed []string
	for range 3 {
		replayed = append(replayed, st2.next(t, time.Second).ID)
	}
	if diff := cmp.Diff(missed, replayed); diff != "" {
		t.Errorf("replayed after Last-Event-ID (-want +got):\n%s", diff)
	}
	st2.quiet(t, 300*time.Millisecond)
	live := mustPost(t, ms[0], "ann", ta, "live again")
	if ev := st2.next(t, time.Second); ev.ID != live.ID.String() {
		t.Errorf("live event after the replay = %s, want %s", ev.ID, live.ID)
	}
}

// TestStreamErrors: the stream needs the user's token and a well-formed
// Last-Event-ID, and says so in JSON.
func TestStreamErrors(t *testing.T) {
	ms := newCluster(t, clusterOpts{n: 1})
	tr := createUser(t, ms[0], "reader")
	ta := createUser(t, ms[0], "ann")
	for _, tt := range []struct {
		name, token, last string
		code              int
		want              string
	}{
		{"no token", "", "", 401, "token"},
		{"wrong token", ta, "", 403, "wrong token"},
		{"bad Last-Event-ID", tr, "nonsense", 400, "Last-Event-ID"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", ms[0].url("/v1/users/reader/timeline/stream"), nil)
			if tt.token != "" {
				req.Header.Set("Authorization", "Bearer "+tt.token)
			}
			if tt.last != "" {
				req.Header.Set("Last-Event-ID", tt.last)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var e struct {
				Error string `json:"error"`
			}
			decodeBody(t, resp, &e)
			if resp.StatusCode != tt.code || !strings.Contains(e.Error, tt.want) {
				t.Errorf("got %d %q, want %d with %q", resp.StatusCode, e.Error, tt.code, tt.want)
			}
		})
	}
}

func decodeJSON(t testing.TB, s string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(s), v); err != nil {
		t.Fatalf("decoding %s: %v", s, err)
	}
}

func decodeBody(t testing.TB, resp *http.Response, v any) {
	t.Helper()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("decoding a %d answer: %v", resp.StatusCode, err)
	}
}

// TestStreamCelebrity: posts of a followee above fanout_limit, which are
// never pushed, reach the stream within a heartbeat, and are replayed
// after Last-Event-ID too.
func TestStreamCelebrity(t *testing.T) {
	ms := newCluster(t, clusterOpts{n: 3})
	for _, m := range ms {
		m.srv.SetFanout(1, 0)
		m.srv.SetStreamHeartbeat(50 * time.Millisecond)
	}
	ts := createUser(t, ms[0], "star")
	tf := createUser(t, ms[0], "fan1")
	mustFollow(t, ms[0], "PUT", "fan2", createUser(t, ms[0], "fan2"), "star")
	mustFollow(t, ms[0], "PUT", "fan1", tf, "star")
	st := openStream(t, notOwner(ms, "fan1"), "fan1", tf, "")
	p := mustPost(t, ms[1], "star", ts, "to all my fans")
	if ev := st.next(t, time.Second); ev.ID != p.ID.String() {
		t.Errorf("event %s, want the celebrity's post %s", ev.ID, p.ID)
	}
	st.close()
	missed := mustPost(t, ms[2], "star", ts, "while fan1 was away")
	st2 := openStream(t, ms[0], "fan1", tf, p.ID.String())
	if ev := st2.next(t, time.Second); ev.ID != missed.ID.String() {
		t.Errorf("replayed %s, want %s", ev.ID, missed.ID)
	}
	st2.quiet(t, 200*time.Millisecond)
}
