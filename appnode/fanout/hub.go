package fanout

import (
	"sync"

	"github.com/ringfront/ringfront/appnode/store"
)

// subscriberBuffer is how many events wait for a slow stream before it
// falls back to replaying from the inbox.
const subscriberBuffer = 64

// Hub hands inbox entries stored here to the live streams of their
// users. It is safe for concurrent use.
type Hub struct {
	mu     sync.Mutex // guards subs and closed
	subs   map[string]map[*Subscriber]struct{}
	closed bool
	done   chan struct{} // closed by close: streams end
}

// Subscriber is one live stream.
type Subscriber struct {
	// C receives the stream's new entries.
	C chan store.InboxEntry
	// Lagged is signalled when an entry did not fit in C: the stream
	// catches up from the inbox.
	Lagged chan struct{}
}

func (h *Hub) init() {
	h.subs = map[string]map[*Subscriber]struct{}{}
	h.done = make(chan struct{})
}

// Subscribe starts a stream of name's new inbox entries.
func (h *Hub) Subscribe(name string) *Subscriber {
	sub := &Subscriber{C: make(chan store.InboxEntry, subscriberBuffer), Lagged: make(chan struct{}, 1)}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.subs[name] == nil {
		h.subs[name] = map[*Subscriber]struct{}{}
	}
	h.subs[name][sub] = struct{}{}
	return sub
}

// Unsubscribe ends a stream.
func (h *Hub) Unsubscribe(name string, sub *Subscriber) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.subs[name], sub)
	if len(h.subs[name]) == 0 {
		delete(h.subs, name)
	}
}

// publish hands e to name's streams without blocking: a stream whose
// buffer is full is told it lagged and catches up from the inbox.
func (h *Hub) publish(name string, e store.InboxEntry) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for sub := range h.subs[name] {
		select {
		case sub.C <- e:
		default:
			select {
			case sub.Lagged <- struct{}{}:
			default:
			}
		}
	}
}

// close ends every stream (the member is stopping).
func (h *Hub) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.closed {
		h.closed = true
		close(h.done)
	}
}

// Done is closed when the member stops: streams end.
func (h *Hub) Done() <-chan struct{} { return h.done }

// Streams counts the live timeline streams this member serves.
func (h *Hub) Streams() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, subs := range h.subs {
		n += len(subs)
	}
	return n
}
