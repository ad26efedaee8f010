package fanout

import (
	"testing"

	"github.com/ringfront/ringfront/appnode/feed"
	"github.com/ringfront/ringfront/appnode/store"
)

// TestHubLag: a stream that falls behind is told so (it then replays
// from the inbox) instead of blocking deliveries.
func TestHubLag(t *testing.T) {
	var h Hub
	h.init()
	slow := h.Subscribe("joe")
	other := h.Subscribe("ann")
	for i := range subscriberBuffer + 5 {
		h.publish("joe", store.InboxEntry{RawPost: store.RawPost{ID: feed.ID{byte(i)}}})
	}
	select {
	case <-slow.Lagged:
	default:
		t.Error("a full subscriber was not told it lagged")
	}
	if len(slow.C) != subscriberBuffer {
		t.Errorf("%d entries buffered, want %d", len(slow.C), subscriberBuffer)
	}
	if len(other.C) != 0 {
		t.Errorf("another user's stream got %d entries", len(other.C))
	}
	h.Unsubscribe("joe", slow)
	h.publish("joe", store.InboxEntry{})
	h.close()
	h.close() // twice is harmless
	select {
	case <-h.done:
	default:
		t.Error("close did not end the streams")
	}
}
