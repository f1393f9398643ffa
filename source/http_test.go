package source

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// fastRetry keeps tests quick.
var fastRetry = Backoff{Initial: 10 * time.Millisecond, Max: 50 * time.Millisecond, Attempts: 5}

func content(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

var errDropped = errors.New("dropped on purpose")

// step says what the server does with one request.
type step struct {
	status int   // answer with this status and no body
	drop   int64 // drop the connection after this many body bytes (>0)
	stall  int64 // stop sending after this many body bytes until the client gives up (>0)
}

// bundleServer serves one file with http.ServeContent (Range, If-Range,
// If-Match done by the standard library), misbehaving as told.
type bundleServer struct {
	mu          sync.Mutex
	data        []byte
	etag        string
	modTime     time.Time
	ignoreRange bool
	chunked     bool // first answer without Content-Length
	steps       []step
	reqs        []http.Header
}

func (s *bundleServer) set(data []byte, etag string, mod time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.data, s.etag, s.modTime = data, etag, mod
}

func (s *bundleServer) requests() []http.Header {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]http.Header(nil), s.reqs...)
}

func (s *bundleServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.reqs = append(s.reqs, r.Header.Clone())
	var st step
	if len(s.steps) > 0 {
		st, s.steps = s.steps[0], s.steps[1:]
	}
	data, etag, mod, chunked := s.data, s.etag, s.modTime, s.chunked
	s.chunked = false
	s.mu.Unlock()

	if st.status != 0 {
		http.Error(w, http.StatusText(st.status), st.status)
		return
	}
	if s.ignoreRange {
		r.Header.Del("Range")
	}
	if etag != "" {
		w.Header().Set("ETag", etag)
	}
	var ww http.ResponseWriter = w
	if st.drop > 0 || st.stall > 0 {
		ww = &badWriter{ResponseWriter: w, r: r, left: max(st.drop, st.stall), stall: st.stall > 0}
	}
	if chunked {
		// No Content-Length: the client cannot know the size up front.
		ww.WriteHeader(http.StatusOK)
		ww.Write(data)
		return
	}
	http.ServeContent(ww, r, "b.lfb", mod, bytes.NewReader(data))
}

// badWriter passes left bytes, then drops the connection or stalls.
type badWriter struct {
	http.ResponseWriter
	r     *http.Request
	left  int64
	stall bool
	done  bool
}

func (b *badWriter) Write(p []byte) (int, error) {
	if b.done {
		return 0, errDropped
	}
	if int64(len(p)) <= b.left {
		b.left -= int64(len(p))
		return b.ResponseWriter.Write(p)
	}
	n, _ := b.ResponseWriter.Write(p[:b.left])
	b.done = true
	rc := http.NewResponseController(b.ResponseWriter)
	rc.Flush()
	if b.stall {
		select {
		case <-b.r.Context().Done():
		case <-time.After(5 * time.Second):
		}
		return n, errDropped
	}
	if conn, _, err := rc.Hijack(); err == nil {
		conn.Close()
	}
	return n, errDropped
}

func newBundleServer(t *testing.T, data []byte) (*bundleServer, *httptest.Server) {
	bs := &bundleServer{data: data, etag: `"v1"`, modTime: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)}
	srv := httptest.NewServer(bs)
	t.Cleanup(srv.Close)
	return bs, srv
}

type logSink struct {
	mu    sync.Mutex
	lines []string
}

func (l *logSink) logf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprintf(format, args...))
}

func (l *logSink) contains(s string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, line := range l.lines {
		if strings.Contains(line, s) {
			return true
		}
	}
	return false
}

func testClient(t *testing.T) *Client {
	c, err := NewClient(ClientConfig{RootsFile: "/nonexistent"})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func readAll(t *testing.T, h *HTTP) ([]byte, *Stream, error) {
	t.Helper()
	st, err := h.Open(context.Background())
	if err != nil {
		return nil, nil, err
	}
	defer st.Close()
	// Small reads, as a decompressor would make.
	var out bytes.Buffer
	buf := make([]byte, 3000)
	for {
		n, err := st.Read(buf)
		out.Write(buf[:n])
		if err == io.EOF {
			return out.Bytes(), st, nil
		}
		if err != nil {
			return out.Bytes(), st, err
		}
	}
}

func TestHTTPResumesAfterDrops(t *testing.T) {
	data := content(1<<20, 1)
	for _, tt := range []struct {
		name        string
		etag        string
		ignoreRange bool
		chunked     bool
	}{
		{name: "strong ETag", etag: `"v1"`},
		{name: "weak ETag, Last-Modified", etag: `W/"v1"`},
		{name: "Last-Modified only"},
		{name: "server ignores Range", etag: `"v1"`, ignoreRange: true},
		{name: "size unknown at first", etag: `"v1"`, chunked: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			bs, srv := newBundleServer(t, data)
			bs.etag, bs.ignoreRange, bs.chunked = tt.etag, tt.ignoreRange, tt.chunked
			bs.steps = []step{{drop: 100_000}, {drop: 1}, {drop: 250_000}, {drop: 70_001}}
			var log logSink
			h := &HTTP{URL: srv.URL + "/b.lfb", Client: testClient(t), Retry: fastRetry, Logf: log.logf}
			got, st, err := readAll(t, h)
			if err != nil {
				t.Fatalf("reading %s = %v", h, err)
			}
			if !bytes.Equal(got, data) {
				t.Fatalf("read %d bytes, want the %d bytes served (first difference at %d)", len(got), len(data), firstDiff(got, data))
			}
			wantSize := int64(len(data))
			if tt.chunked {
				wantSize = -1
			}
			if st.Size != wantSize {
				t.Errorf("Stream.Size = %d, want %d", st.Size, wantSize)
			}
			reqs := bs.requests()
			if len(reqs) != 5 {
				t.Errorf("server saw %d requests, want 5 (1 + 4 resumes)", len(reqs))
			}
			for i, r := range reqs {
				if got := r.Get("Accept-Encoding"); got != "identity" {
					t.Errorf("request %d Accept-Encoding = %q, want identity", i, got)
				}
				if i == 0 {
					if r.Get("Range") != "" {
						t.Errorf("first request has Range %q", r.Get("Range"))
					}
					continue
				}
				if !strings.HasPrefix(r.Get("Range"), "bytes=") {
					t.Errorf("request %d Range = %q, want bytes=N-", i, r.Get("Range"))
				}
				wantIfRange := tt.etag
				if tt.etag == "" || strings.HasPrefix(tt.etag, "W/") {
					wantIfRange = "Thu, 02 Jan 2025 03:04:05 GMT"
				}
				if got := r.Get("If-Range"); got != wantIfRange {
					t.Errorf("request %d If-Range = %q, want %q", i, got, wantIfRange)
				}
			}
			if !log.contains("dropped at byte 100000") {
				t.Errorf("no drop logged: %q", log.lines)
			}
		})
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

func TestHTTPStall(t *testing.T) {
	data := content(300_000, 2)
	bs, srv := newBundleServer(t, data)
	bs.steps = []step{{stall: 40_000}}
	var log logSink
	h := &HTTP{URL: srv.URL, Client: testClient(t), Retry: fastRetry, IdleTimeout: 200 * time.Millisecond, Logf: log.logf}
	start := time.Now()
	got, _, err := readAll(t, h)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read %d bytes, %v; want %d bytes", len(got), err, len(data))
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("download took %v, want the 200ms idle timeout to cut the stall short", d)
	}
	if !log.contains("no data for 200ms") {
		t.Errorf("stall not logged: %q", log.lines)
	}
}

// TestHTTPServerDiesAndReturns: the server goes away mid-body (its port
// refuses connections), then comes back on the same address.
func TestHTTPServerDiesAndReturns(t *testing.T) {
	data := content(500_000, 3)
	bs := &bundleServer{data: data, etag: `"v1"`, modTime: time.Now(), steps: []step{{drop: 123_456}}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	var (
		once sync.Once
		mu   sync.Mutex
		srvs []*http.Server
	)
	serve := func(ln net.Listener, h http.Handler) {
		s := &http.Server{Handler: h}
		mu.Lock()
		srvs = append(srvs, s)
		mu.Unlock()
		go s.Serve(ln)
	}
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, s := range srvs {
			s.Close()
		}
	})
	serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Stop listening before the drop, so the client finds nobody.
		once.Do(func() {
			ln.Close()
			time.AfterFunc(400*time.Millisecond, func() {
				ln2, err := net.Listen("tcp", addr)
				if err != nil {
					t.Errorf("listening again on %s: %v", addr, err)
					return
				}
				serve(ln2, bs)
			})
		})
		bs.ServeHTTP(w, r)
	}))

	var log logSink
	h := &HTTP{URL: "http://" + addr + "/b.lfb", Client: testClient(t),
		Retry: Backoff{Initial: 50 * time.Millisecond, Max: 200 * time.Millisecond, Attempts: 20}, Logf: log.logf}
	got, _, err := readAll(t, h)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read %d bytes, %v; want %d bytes", len(got), err, len(data))
	}
	if !log.contains("connection refused") {
		t.Errorf("no refused connection logged: %q", log.lines)
	}
}

func TestHTTPPermanentErrors(t *testing.T) {
	for _, tt := range []struct {
		status int
		want   error
	}{
		{http.StatusNotFound, ErrNotFound},
		{http.StatusGone, ErrNotFound},
		{http.StatusForbidden, ErrForbidden},
		{http.StatusUnauthorized, ErrForbidden},
		{http.StatusBadRequest, ErrHTTPStatus},
	} {
		t.Run(http.StatusText(tt.status), func(t *testing.T) {
			bs, srv := newBundleServer(t, []byte("x"))
			bs.steps = []step{{status: tt.status}, {status: tt.status}, {status: tt.status}}
			h := &HTTP{URL: srv.URL + "/missing.lfb", Client: testClient(t), Retry: Backoff{Initial: time.Second}}
			start := time.Now()
			_, err := h.Open(context.Background())
			if !errors.Is(err, tt.want) {
				t.Errorf("Open() = %v, want %v", err, tt.want)
			}
			if err != nil && !strings.Contains(err.Error(), srv.URL) {
				t.Errorf("Open() = %q, want the URL in the message", err)
			}
			if n := len(bs.requests()); n != 1 {
				t.Errorf("server saw %d requests, want 1 (no retry)", n)
			}
			if d := time.Since(start); d > 500*time.Millisecond {
				t.Errorf("Open() took %v, want it to fail fast", d)
			}
		})
	}
}

func TestHTTPTransientErrors(t *testing.T) {
	data := content(10_000, 4)
	bs, srv := newBundleServer(t, data)
	bs.steps = []step{{status: 503}, {status: 429}, {status: 500}}
	h := &HTTP{URL: srv.URL, Client: testClient(t), Retry: fastRetry}
	got, _, err := readAll(t, h)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read %d bytes, %v; want %d bytes", len(got), err, len(data))
	}
	if n := len(bs.requests()); n != 4 {
		t.Errorf("server saw %d requests, want 4", n)
	}

	bs.steps = []step{{status: 503}, {status: 503}, {status: 503}, {status: 503}, {status: 503}}
	_, err = h.Open(context.Background())
	if !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), "503") {
		t.Errorf("Open() after 5 x 503 = %v, want ErrUnreachable mentioning 503", err)
	}
}

func TestHTTPUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nobody listens: connection refused
	h := &HTTP{URL: "http://" + addr + "/b.lfb", Client: testClient(t), Retry: Backoff{Initial: 10 * time.Millisecond, Attempts: 3}}
	_, err = h.Open(context.Background())
	if !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), "refused") {
		t.Errorf("Open() = %v, want ErrUnreachable (connection refused)", err)
	}

	// The context ends the retries too.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	h.Retry = Backoff{Initial: 20 * time.Millisecond, Attempts: -1}
	_, err = h.Open(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Open() with a 100ms context = %v, want DeadlineExceeded", err)
	}
}

func TestHTTPChangedDuringDownload(t *testing.T) {
	v1, v2 := content(200_000, 5), content(200_000, 6)
	for _, tt := range []struct {
		name  string
		etag2 string
		size2 int
	}{
		{"new ETag", `"v2"`, len(v2)},
		{"same ETag, other size", `"v1"`, 150_000},
		{"Last-Modified only", "", len(v2)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			bs, srv := newBundleServer(t, v1)
			if tt.etag2 == "" {
				bs.etag = ""
			}
			bs.steps = []step{{drop: 50_000}}
			h := &HTTP{URL: srv.URL, Client: testClient(t), Retry: fastRetry}
			st, err := h.Open(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			// The file is replaced while the first connection is open.
			bs.set(v2[:tt.size2], tt.etag2, bs.modTime.Add(time.Hour))
			got, err := io.ReadAll(st)
			if !errors.Is(err, ErrChanged) {
				t.Errorf("ReadAll() = %v, want ErrChanged", err)
			}
			if !bytes.Equal(got, v1[:len(got)]) || len(got) != 50_000 {
				t.Errorf("read %d bytes before the error, want the first 50000 bytes of the old file", len(got))
			}
			if _, err := st.Read(make([]byte, 10)); !errors.Is(err, ErrChanged) {
				t.Errorf("Read() after ErrChanged = %v, want ErrChanged again", err)
			}
		})
	}
}

func TestHTTPCloseDuringRetry(t *testing.T) {
	data := content(100_000, 7)
	bs, srv := newBundleServer(t, data)
	bs.steps = []step{{drop: 10_000}, {status: 503}, {status: 503}, {status: 503}}
	h := &HTTP{URL: srv.URL, Client: testClient(t), Retry: Backoff{Initial: 10 * time.Second, Attempts: -1}}
	st, err := h.Open(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := io.Copy(io.Discard, st)
		errc <- err
	}()
	time.Sleep(100 * time.Millisecond) // now waiting 10s before the next try
	start := time.Now()
	st.Close()
	if err := <-errc; !errors.Is(err, ErrClosed) {
		t.Errorf("Read() during Close = %v, want ErrClosed", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Close() took %v, want it to interrupt the backoff", d)
	}
}

func TestParseContentRange(t *testing.T) {
	for _, tt := range []struct {
		in                 string
		first, last, total int64
		bad                bool
	}{
		{in: "bytes 0-99/100", first: 0, last: 99, total: 100},
		{in: "bytes 100-199/*", first: 100, last: 199, total: -1},
		{in: "bytes 5-4/10", bad: true},
		{in: "bytes 0-99/99", bad: true},
		{in: "bytes */100", bad: true},
		{in: "items 0-1/2", bad: true},
		{in: "", bad: true},
	} {
		f, l, tot, err := parseContentRange(tt.in)
		if tt.bad {
			if err == nil {
				t.Errorf("parseContentRange(%q) = %d, %d, %d, want an error", tt.in, f, l, tot)
			}
			continue
		}
		if err != nil || f != tt.first || l != tt.last || tot != tt.total {
			t.Errorf("parseContentRange(%q) = %d, %d, %d, %v, want %d, %d, %d", tt.in, f, l, tot, err, tt.first, tt.last, tt.total)
		}
	}
}

func TestBackoffDelay(t *testing.T) {
	b := Backoff{Initial: 100 * time.Millisecond, Max: time.Second}
	for n, want := range []time.Duration{100, 200, 400, 800, 1000, 1000} {
		want *= time.Millisecond
		got := b.Delay(n)
		if got < want*8/10 || got > want*12/10 {
			t.Errorf("Delay(%d) = %v, want %v ±20%%", n, got, want)
		}
	}
	if !(Backoff{Attempts: 3}).exhausted(2) || (Backoff{Attempts: 3}).exhausted(1) || (Backoff{Attempts: -1}).exhausted(1000) {
		t.Error("exhausted() does not count tries as documented")
	}
}
