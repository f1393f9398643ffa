package demo

import (
	"bytes"
	"encoding/json"
	"io"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/lifeboat-updater/lifeboat/rescue"
)

// Line is one line a guest printed, with when it arrived.
type Line struct {
	At   time.Duration // since the Timeline started
	Text string
}

// Event is an install event the rescue printed on its console
// (lifeboat.events=console), with when it arrived.
type Event struct {
	At     time.Duration
	Fields map[string]any
}

// Kind is the event's kind ("start", "progress", ...).
func (e Event) Kind() string { s, _ := e.Fields["event"].(string); return s }

// Int is a numeric field of the event (0 when absent).
func (e Event) Int(name string) int64 { f, _ := e.Fields[name].(float64); return int64(f) }

// Timeline is an io.Writer for a guest's serial console: it keeps every
// line with the time it arrived, collects the rescue's events, and shows
// the console to a person on Show, without the event lines (data for
// programs) and without terminal control sequences (GRUB's menu would
// clear the person's screen).
type Timeline struct {
	start time.Time
	show  io.Writer

	mu      sync.Mutex
	partial []byte
	lines   []Line
	events  []Event
}

// NewTimeline starts a timeline now; show may be nil.
func NewTimeline(show io.Writer) *Timeline {
	return &Timeline{start: time.Now(), show: show}
}

// Restart sets the timeline's zero to now (when the VM starts).
func (t *Timeline) Restart() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.start = time.Now()
}

// Write implements io.Writer.
func (t *Timeline) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	at := time.Since(t.start)
	t.partial = append(t.partial, p...)
	for {
		i := bytes.IndexByte(t.partial, '\n')
		if i < 0 {
			break
		}
		text := strings.TrimRight(string(t.partial[:i]), "\r")
		t.partial = t.partial[i+1:]
		t.lines = append(t.lines, Line{At: at, Text: text})
		if j := strings.Index(text, rescue.EventPrefix); j >= 0 {
			var m map[string]any
			if err := json.Unmarshal([]byte(text[j+len(rescue.EventPrefix):]), &m); err == nil {
				t.events = append(t.events, Event{At: at, Fields: m})
			}
			continue
		}
		if t.show != nil {
			for _, l := range cleanLines(text) {
				_, _ = io.WriteString(t.show, l+"\n")
			}
		}
	}
	return len(p), nil
}

var (
	// cursorMoves place the cursor (GRUB draws its menu with them): each
	// starts a new line of plain text.
	cursorMoves = regexp.MustCompile(`\x1b\[[0-9;]*[Hf]`)
	// controls are the other terminal control sequences and control
	// characters but tab.
	controls = regexp.MustCompile(`\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-_]|[\x00-\x08\x0b-\x1f\x7f]`)
)

// cleanLines turns a console line into plain text lines: cursor moves
// become line breaks, other control sequences go, blank lines too.
func cleanLines(s string) []string {
	var out []string
	for _, part := range cursorMoves.Split(s, -1) {
		part = strings.TrimRight(controls.ReplaceAllString(part, ""), " \t")
		if strings.Trim(part, " \t|+-") != "" { // not blank, not a menu's frame
			out = append(out, part)
		}
	}
	return out
}

// Lines returns the complete lines so far.
func (t *Timeline) Lines() []Line {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]Line(nil), t.lines...)
}

// Events returns the events so far.
func (t *Timeline) Events() []Event {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]Event(nil), t.events...)
}

// First returns when a line holding s first arrived.
func (t *Timeline) First(s string) (time.Duration, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, l := range t.lines {
		if strings.Contains(l.Text, s) {
			return l.At, true
		}
	}
	return 0, false
}

// FirstWrite returns when the rescue first wrote to the device: a
// partition table written, or an image step's first written byte.
func (t *Timeline) FirstWrite() (time.Duration, bool) {
	for _, e := range t.Events() {
		switch e.Kind() {
		case "progress":
			if e.Int("written_bytes") > 0 {
				return e.At, true
			}
		case "step-done":
			if e.Int("written_bytes") > 0 || e.Fields["note"] == "table written" {
				return e.At, true
			}
		}
	}
	return 0, false
}
