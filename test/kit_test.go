package test

// Helpers the power-cut, bad-input and numbers tests share.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lifeboat-updater/lifeboat/bundle"
	"github.com/lifeboat-updater/lifeboat/demo"
	"github.com/lifeboat-updater/lifeboat/internal/vm"
)

// waitEvent polls the timeline for an install event that match accepts,
// newer than after, and returns it; the test fails if none comes in time
// or the VM ends first.
func waitEvent(t *testing.T, v *vm.VM, tl *demo.Timeline, after time.Duration, timeout time.Duration, what string, match func(demo.Event) bool) demo.Event {
	t.Helper()
	// timeout is how long the guest may print nothing, as in vm.Expect:
	// a busy machine's slow guest is waited for while it makes progress.
	start := time.Now()
	deadline, seen := start.Add(timeout), 0
	for {
		for _, e := range tl.Events() {
			if e.At >= after && match(e) {
				return e
			}
		}
		select {
		case <-v.Done():
			t.Fatalf("waiting for %s: the VM ended\n%s", what, tail(v.Console(), 2000))
		default:
		}
		if n := len(v.Console()); n > seen {
			seen, deadline = n, time.Now().Add(timeout)
		}
		if now := time.Now(); now.After(deadline) || now.Sub(start) > vm.SlowFactor*timeout {
			t.Fatalf("waiting for %s: none after %v (the guest silent for up to %v)\n%s", what, time.Since(start).Round(time.Second), timeout, tail(v.Console(), 2000))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// stepEvent matches an event of a kind for step n.
func stepEvent(kind string, n int64) func(demo.Event) bool {
	return func(e demo.Event) bool { return e.Kind() == kind && e.Int("step") == n }
}

// fileDigest is the SHA-256 of a file: "the disk is untouched" is "its
// digest did not change".
func fileDigest(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// allZero reports whether every byte of the file is zero, and the offset
// of the first one that is not.
func allZero(t *testing.T, path string) (bool, int64) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	var off int64
	for {
		n, err := io.ReadFull(f, buf)
		if i := bytes.IndexFunc(buf[:n], func(r rune) bool { return r != 0 }); i >= 0 {
			return false, off + int64(i)
		}
		off += int64(n)
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return true, -1
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// imageChunks counts the chunks of an image file, and those all zero:
// zero chunks are not stored in a bundle, an install zeroes them or finds
// them zero already, so it never counts them as written.
func imageChunks(t *testing.T, path string, chunk int) (total, zeros int64) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, chunk)
	zero := make([]byte, chunk)
	for {
		k, err := io.ReadFull(f, buf)
		if k > 0 {
			total++
			if bytes.Equal(buf[:k], zero[:k]) {
				zeros++
			}
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return total, zeros
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// writeBundle makes a signed bundle from a spec (YAML, image paths
// absolute) in a temporary folder and returns its path.
func writeBundle(t *testing.T, spec string, signer bundle.Signer) string {
	t.Helper()
	dir := t.TempDir()
	sp := filepath.Join(dir, "bundle.yaml")
	if err := os.WriteFile(sp, []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, demo.BundleName)
	if err := demo.CreateBundle(context.Background(), sp, out, signer); err != nil {
		t.Fatalf("bundle:\n%s\n%v", spec, err)
	}
	return out
}

// switchServer serves one path whose answer a test changes as it goes:
// a file (through a demo.Server, with its knobs), a status code, or
// nothing at all (the port closed: the server is unreachable).
type switchServer struct {
	t    *testing.T
	addr string // 127.0.0.1:PORT, fixed for the test

	mu     sync.Mutex
	ln     net.Listener
	srv    *http.Server
	file   string // served at every path while status is 0
	status int
	inner  *demo.Server
	log    []string
}

// newSwitchServer reserves a port and starts with it closed.
func newSwitchServer(t *testing.T) *switchServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &switchServer{t: t, addr: ln.Addr().String()}
	ln.Close()
	t.Cleanup(func() {
		s.down()
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, l := range s.log {
			t.Logf("http: %s", l)
		}
	})
	return s
}

// GuestURL is the bundle's address as the guest reaches it.
func (s *switchServer) GuestURL() string {
	_, port, _ := net.SplitHostPort(s.addr)
	return "http://" + demo.GuestHost + ":" + port + "/" + demo.BundleName
}

// up opens the port (again).
func (s *switchServer) up() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln != nil {
		return
	}
	var ln net.Listener
	var err error
	for i := 0; i < 50; i++ { // the port may linger for a moment
		if ln, err = net.Listen("tcp", s.addr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		s.t.Fatalf("reopening %s: %v", s.addr, err)
	}
	s.ln = ln
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = s.srv.Serve(ln) }()
}

// down closes the port and every connection.
func (s *switchServer) down() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		s.srv.Close()
	}
	s.ln, s.srv = nil, nil
}

// serveFile answers with file (through inner, a demo.Server over its
// folder, so its knobs apply).
func (s *switchServer) serveFile(file string, inner *demo.Server) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.file, s.status, s.inner = file, 0, inner
}

// serveStatus answers every request with code.
func (s *switchServer) serveStatus(code int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.status = code
}

func (s *switchServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	status, file, inner := s.status, s.file, s.inner
	if status != 0 || inner == nil {
		if status == 0 {
			status = http.StatusNotFound
		}
		s.log = append(s.log, time.Now().Format("15:04:05.000")+" "+r.Method+" "+r.URL.Path+": "+http.StatusText(status))
	}
	s.mu.Unlock()
	if status != 0 || inner == nil {
		http.Error(w, http.StatusText(status), status)
		return
	}
	r2 := r.Clone(r.Context())
	r2.URL.Path = "/" + filepath.Base(file)
	inner.ServeHTTP(w, r2)
}

// countLines counts console lines holding s.
func countLines(tl *demo.Timeline, s string) int {
	n := 0
	for _, l := range tl.Lines() {
		if strings.Contains(l.Text, s) {
			n++
		}
	}
	return n
}

// expectCount waits until n console lines hold s.
func expectCount(t *testing.T, v *vm.VM, tl *demo.Timeline, s string, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for countLines(tl, s) < n {
		select {
		case <-v.Done():
			t.Fatalf("waiting for %d lines with %q: the VM ended\n%s", n, s, tail(v.Console(), 2000))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %d lines with %q: %d after %v\n%s", n, s, countLines(tl, s), timeout, tail(v.Console(), 3000))
		}
		time.Sleep(50 * time.Millisecond)
	}
}
