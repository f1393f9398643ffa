package webui

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// harness is a Server on a real HTTP server (httptest) in front of an
// engineDevice, with a clock the test moves and the console lines kept.
type harness struct {
	t     *testing.T
	dev   *engineDevice
	srv   *Server
	hs    *httptest.Server
	clock *fakeClock
	log   *console
}

func newHarness(t *testing.T, dev *engineDevice, adjust func(*Config)) *harness {
	t.Helper()
	h := &harness{t: t, dev: dev, clock: &fakeClock{now: time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)}, log: &console{}}
	cfg := Config{Device: dev, Logf: h.log.printf, Now: h.clock.Now}
	if adjust != nil {
		adjust(&cfg)
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.srv = srv
	h.hs = httptest.NewServer(srv.Handler())
	// Close the Server first: that ends its event streams, which the
	// httptest server waits for.
	t.Cleanup(h.hs.Close)
	t.Cleanup(func() { srv.Close() })
	return h
}

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// console keeps the lines the server prints and lets a test wait for one.
type console struct {
	mu    sync.Mutex
	lines []string
}

func (c *console) printf(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lines = append(c.lines, fmt.Sprintf(format, args...))
}

func (c *console) text() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return strings.Join(c.lines, "\n")
}

// waitFor waits until a line contains s.
func (c *console) waitFor(t testing.TB, s string) {
	t.Helper()
	c.waitCount(t, s, 1)
}

// waitCount waits until n lines contain s.
func (c *console) waitCount(t testing.TB, s string, n int) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for strings.Count(c.text(), s) < n {
		if time.Now().After(deadline) {
			t.Fatalf("console never said %q %d times; it said:\n%s", s, n, c.text())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// client is a client that keeps cookies, as a browser does.
func (h *harness) client() *http.Client { return newClient() }

func newClient() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar}
}

func (h *harness) request(c *http.Client, method, path string, body io.Reader, header map[string]string) (*http.Response, []byte) {
	h.t.Helper()
	req, err := http.NewRequest(method, h.hs.URL+path, body)
	if err != nil {
		h.t.Fatal(err)
	}
	if br, ok := body.(*bytes.Reader); ok {
		req.ContentLength = int64(br.Len())
	}
	req.Header.Set("Origin", h.hs.URL)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	for k, v := range header {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	resp, err := c.Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatalf("%s %s: reading the answer: %v", method, path, err)
	}
	return resp, b
}

func (h *harness) post(c *http.Client, path, jsonBody string) (*http.Response, apiError) {
	h.t.Helper()
	resp, b := h.request(c, "POST", path, strings.NewReader(jsonBody), map[string]string{"Content-Type": "application/json"})
	var e apiError
	json.Unmarshal(b, &e)
	return resp, e
}

// login signs c in with the one-time code.
func (h *harness) login(c *http.Client) {
	h.t.Helper()
	resp, e := h.post(c, "/api/login", fmt.Sprintf(`{"code": %q}`, h.srv.Code()))
	if resp.StatusCode != http.StatusOK {
		h.t.Fatalf("sign-in with the right code: %s %s", resp.Status, e.Error)
	}
}

// upload PUTs b as the bundle and returns the answer.
func (h *harness) upload(c *http.Client, b []byte) (int, apiError) {
	h.t.Helper()
	resp, body := h.request(c, "PUT", "/api/bundle", bytes.NewReader(b), nil)
	var e apiError
	json.Unmarshal(body, &e)
	return resp.StatusCode, e
}

// stream is a page's event stream, read as the browser's EventSource
// does.
type stream struct {
	ch   chan map[string]any
	seen []map[string]any
}

func (h *harness) events(c *http.Client) *stream {
	h.t.Helper()
	resp, err := c.Get(h.hs.URL + "/api/events")
	if err != nil {
		h.t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != http.StatusOK || ct != "text/event-stream" {
		h.t.Fatalf("GET /api/events: %s, %s", resp.Status, ct)
	}
	h.t.Cleanup(func() { resp.Body.Close() })
	return readEvents(resp.Body)
}

// readEvents reads an event stream's messages as they come, each a JSON
// object.
func readEvents(r io.Reader) *stream {
	s := &stream{ch: make(chan map[string]any, 1024)}
	go func() {
		defer close(s.ch)
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			data, ok := strings.CutPrefix(sc.Text(), "data: ")
			if !ok {
				continue
			}
			var m map[string]any
			if err := json.Unmarshal([]byte(data), &m); err != nil {
				m = map[string]any{"event": "BAD JSON", "data": data}
			}
			s.ch <- m
		}
	}()
	return s
}

// until reads events until one satisfies match, and returns it.
func (s *stream) until(t testing.TB, what string, match func(map[string]any) bool) map[string]any {
	t.Helper()
	timeout := time.After(2 * time.Minute)
	for {
		select {
		case m, ok := <-s.ch:
			if !ok {
				t.Fatalf("event stream ended before %s; seen: %v", what, kinds(s.seen))
			}
			s.seen = append(s.seen, m)
			if match(m) {
				return m
			}
		case <-timeout:
			t.Fatalf("no event for %s; seen: %v", what, kinds(s.seen))
		}
	}
}

// jobEnd waits for the end of the running job.
func (s *stream) jobEnd(t testing.TB) map[string]any {
	t.Helper()
	return s.until(t, "the job's end", func(m map[string]any) bool {
		return m["event"] == "job" && m["state"] != stateRunning
	})
}

func kinds(ms []map[string]any) []string {
	var out []string
	for _, m := range ms {
		k, _ := m["event"].(string)
		if k == "job" {
			k += ":" + fmt.Sprint(m["state"])
		}
		out = append(out, k)
	}
	return out
}
