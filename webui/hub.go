package webui

import (
	"encoding/json"
	"sync"
)

// hub passes events to the connected pages. Publishing never blocks (the
// install engine calls it and must not wait for a slow phone): a page
// whose queue is full is dropped, and its browser reconnects and starts
// again from a fresh snapshot.
//
// The hub keeps the events of the current (or last) job, with only the
// newest progress event, so that a page that connects in the middle of an
// install, or reloads, replays them and shows what the others show.
type hub struct {
	mu     sync.Mutex
	subs   map[*sub]struct{}
	replay [][]byte
	// latest maps a kind of event that only the newest of matters
	// (progress, bytes received) to its place in replay, since the last
	// event of another kind.
	latest map[string]int
}

// sub is one connected page.
type sub struct {
	ch   chan []byte
	gone chan struct{} // closed when the hub drops the page
}

const (
	// maxSubs bounds the connected pages.
	maxSubs = 32
	// subQueue is how many events a page may lag behind.
	subQueue = 256
	// maxReplay bounds the events kept for pages that connect later.
	maxReplay = 512
)

func newHub() *hub { return &hub{subs: map[*sub]struct{}{}, latest: map[string]int{}} }

// subscribe registers a page and returns, under the same lock, the events
// it must replay first: none is lost or repeated between the two. It
// returns nil when too many pages are connected.
func (h *hub) subscribe() (*sub, [][]byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.subs) >= maxSubs {
		return nil, nil
	}
	s := &sub{ch: make(chan []byte, subQueue+maxReplay), gone: make(chan struct{})}
	h.subs[s] = struct{}{}
	return s, append([][]byte(nil), h.replay...)
}

func (h *hub) unsubscribe(s *sub) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.drop(s)
}

func (h *hub) drop(s *sub) {
	if _, ok := h.subs[s]; ok {
		delete(h.subs, s)
		close(s.gone)
	}
}

// How publish keeps an event for later pages.
const (
	keepNot      = iota // live only (status changes: a page gets the status on connecting)
	keepEvent           // replayed
	keepLatest          // replayed, replacing the previous one of its kind
	keepNewStart        // replayed, and starts a new replay
)

// publish sends msg (one JSON object of the given kind) to every page.
func (h *hub) publish(kind string, msg []byte, keep int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch keep {
	case keepNewStart:
		h.replay = [][]byte{msg}
		clear(h.latest)
	case keepLatest:
		if i, ok := h.latest[kind]; ok {
			h.replay[i] = msg
		} else if len(h.replay) < maxReplay {
			h.latest[kind] = len(h.replay)
			h.replay = append(h.replay, msg)
		}
	case keepEvent:
		// A later progress event comes after this one, in order.
		clear(h.latest)
		if len(h.replay) < maxReplay {
			h.replay = append(h.replay, msg)
		}
	}
	for s := range h.subs {
		select {
		case s.ch <- msg:
		default:
			h.drop(s)
		}
	}
}

// publishJSON marshals v and publishes it.
func (h *hub) publishJSON(kind string, v any, keep int) {
	b, err := json.Marshal(v)
	if err != nil {
		return
	}
	h.publish(kind, b, keep)
}
