package source

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultReadAhead is the smallest Range request the HTTP ReaderAt makes:
// small reads (a header, an index entry) are served from the block read
// ahead instead of one request each.
const DefaultReadAhead = 64 << 10

// OpenReaderAt opens the bundle for random access with Range requests.
// The first request reads the first ReadAhead bytes and learns the size
// and validator; every later request carries If-Match (or
// If-Unmodified-Since) so that a changed file gives ErrChanged instead of
// mixed bytes. A server without Range support gives ErrNoRanges. ctx
// bounds every later ReadAt. A request that drops is resumed for the
// missing part, with the same retry rules as Open.
func (h *HTTP) OpenReaderAt(ctx context.Context) (ReaderAt, error) {
	c, err := h.client()
	if err != nil {
		return nil, err
	}
	ra := h.ReadAhead
	if ra <= 0 {
		ra = DefaultReadAhead
	}
	r := &httpReaderAt{h: h, c: c, ctx: ctx, readAhead: ra, size: -1}
	buf, err := r.fetch(0, ra)
	if err != nil {
		return nil, err
	}
	r.cache, r.cacheOff = buf, 0
	return r, nil
}

type httpReaderAt struct {
	h         *HTTP
	c         *Client
	ctx       context.Context
	readAhead int
	closed    atomic.Bool

	// Set by the first response, read-only after OpenReaderAt.
	size int64
	val  validator

	mu       sync.Mutex // guards the read-ahead block
	cache    []byte
	cacheOff int64
}

func (r *httpReaderAt) Size() int64 { return r.size }

func (r *httpReaderAt) Close() error {
	r.closed.Store(true)
	r.mu.Lock()
	r.cache = nil
	r.mu.Unlock()
	return nil
}

func (r *httpReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if r.closed.Load() {
		return 0, ErrClosed
	}
	if off < 0 {
		return 0, fmt.Errorf("source: %s: negative offset %d", r.h, off)
	}
	if off >= r.size {
		return 0, io.EOF
	}
	want := len(p)
	if rest := r.size - off; int64(want) > rest {
		want = int(rest)
	}
	n := r.fromCache(p[:want], off)
	if n < want {
		// Read at least a read-ahead block; keep what the caller did not
		// ask for, for the next small read.
		need := want - n
		size := max(need, r.readAhead)
		if rest := r.size - off - int64(n); int64(size) > rest {
			size = int(rest)
		}
		buf, err := r.fetch(off+int64(n), size)
		if err != nil {
			return n, err
		}
		copy(p[n:want], buf)
		if len(buf) > need {
			r.mu.Lock()
			r.cache, r.cacheOff = buf, off+int64(n)
			r.mu.Unlock()
		}
		n = want
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// fromCache copies the part of [off, off+len(p)) that the read-ahead
// block holds from off on.
func (r *httpReaderAt) fromCache(p []byte, off int64) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if off < r.cacheOff || off >= r.cacheOff+int64(len(r.cache)) {
		return 0
	}
	return copy(p, r.cache[off-r.cacheOff:])
}

// fetch reads n bytes at off (fewer on the first call if the file is
// shorter), retrying and resuming like the stream does.
func (r *httpReaderAt) fetch(off int64, n int) ([]byte, error) {
	buf := make([]byte, n)
	got, fails := 0, 0
	var last error
	for got < len(buf) {
		if fails > 0 {
			if r.h.Retry.exhausted(fails - 1) {
				return nil, fmt.Errorf("%w: %d tries: %w", ErrUnreachable, fails, last)
			}
			d := r.h.Retry.Delay(fails - 1)
			r.h.logf("source: %v; retrying in %v", last, d.Round(time.Millisecond))
			if err := sleep(r.ctx, d); err != nil {
				return nil, fmt.Errorf("source: %s: %w (last error: %w)", r.h, err, last)
			}
		}
		k, err := r.get(off+int64(got), buf[got:])
		got += k
		if r.size >= 0 && int64(len(buf)) > r.size-off {
			buf = buf[:r.size-off] // the first response told a shorter file
		}
		if err == nil {
			continue
		}
		if permanent(err) {
			return nil, err
		}
		if cerr := r.ctx.Err(); cerr != nil {
			return nil, fmt.Errorf("source: %s: %w", r.h, cerr)
		}
		if r.closed.Load() {
			return nil, ErrClosed
		}
		if k > 0 {
			fails = 0
		} else {
			fails++
		}
		last = fmt.Errorf("%s: %w", r.h, err)
	}
	return buf, nil
}

// get makes one Range request for p at off and reads what arrives into p.
func (r *httpReaderAt) get(off int64, p []byte) (int, error) {
	name := r.h.String()
	first := r.size < 0
	ctx, cancel := context.WithCancel(r.ctx)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.h.URL, nil)
	if err != nil {
		return 0, fmt.Errorf("%w: %w", ErrSpec, err)
	}
	req.Header.Set("Accept-Encoding", "identity")
	req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", off, off+int64(len(p))-1))
	if !first {
		if e := r.val.strongETag(); e != "" {
			req.Header.Set("If-Match", e)
		} else if r.val.lastModified != "" {
			req.Header.Set("If-Unmodified-Since", r.val.lastModified)
		}
	}
	resp, err := r.c.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if err := statusError(resp, name, !first); err != nil {
		return 0, err
	}
	if resp.StatusCode != http.StatusPartialContent {
		return 0, fmt.Errorf("%w: %s answered %s", ErrNoRanges, name, resp.Status)
	}
	start, end, total, err := parseContentRange(resp.Header.Get("Content-Range"))
	if err != nil {
		return 0, fmt.Errorf("%s: %w", name, err)
	}
	v := validatorOf(resp)
	if first {
		if total < 0 {
			return 0, fmt.Errorf("%w: %s does not tell the size", ErrNoRanges, name)
		}
		r.size, r.val = total, v
	} else if total != r.size || r.val.differs(v) {
		return 0, fmt.Errorf("%w: %s: ETag %s, %d bytes; was %s, %d bytes", ErrChanged, name, v.etag, total, r.val.etag, r.size)
	}
	if start != off {
		return 0, fmt.Errorf("%w: %s: asked for bytes from %d, got from %d", ErrHTTPStatus, name, off, start)
	}
	want := min(int64(len(p)), end-start+1)
	dog := newWatchdog(r.h.idle(), cancel)
	defer dog.t.Stop()
	n := 0
	for int64(n) < want {
		k, err := dog.read(resp.Body, p[n:want])
		n += k
		if err != nil {
			if errors.Is(err, io.EOF) && int64(n) < want {
				err = io.ErrUnexpectedEOF
			}
			if int64(n) == want {
				break
			}
			return n, err
		}
	}
	return n, nil
}
