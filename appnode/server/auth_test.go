package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ringfront/ringfront/appnode/api"
	"github.com/ringfront/ringfront/appnode/feed"
	"github.com/ringfront/ringfront/appnode/replica"
	"github.com/ringfront/ringfront/appnode/transport"
)

// TestInternalSignatureCoversBody: a replicate call whose body was
// changed after it was signed is refused and stores nothing; the body
// it was signed for is stored; a body over the route's limit is refused
// before anything is decoded.
func TestInternalSignatureCoversBody(t *testing.T) {
	m := newCluster(t, clusterOpts{n: 1})[0]
	uri := "/internal/v1/replicate"
	post := func(text string) string {
		p := feed.Post{ID: feed.NewIDSource(feed.NewClock(time.Now), "t").Next(), Author: "joe", Text: text, Created: time.Now().UTC()}
		b, err := json.Marshal(map[string][]replica.Record{"records": {{Post: &p}}})
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	send := func(signed, sent string) int {
		t.Helper()
		req, _ := http.NewRequest("POST", m.url(uri), strings.NewReader(sent))
		req.Header.Set(api.HeaderCluster, transport.Sign(testSecret, time.Now(), "POST", uri, []byte(signed)))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	good := post("hello")
	tampered := strings.Replace(good, "hello", "pwned", 1)
	if got := send(good, tampered); got != http.StatusUnauthorized {
		t.Errorf("tampered body = %d, want 401", got)
	}
	if got, _, _ := m.store.Posts("joe", feed.ID{}, 10); len(got) != 0 {
		t.Errorf("the tampered record was stored: %v", got)
	}
	if got := send(good, good); got != http.StatusNoContent {
		t.Errorf("body as signed = %d, want 204", got)
	}
	if got, _, _ := m.store.Posts("joe", feed.ID{}, 10); len(got) != 1 || got[0].Text != "hello" {
		t.Errorf("stored posts = %v, want the signed one", got)
	}
	huge := fmt.Sprintf(`{"records": [], "pad": %q}`, strings.Repeat("x", replica.MaxRecordsBody))
	if got := send(huge, huge); got != http.StatusRequestEntityTooLarge {
		t.Errorf("body over %d bytes = %d, want 413", replica.MaxRecordsBody, got)
	}
}
