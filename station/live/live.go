// Package live is a factory line's state in memory: the latest progress of
// each run in progress, and the subscribers (the line page's Server-Sent
// Events streams) that want every change. The records themselves are in
// the store; this is only what changes several times a second.
package live

import (
	"encoding/json"
	"sync"
	"time"

	"github.com/lifeboat-updater/lifeboat/station/store"
)

// Progress is a run's latest progress, from its install events.
type Progress struct {
	Phase   string    `json:"phase"` // the last event's kind: start, plan, step-start, progress, step-done, ...
	Step    int       `json:"step,omitempty"`
	Steps   int       `json:"steps,omitempty"`
	Target  string    `json:"target,omitempty"`
	Percent float64   `json:"percent"` // of the whole run, 0 to 100
	Updated time.Time `json:"updated"`
}

// Update is one run's new state.
type Update struct {
	Run      store.Run `json:"run"`
	Progress *Progress `json:"progress,omitempty"`
}

// Hub keeps the runs' progress and passes updates to subscribers.
type Hub struct {
	mu       sync.Mutex
	progress map[int64]Progress
	runs     map[int64]store.Run // runs whose progress is known
	subs     map[*Sub]bool
}

// NewHub returns an empty hub.
func NewHub() *Hub {
	return &Hub{progress: map[int64]Progress{}, runs: map[int64]store.Run{}, subs: map[*Sub]bool{}}
}

// Sub is a subscriber. Updates coalesce per run: a slow reader gets each
// run's latest state, never a backlog, and never holds up the station.
type Sub struct {
	// C has a value whenever updates are pending; Take them.
	C       chan struct{}
	mu      sync.Mutex
	pending map[int64]Update
	order   []int64
}

// Take returns the pending updates, oldest run first.
func (s *Sub) Take() []Update {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Update, 0, len(s.order))
	for _, id := range s.order {
		out = append(out, s.pending[id])
	}
	s.pending, s.order = map[int64]Update{}, nil
	return out
}

func (s *Sub) put(u Update) {
	s.mu.Lock()
	if _, ok := s.pending[u.Run.ID]; !ok {
		s.order = append(s.order, u.Run.ID)
	}
	s.pending[u.Run.ID] = u
	s.mu.Unlock()
	select {
	case s.C <- struct{}{}:
	default:
	}
}

// Subscribe returns a new subscriber; call the function to end it.
func (h *Hub) Subscribe() (*Sub, func()) {
	s := &Sub{C: make(chan struct{}, 1), pending: map[int64]Update{}}
	h.mu.Lock()
	h.subs[s] = true
	h.mu.Unlock()
	return s, func() {
		h.mu.Lock()
		delete(h.subs, s)
		h.mu.Unlock()
	}
}

// Run publishes a run's new record (announced, identity given, finished).
// A finished run's progress is forgotten.
func (h *Hub) Run(r store.Run) {
	h.mu.Lock()
	u := Update{Run: r}
	if r.Result != "" {
		delete(h.progress, r.ID)
		delete(h.runs, r.ID)
	} else {
		h.runs[r.ID] = r
		if p, ok := h.progress[r.ID]; ok {
			u.Progress = &p
		}
	}
	h.publish(u)
	h.mu.Unlock()
}

// Progress publishes a run's progress. r is the run's record as last
// known (Run's), or the zero Run when the hub has not seen it: then only
// the progress is kept until the run is published.
func (h *Hub) Progress(run int64, p Progress) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.progress[run] = p
	if r, ok := h.runs[run]; ok {
		h.publish(Update{Run: r, Progress: &p})
	}
}

// Known reports whether the hub has the record of a run in progress.
func (h *Hub) Known(run int64) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	_, ok := h.runs[run]
	return ok
}

// Get returns a run's progress, if it is in progress and has some.
func (h *Hub) Get(run int64) (Progress, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	p, ok := h.progress[run]
	return p, ok
}

func (h *Hub) publish(u Update) {
	for s := range h.subs {
		s.put(u)
	}
}

// event is the part of an install event (docs/cli.md "Events") that
// progress needs.
type event struct {
	Event   string    `json:"event"`
	Time    time.Time `json:"time"`
	Step    int       `json:"step"`
	Steps   int       `json:"steps"`
	Target  string    `json:"target"`
	Percent float64   `json:"percent"`
}

// Advance folds one install event (its JSON object) into a run's progress.
// The whole run's percentage counts each step as an equal share.
func Advance(p Progress, body []byte) Progress {
	var e event
	if json.Unmarshal(body, &e) != nil || e.Event == "" {
		return p
	}
	return advance(p, e.Event, e)
}

func advance(p Progress, kind string, e event) Progress {
	p.Phase, p.Updated = kind, e.Time
	if e.Steps > 0 {
		p.Steps = e.Steps
	}
	if e.Step > 0 {
		p.Step = e.Step
	}
	if e.Target != "" {
		p.Target = e.Target
	}
	share := func(done float64) float64 {
		if p.Steps <= 0 {
			return p.Percent
		}
		v := (float64(p.Step-1) + done) / float64(p.Steps) * 100
		if v < p.Percent {
			return p.Percent // never backwards: a resumed install starts steps again
		}
		return min(v, 100)
	}
	switch kind {
	case "step-start":
		p.Percent = share(0)
	case "progress":
		p.Percent = share(e.Percent / 100)
	case "step-done":
		p.Percent = share(1)
	case "done":
		p.Percent = 100
	}
	return p
}
