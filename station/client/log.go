package client

import (
	"bytes"
	"context"
	"encoding/json"
	"sync"

	"github.com/lifeboat-updater/lifeboat/station/protocol"
)

// Log is a run's event log on the unit: an io.Writer of JSON lines (give
// it to install.JSONLines), numbered in order. Flush sends what the
// station has not acknowledged; Unsent goes into the report. A line sent
// twice (a reply lost) is kept once by the station.
type Log struct {
	c   *Client
	run int64

	mu     sync.Mutex
	events []json.RawMessage
	sent   int // events[:sent] were acknowledged
	part   []byte
}

// NewLog returns the event log of run.
func (c *Client) NewLog(run int64) *Log { return &Log{c: c, run: run} }

// Write takes JSON lines; a line may arrive in several writes.
func (l *Log) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.part = append(l.part, p...)
	for {
		i := bytes.IndexByte(l.part, '\n')
		if i < 0 {
			break
		}
		line := bytes.TrimSpace(l.part[:i])
		if len(line) > 0 && json.Valid(line) {
			l.events = append(l.events, append(json.RawMessage(nil), line...))
		}
		l.part = l.part[i+1:]
	}
	return len(p), nil
}

// Flush sends the events not yet acknowledged.
func (l *Log) Flush(ctx context.Context) error {
	l.mu.Lock()
	first, batch := l.sent, append([]json.RawMessage(nil), l.events[l.sent:]...)
	l.mu.Unlock()
	if len(batch) == 0 {
		return nil
	}
	if err := l.c.Events(ctx, l.run, first, batch); err != nil {
		return err
	}
	l.mu.Lock()
	if first+len(batch) > l.sent {
		l.sent = first + len(batch)
	}
	l.mu.Unlock()
	return nil
}

// Unsent returns the events the station has not acknowledged, numbered,
// for protocol.Report.Events.
func (l *Log) Unsent() []protocol.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []protocol.Event
	for i := l.sent; i < len(l.events); i++ {
		out = append(out, protocol.Event{Seq: i, Body: l.events[i]})
	}
	return out
}

// Len is the number of events logged.
func (l *Log) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.events)
}
