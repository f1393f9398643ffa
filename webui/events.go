package webui

import (
	"bytes"
	"encoding/json"
	"net/http"
	"time"
)

// Event stream timing.
const (
	// keepAlive is how often an idle stream gets a comment line, so that
	// proxies and NAT keep it open and a dead page is found.
	keepAlive = 20 * time.Second
	// writeWait bounds each write to a page: one that does not take its
	// events for that long is dropped (it reconnects).
	writeWait = 30 * time.Second
)

// handleEvents is the page's live view: GET /api/events, Server-Sent
// Events, one JSON object per message, each with "event" naming its kind.
// First comes "hello" (the status, the current job, whether this browser
// is signed in), then the current job's events so far, then everything as
// it happens: "status", "job", "received" and the install's own events
// (docs/cli.md, "Events"). The browser's EventSource reconnects by itself
// and starts again from hello.
func (s *Server) handleEvents(w http.ResponseWriter, r *http.Request) {
	sub, replay := s.hub.subscribe()
	if sub == nil {
		writeError(w, http.StatusServiceUnavailable, "too many pages open on this device; close one")
		return
	}
	defer s.hub.unsubscribe(sub)
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)

	hello, err := json.Marshal(s.statusMsg("hello", s.signedIn(r)))
	if err != nil {
		return
	}
	var buf bytes.Buffer
	buf.WriteString("retry: 2000\n")
	for _, m := range append([][]byte{hello}, replay...) {
		writeMessage(&buf, m)
	}
	send := func() bool {
		_ = rc.SetWriteDeadline(time.Now().Add(writeWait))
		if _, err := w.Write(buf.Bytes()); err != nil {
			return false
		}
		buf.Reset()
		return rc.Flush() == nil
	}
	if !send() {
		return
	}
	tick := time.NewTicker(keepAlive)
	defer tick.Stop()
	for {
		select {
		case m := <-sub.ch:
			writeMessage(&buf, m)
			// Take whatever else is queued in the same write.
			for more := true; more; {
				select {
				case m := <-sub.ch:
					writeMessage(&buf, m)
				default:
					more = false
				}
			}
		case <-tick.C:
			buf.WriteString(": keep-alive\n\n")
		case <-sub.gone:
			return
		case <-r.Context().Done():
			return
		case <-s.ctx.Done():
			return
		}
		if !send() {
			return
		}
	}
}

// writeMessage writes one SSE message. The JSON has no newlines.
func writeMessage(buf *bytes.Buffer, m []byte) {
	buf.WriteString("data: ")
	buf.Write(m)
	buf.WriteString("\n\n")
}
