package webui

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"
)

// handleUpload installs the request body as it arrives: PUT /api/bundle
// with the bundle file as the body (the page sends the File object, which
// the browser streams from disk). Nothing is stored: the body is the
// Device's reader.
func (s *Server) handleUpload(w http.ResponseWriter, r *http.Request) {
	if !s.signedIn(r) {
		writeError(w, http.StatusUnauthorized, msgSignIn)
		return
	}
	from := "from " + hostOf(r.RemoteAddr)
	if err := s.begin(job{Kind: jobInstall, From: from, Size: r.ContentLength}); err != nil {
		writeError(w, http.StatusConflict, err.Error())
		return
	}
	if r.ContentLength >= 0 {
		s.cfg.Logf("web: upload %s, %d bytes", from, r.ContentLength)
	} else {
		s.cfg.Logf("web: upload %s", from)
	}
	b := &body{
		r: r.Body, rc: http.NewResponseController(w), stall: s.cfg.StallTimeout, size: r.ContentLength,
		progress: s.received,
	}
	err := s.cfg.Device.Install(s.ctx, Upload{Body: b, Size: r.ContentLength, From: "upload " + from}, s.jobObserver())
	s.received(b.n, b.size)
	if err != nil {
		cut := b.err != nil
		if cut {
			s.cfg.Logf("web: upload %s cut off after %d bytes: nothing after the last verified chunk was written; waiting for the next upload", from, b.n)
		}
		j := s.failJob(err, cut)
		code := http.StatusUnprocessableEntity
		switch {
		case errors.Is(err, ErrBusy):
			code = http.StatusConflict
		case cut:
			code = http.StatusBadRequest
		}
		writeJSON(w, code, apiError{Error: j.Error, ExitCode: j.ExitCode, Cut: cut})
		return
	}
	j := s.end(nil, false)
	writeJSON(w, http.StatusOK, struct {
		OK      bool   `json:"ok"`
		Product string `json:"product,omitempty"`
		Version string `json:"version,omitempty"`
	}{true, j.Product, j.Version})
}

// received records and shows how much of the upload arrived.
func (s *Server) received(n, size int64) {
	s.mu.Lock()
	if s.job == nil || s.job.Kind != jobInstall {
		s.mu.Unlock()
		return
	}
	s.job.Received = n
	s.mu.Unlock()
	s.hub.publishJSON("received", struct {
		Event    string `json:"event"`
		Received int64  `json:"received"`
		Size     int64  `json:"size"`
	}{"received", n, size}, keepLatest)
}

// receivedInterval is the least time between two "received" events.
const receivedInterval = 250 * time.Millisecond

// body is the upload as the Device reads it. It counts, keeps the
// connection's read deadline StallTimeout ahead, and turns a connection
// that dropped or went silent into an error that the bundle reader
// reports as a truncated bundle.
type body struct {
	r        io.Reader
	rc       *http.ResponseController
	stall    time.Duration
	size     int64
	n        int64
	err      error // the connection's failure, if any
	last     time.Time
	progress func(n, size int64) // a few times a second at most
}

// cutError is an upload whose connection dropped or stalled.
type cutError struct {
	n, size int64
	err     error
}

func (e *cutError) Error() string {
	of := ""
	if e.size >= 0 {
		of = fmt.Sprintf(" of %d", e.size)
	}
	return fmt.Sprintf("upload cut off after %d%s bytes: %v", e.n, of, e.err)
}

// Unwrap makes the cut an unexpected end of input: bundle.ErrTruncated.
func (e *cutError) Unwrap() []error { return []error{io.ErrUnexpectedEOF, e.err} }

func (b *body) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	// Not every connection takes a deadline (HTTP/2 through a proxy);
	// the stall check is then the TCP keepalive's.
	_ = b.rc.SetReadDeadline(time.Now().Add(b.stall))
	n, err := b.r.Read(p)
	b.n += int64(n)
	if now := time.Now(); now.Sub(b.last) >= receivedInterval {
		b.last = now
		b.progress(b.n, b.size)
	}
	switch {
	case err == nil || err == io.EOF:
		return n, err
	case errors.Is(err, os.ErrDeadlineExceeded):
		err = fmt.Errorf("nothing received for %v", b.stall)
	}
	b.err = &cutError{n: b.n, size: b.size, err: err}
	return n, b.err
}
