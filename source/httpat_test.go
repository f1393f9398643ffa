package source

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sync"
	"testing"
)

func TestHTTPReaderAt(t *testing.T) {
	data := content(1_000_000, 10)
	bs, srv := newBundleServer(t, data)
	h := &HTTP{URL: srv.URL, Client: testClient(t), Retry: fastRetry, ReadAhead: 64 << 10}
	r, err := h.OpenReaderAt(context.Background())
	if err != nil {
		t.Fatalf("OpenReaderAt() = %v", err)
	}
	defer r.Close()
	if r.Size() != int64(len(data)) {
		t.Errorf("Size() = %d, want %d", r.Size(), len(data))
	}

	// Small reads inside the first block come from the read-ahead.
	for off := int64(0); off < 60_000; off += 1000 {
		p := make([]byte, 100)
		if n, err := r.ReadAt(p, off); n != 100 || err != nil || !bytes.Equal(p, data[off:off+100]) {
			t.Fatalf("ReadAt(100, %d) = %d, %v, or wrong bytes", off, n, err)
		}
	}
	if n := len(bs.requests()); n != 1 {
		t.Errorf("server saw %d requests for reads within the first block, want 1", n)
	}

	for _, tt := range []struct {
		off  int64
		n    int
		want int
		err  error
	}{
		{off: 65_000, n: 2000, want: 2000},            // across the block's end
		{off: 500_000, n: 300_000, want: 300_000},     // larger than a block
		{off: 999_990, n: 100, want: 10, err: io.EOF}, // past the end
		{off: 1_000_000, n: 10, want: 0, err: io.EOF}, // at the end
		{off: 0, n: 1_000_000, want: 1_000_000},       // all of it
		{off: 1_000_000 - 64<<10, n: 64 << 10, want: 64 << 10},
	} {
		p := make([]byte, tt.n)
		n, err := r.ReadAt(p, tt.off)
		if n != tt.want || err != tt.err || !bytes.Equal(p[:n], data[tt.off:tt.off+int64(n)]) {
			t.Errorf("ReadAt(%d bytes, %d) = %d, %v, want %d, %v and the served bytes", tt.n, tt.off, n, err, tt.want, tt.err)
		}
	}
	for i, req := range bs.requests()[1:] {
		if req.Get("If-Match") != `"v1"` {
			t.Errorf("request %d If-Match = %q, want the ETag", i+1, req.Get("If-Match"))
		}
	}

	// Concurrent readers, as io.ReaderAt allows.
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Go(func() {
			for i := 0; i < 20; i++ {
				off := int64((g*131_071 + i*7_919) % (len(data) - 5000))
				p := make([]byte, 5000)
				if n, err := r.ReadAt(p, off); n != 5000 || err != nil || !bytes.Equal(p, data[off:off+5000]) {
					t.Errorf("concurrent ReadAt(5000, %d) = %d, %v", off, n, err)
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestHTTPReaderAtDropsAndChanges(t *testing.T) {
	data := content(300_000, 11)
	bs, srv := newBundleServer(t, data)
	bs.steps = []step{{}, {drop: 10_000}, {drop: 5}}
	var log logSink
	h := &HTTP{URL: srv.URL, Client: testClient(t), Retry: fastRetry, ReadAhead: 4096, Logf: log.logf}
	r, err := h.OpenReaderAt(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	p := make([]byte, 100_000)
	if n, err := r.ReadAt(p, 100_000); n != len(p) || err != nil || !bytes.Equal(p, data[100_000:200_000]) {
		t.Fatalf("ReadAt over two drops = %d, %v", n, err)
	}
	if n := len(bs.requests()); n != 4 {
		t.Errorf("server saw %d requests, want 4 (probe, read, 2 resumes)", n)
	}

	// The file changes: the next read must not mix versions.
	bs.set(content(300_000, 12), `"v2"`, bs.modTime)
	if _, err := r.ReadAt(p, 0); !errors.Is(err, ErrChanged) {
		t.Errorf("ReadAt() after the file changed = %v, want ErrChanged", err)
	}
	r.Close()
	if _, err := r.ReadAt(p[:1], 0); !errors.Is(err, ErrClosed) {
		t.Errorf("ReadAt() after Close = %v, want ErrClosed", err)
	}
}

func TestHTTPReaderAtNoRanges(t *testing.T) {
	bs, srv := newBundleServer(t, content(100_000, 13))
	bs.ignoreRange = true
	h := &HTTP{URL: srv.URL, Client: testClient(t), Retry: fastRetry}
	if _, err := h.OpenReaderAt(context.Background()); !errors.Is(err, ErrNoRanges) {
		t.Errorf("OpenReaderAt() on a server without Range = %v, want ErrNoRanges", err)
	}
}

func TestHTTPReaderAtSmallFile(t *testing.T) {
	data := []byte("a tiny bundle")
	_, srv := newBundleServer(t, data)
	h := &HTTP{URL: srv.URL, Client: testClient(t), Retry: fastRetry}
	r, err := h.OpenReaderAt(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(io.NewSectionReader(r, 0, r.Size()))
	if err != nil || !bytes.Equal(got, data) {
		t.Errorf("read %q, %v; want %q", got, err, data)
	}
}
