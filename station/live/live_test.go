package live

import (
	"testing"

	"github.com/lifeboat-updater/lifeboat/station/store"
)

func TestAdvance(t *testing.T) {
	var p Progress
	for _, tc := range []struct {
		event string
		want  float64
	}{
		{`{"event":"plan"}`, 0},
		{`{"event":"step-start","step":1,"steps":4,"target":"rootfs"}`, 0},
		{`{"event":"progress","step":1,"steps":4,"percent":50}`, 12.5},
		{`{"event":"step-done","step":1,"steps":4}`, 25},
		{`{"event":"step-start","step":1,"steps":4}`, 25}, // a resumed install: never backwards
		{`not json`, 25},
		{`{"event":"progress","step":3,"steps":4,"percent":100}`, 75},
		{`{"event":"done"}`, 100},
	} {
		p = Advance(p, []byte(tc.event))
		if p.Percent != tc.want {
			t.Errorf("after %s: %v%%, want %v%%", tc.event, p.Percent, tc.want)
		}
	}
	if p.Phase != "done" || p.Target != "rootfs" || p.Steps != 4 {
		t.Errorf("progress = %+v", p)
	}
}

// TestCoalesce: a subscriber that does not read gets each run's latest
// state once, in the order the runs first changed.
func TestCoalesce(t *testing.T) {
	h := NewHub()
	sub, cancel := h.Subscribe()
	defer cancel()
	h.Run(store.Run{ID: 1})
	h.Run(store.Run{ID: 2})
	for i := 1; i <= 100; i++ {
		h.Progress(1, Progress{Percent: float64(i)})
	}
	h.Progress(3, Progress{Percent: 9}) // not known: kept, not published
	<-sub.C
	got := sub.Take()
	if len(got) != 2 || got[0].Run.ID != 1 || got[0].Progress.Percent != 100 || got[1].Run.ID != 2 {
		t.Errorf("Take() = %+v", got)
	}
	h.Run(store.Run{ID: 1, Result: store.ResultPass})
	if _, ok := h.Get(1); ok || h.Known(1) {
		t.Errorf("a finished run keeps its progress")
	}
	if p, ok := h.Get(3); !ok || p.Percent != 9 {
		t.Errorf("Get(3) = %v %v", p, ok)
	}
}
