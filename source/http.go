package source

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultIdleTimeout is how long a download may go without a byte before
// it is treated as dropped and resumed.
const DefaultIdleTimeout = 30 * time.Second

// HTTP is a bundle at an http:// or https:// URL.
//
// Open streams it with GET. When the connection drops, stalls (IdleTimeout)
// or ends early, the stream reconnects and asks for the rest with
// "Range: bytes=N-" and "If-Range" (the first response's strong ETag, else
// its Last-Modified), and checks the answer's Content-Range; a server that
// ignores Range is read again from the start and the bytes already
// delivered are skipped. If the bundle changed on the server (another
// validator, another size), reads fail with ErrChanged rather than splice
// two files. Connection failures, timeouts, 408, 429 and 5xx are retried
// with Retry's backoff; the count restarts whenever bytes arrive, so a
// long download survives any number of drops that make progress. 404 and
// 410 (ErrNotFound), 401 and 403 (ErrForbidden) and other 4xx
// (ErrHTTPStatus) fail at once; retries that run out give ErrUnreachable.
type HTTP struct {
	URL string
	// Client sends the requests; nil means NewClient(ClientConfig{}).
	Client *Client
	// Retry bounds the tries in a row that fail without a byte.
	Retry Backoff
	// IdleTimeout: DefaultIdleTimeout when zero.
	IdleTimeout time.Duration
	// ReadAhead is the smallest request OpenReaderAt's reader makes;
	// DefaultReadAhead when zero.
	ReadAhead int
	// Logf, if not nil, receives a line for each drop and retry.
	Logf func(format string, args ...any)
}

func (h *HTTP) String() string {
	if u, err := url.Parse(h.URL); err == nil {
		return u.Redacted()
	}
	return h.URL
}

func (h *HTTP) logf(format string, args ...any) {
	if h.Logf != nil {
		h.Logf(format, args...)
	}
}

func (h *HTTP) client() (*Client, error) {
	if h.Client != nil {
		return h.Client, nil
	}
	return NewClient(ClientConfig{Logf: h.Logf})
}

func (h *HTTP) idle() time.Duration {
	if h.IdleTimeout > 0 {
		return h.IdleTimeout
	}
	return DefaultIdleTimeout
}

// Open starts the download; see HTTP.
func (h *HTTP) Open(ctx context.Context) (*Stream, error) {
	c, err := h.client()
	if err != nil {
		return nil, err
	}
	ctx, stop := context.WithCancel(ctx)
	s := &httpStream{h: h, c: c, ctx: ctx, stop: stop, size: -1}
	if err := s.reconnect(); err != nil {
		stop()
		return nil, err
	}
	return &Stream{ReadCloser: s, Size: s.size, Name: h.String()}, nil
}

// validator identifies one version of the file on the server.
type validator struct {
	etag, lastModified string
}

func validatorOf(resp *http.Response) validator {
	return validator{etag: resp.Header.Get("ETag"), lastModified: resp.Header.Get("Last-Modified")}
}

func (v validator) strongETag() string {
	if v.etag != "" && !strings.HasPrefix(v.etag, "W/") {
		return v.etag
	}
	return ""
}

// ifRange is the If-Range value: a strong ETag, else the date (RFC 9110
// forbids weak ETags there).
func (v validator) ifRange() string {
	if e := v.strongETag(); e != "" {
		return e
	}
	return v.lastModified
}

// differs reports whether w names another version than v. A validator the
// new response leaves out is not taken as a change.
func (v validator) differs(w validator) bool {
	if v.etag != "" && w.etag != "" {
		return v.etag != w.etag
	}
	return v.lastModified != "" && w.lastModified != "" && v.lastModified != w.lastModified
}

// statusError maps a response status to this package's errors; nil for 2xx.
func statusError(resp *http.Response, name string, resuming bool) error {
	code := resp.StatusCode
	status := resp.Status
	switch {
	case code >= 200 && code < 300:
		return nil
	case code == http.StatusNotFound || code == http.StatusGone:
		return fmt.Errorf("%w: %s: %s", ErrNotFound, name, status)
	case code == http.StatusUnauthorized || code == http.StatusForbidden:
		return fmt.Errorf("%w: %s: %s", ErrForbidden, name, status)
	case code == http.StatusRequestedRangeNotSatisfiable && resuming:
		return fmt.Errorf("%w: %s: %s (the file is shorter now)", ErrChanged, name, status)
	case code == http.StatusPreconditionFailed:
		return fmt.Errorf("%w: %s: %s", ErrChanged, name, status)
	case code == http.StatusRequestTimeout || code == http.StatusTooManyRequests || code >= 500:
		return fmt.Errorf("%s: %s", name, status) // retried
	}
	return fmt.Errorf("%w: %s: %s", ErrHTTPStatus, name, status)
}

// parseContentRange parses "bytes first-last/total" ("*" total gives -1).
func parseContentRange(s string) (first, last, total int64, err error) {
	bad := fmt.Errorf("%w: Content-Range %q", ErrHTTPStatus, s)
	rest, ok := strings.CutPrefix(s, "bytes ")
	if !ok {
		return 0, 0, 0, bad
	}
	rng, tot, ok := strings.Cut(rest, "/")
	if !ok {
		return 0, 0, 0, bad
	}
	a, b, ok := strings.Cut(rng, "-")
	if !ok {
		return 0, 0, 0, bad
	}
	if first, err = strconv.ParseInt(a, 10, 64); err != nil {
		return 0, 0, 0, bad
	}
	if last, err = strconv.ParseInt(b, 10, 64); err != nil || last < first {
		return 0, 0, 0, bad
	}
	total = -1
	if tot != "*" {
		if total, err = strconv.ParseInt(tot, 10, 64); err != nil || total <= last {
			return 0, 0, 0, bad
		}
	}
	return first, last, total, nil
}

// watchdog cancels a request when a read waits longer than d.
type watchdog struct {
	d     time.Duration
	t     *time.Timer
	fired atomic.Bool
}

func newWatchdog(d time.Duration, cancel context.CancelFunc) *watchdog {
	w := &watchdog{d: d}
	w.t = time.AfterFunc(time.Hour, func() {
		w.fired.Store(true)
		cancel()
	})
	w.t.Stop()
	return w
}

func (w *watchdog) read(r io.Reader, p []byte) (int, error) {
	w.t.Reset(w.d)
	n, err := r.Read(p)
	w.t.Stop()
	if err != nil && w.fired.Load() {
		err = fmt.Errorf("no data for %v: %w", w.d, err)
	}
	return n, err
}

// httpStream is the io.ReadCloser behind HTTP.Open.
type httpStream struct {
	h    *HTTP
	c    *Client
	ctx  context.Context
	stop context.CancelFunc // ends ctx, on Close

	size    int64 // -1 while unknown
	off     int64 // bytes delivered to the caller
	skip    int64 // bytes of the current body to discard before delivering
	val     validator
	started bool // a first response was accepted

	// Read holds rmu; Close ends ctx, then takes rmu to release the body.
	rmu    sync.Mutex
	closed atomic.Bool
	body   io.ReadCloser
	cancel context.CancelFunc
	dog    *watchdog
	got    int64 // bytes received on the current connection

	fails   int   // tries in a row without a byte
	lastErr error // why the last try failed
	err     error // sticky: io.EOF, ErrClosed or a fatal error
}

// connect makes one request for the bytes from s.off on.
func (s *httpStream) connect() error {
	name := s.h.String()
	ctx, cancel := context.WithCancel(s.ctx)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.h.URL, nil)
	if err != nil {
		cancel()
		return fmt.Errorf("%w: %w", ErrSpec, err)
	}
	// Transparent gzip would make byte offsets meaningless.
	req.Header.Set("Accept-Encoding", "identity")
	if s.started && s.off > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", s.off))
		if v := s.val.ifRange(); v != "" {
			req.Header.Set("If-Range", v)
		}
	}
	resp, err := s.c.Do(req)
	if err != nil {
		cancel()
		if permanent(err) {
			return err
		}
		return fmt.Errorf("%s: %w", name, err)
	}
	if err := s.accept(resp, name); err != nil {
		resp.Body.Close()
		cancel()
		return err
	}
	s.body, s.cancel, s.got = resp.Body, cancel, 0
	s.dog = newWatchdog(s.h.idle(), cancel)
	return nil
}

// accept checks a response against what was asked and what came before.
func (s *httpStream) accept(resp *http.Response, name string) error {
	if err := statusError(resp, name, s.started); err != nil {
		return err
	}
	if ce := resp.Header.Get("Content-Encoding"); ce != "" && ce != "identity" {
		return fmt.Errorf("%w: %s: Content-Encoding %q", ErrHTTPStatus, name, ce)
	}
	v := validatorOf(resp)
	switch resp.StatusCode {
	case http.StatusOK:
		if !s.started {
			s.started, s.size, s.val = true, resp.ContentLength, v
			return nil
		}
		// A whole file in answer to a Range request: either If-Range did
		// not match (the file changed) or the server ignores Range.
		if s.val.differs(v) || (s.size >= 0 && resp.ContentLength >= 0 && resp.ContentLength != s.size) {
			return fmt.Errorf("%w: %s: the server sent a different file (ETag %s, %d bytes; was %s, %d bytes)",
				ErrChanged, name, v.etag, resp.ContentLength, s.val.etag, s.size)
		}
		s.skip = s.off
		if s.off > 0 {
			s.h.logf("source: %s ignores Range; reading again from the start, skipping %d bytes", name, s.off)
		}
		return nil
	case http.StatusPartialContent:
		first, _, total, err := parseContentRange(resp.Header.Get("Content-Range"))
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if !s.started {
			// Only a Range request should get a 206; take it if it starts at 0.
			if first != 0 {
				return fmt.Errorf("%w: %s: unasked partial content from %d", ErrHTTPStatus, name, first)
			}
			s.started, s.size, s.val = true, total, v
			return nil
		}
		if first != s.off {
			return fmt.Errorf("%w: %s: asked for bytes from %d, got from %d", ErrHTTPStatus, name, s.off, first)
		}
		if s.val.differs(v) || (s.size >= 0 && total >= 0 && total != s.size) {
			return fmt.Errorf("%w: %s: ETag %s, %d bytes; was %s, %d bytes", ErrChanged, name, v.etag, total, s.val.etag, s.size)
		}
		if s.size < 0 {
			s.size = total
		}
		s.skip = 0
		return nil
	}
	return fmt.Errorf("%w: %s: %s", ErrHTTPStatus, name, resp.Status)
}

// reconnect tries connect until it works, a permanent error, ctx's end or
// Retry's limit; it waits between tries that made no progress.
func (s *httpStream) reconnect() error {
	for {
		if s.fails > 0 {
			if s.h.Retry.exhausted(s.fails - 1) {
				return fmt.Errorf("%w: %d tries: %w", ErrUnreachable, s.fails, s.lastErr)
			}
			d := s.h.Retry.Delay(s.fails - 1)
			s.h.logf("source: %v; retrying in %v", s.lastErr, d.Round(time.Millisecond))
			if err := sleep(s.ctx, d); err != nil {
				return fmt.Errorf("source: %s: %w (last error: %w)", s.h, err, s.lastErr)
			}
		}
		err := s.connect()
		if err == nil {
			return nil
		}
		if permanent(err) {
			return err
		}
		if cerr := s.ctx.Err(); cerr != nil {
			return fmt.Errorf("source: %s: %w", s.h, cerr)
		}
		s.fails++
		s.lastErr = err
	}
}

// readBody reads from the current connection, discarding s.skip bytes first.
func (s *httpStream) readBody(p []byte) (int, error) {
	for s.skip > 0 {
		buf := p
		if int64(len(buf)) > s.skip {
			buf = buf[:s.skip]
		}
		n, err := s.dog.read(s.body, buf)
		s.skip -= int64(n)
		s.got += int64(n)
		if n > 0 {
			s.fails = 0
		}
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return 0, err
		}
	}
	n, err := s.dog.read(s.body, p)
	s.off += int64(n)
	s.got += int64(n)
	if n > 0 {
		s.fails = 0
	}
	return n, err
}

func (s *httpStream) Read(p []byte) (int, error) {
	s.rmu.Lock()
	defer s.rmu.Unlock()
	if s.closed.Load() {
		return 0, ErrClosed
	}
	if s.err != nil {
		return 0, s.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	if s.size >= 0 && s.off >= s.size && s.body == nil {
		s.err = io.EOF
		return 0, io.EOF
	}
	for {
		if s.body == nil {
			if err := s.reconnect(); err != nil {
				if s.closed.Load() {
					return 0, ErrClosed
				}
				s.err = err
				return 0, err
			}
		}
		n, err := s.readBody(p)
		if err == nil {
			return n, nil
		}
		if err == io.EOF && (s.size < 0 || s.off >= s.size) {
			s.closeBody()
			s.err = io.EOF
			return n, io.EOF
		}
		if s.closed.Load() {
			s.closeBody()
			return n, ErrClosed
		}
		if cerr := s.ctx.Err(); cerr != nil {
			s.closeBody()
			s.err = fmt.Errorf("source: %s: %w", s.h, cerr)
			return n, s.err
		}
		if err == io.EOF {
			err = fmt.Errorf("connection closed at byte %d of %d", s.off, s.size)
		}
		s.h.logf("source: %s: dropped at byte %d: %v; resuming", s.h, s.off, err)
		if s.got == 0 {
			s.fails++
		}
		s.lastErr = fmt.Errorf("%s: %w", s.h, err)
		s.closeBody()
		if n > 0 {
			return n, nil
		}
	}
}

func (s *httpStream) closeBody() {
	if s.body != nil {
		s.dog.t.Stop()
		s.cancel()
		s.body.Close()
		s.body, s.cancel = nil, nil
	}
}

// Close ends the download; a Read blocked in another goroutine returns
// ErrClosed.
func (s *httpStream) Close() error {
	s.closed.Store(true)
	s.stop()
	s.rmu.Lock()
	s.closeBody()
	s.rmu.Unlock()
	return nil
}
