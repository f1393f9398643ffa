package webui

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/lifeboat-updater/lifeboat/boards"
	"github.com/lifeboat-updater/lifeboat/bundle"
	"github.com/lifeboat-updater/lifeboat/install"
	"github.com/lifeboat-updater/lifeboat/install/installtest"
)

// testImage is 40 chunks and a bit, of every kind (raw, lz4, zeros).
const testImage = 40*cs + 1234

func TestUploadInstalls(t *testing.T) {
	b := newBundles(t, testImage)
	dev := newEngineDevice(t, b.key, 4<<20)
	h := newHarness(t, dev, nil)
	c := h.client()
	h.login(c)
	watcher := h.events(h.client()) // another page, not signed in, sees it all too

	hello := watcher.until(t, "hello", func(m map[string]any) bool { return m["event"] == "hello" })
	if hello["authorized"] != false {
		t.Errorf("hello to a page that is not signed in: authorized = %v", hello["authorized"])
	}
	code, e := h.upload(c, b.good)
	if code != http.StatusOK {
		t.Fatalf("upload: %d %s", code, e.Error)
	}
	end := watcher.jobEnd(t)
	if end["state"] != stateDone || end["product"] != "demo" || end["version"] != "1.0" {
		t.Errorf("job end = %v, want done, demo 1.0", end)
	}
	got := kinds(watcher.seen)
	want := []string{"hello", "job:running", "start", "plan", "step-start", "step-done", "done", "job:done"}
	var filtered []string
	for _, k := range got {
		if k != "progress" && k != "received" && k != "status" {
			filtered = append(filtered, k)
		}
	}
	if diff := cmp.Diff(want, filtered); diff != "" {
		t.Errorf("events (-want +got, progress, received and status left out):\n%s", diff)
	}
	dev.wantImage(t, b.image)
	if !strings.Contains(h.log.text(), fmt.Sprintf("web: upload from 127.0.0.1, %d bytes", len(b.good))) {
		t.Errorf("console does not name the upload:\n%s", h.log.text())
	}

	// A page that connects now replays the job, and gets the bytes
	// received.
	late := h.events(h.client())
	late.until(t, "the replayed job end", func(m map[string]any) bool { return m["event"] == "job" && m["state"] == stateDone })
	var received float64
	for _, m := range late.seen {
		if m["event"] == "received" {
			received = m["received"].(float64)
		}
	}
	if int(received) != len(b.good) {
		t.Errorf("replayed received = %v, want %d", received, len(b.good))
	}
}

// TestBadBundles uploads bundles the device must refuse: each is refused
// with the Device's own error text (what the console shows), nothing is
// written, and the server takes the next upload.
func TestBadBundles(t *testing.T) {
	b := newBundles(t, testImage)
	stranger := installtest.NewKey(t)
	big := installtest.Data(9, 80*cs, cs)
	const badChunk = 22
	tests := []struct {
		name   string
		bundle []byte
		want   string // in the reason
		exit   int
		wrote  bool // the chunks before a bad one are written
	}{
		{"unsigned", unsigned(t, b.good), "signature block size 0 out of range", 5, false},
		{"unknown key", imageBundle(t, stranger, b.image, "demo", "1.0", installtest.Board), "not signed by a trusted key", 3, false},
		{"other board", imageBundle(t, b.key, b.image, "demo", "1.0", "other-board"), "not for this board", 7, false},
		{"larger than the target", imageBundle(t, b.key, big, "demo", "1.0", installtest.Board), "target too small", 10, false},
		{"not a bundle", bytes.Repeat([]byte("<html>"), 1000), "not a Lifeboat bundle", 5, false},
		{"empty", nil, "truncated", 6, false},
		{"bad chunk", corruptChunk(t, b, badChunk), "chunk checksum mismatch", 5, true},
	}
	dev := newEngineDevice(t, b.key, 4<<20)
	h := newHarness(t, dev, nil)
	c := h.client()
	h.login(c)
	ev := h.events(h.client())
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, e := h.upload(c, tt.bundle)
			end := ev.jobEnd(t)
			if code != http.StatusUnprocessableEntity {
				t.Errorf("upload: %d, want %d", code, http.StatusUnprocessableEntity)
			}
			reason := dev.reason()
			if reason == "" || e.Error != reason || end["error"] != reason {
				t.Errorf("reasons: answer %q, page event %q, want the console's %q", e.Error, end["error"], reason)
			}
			if !strings.Contains(reason, tt.want) || e.ExitCode != tt.exit || e.Cut {
				t.Errorf("answer = %+v, want a reason with %q, exit %d, not cut", e, tt.want, tt.exit)
			}
			errEv := ev.seen[len(ev.seen)-2]
			if errEv["event"] != "error" || errEv["reason"] != reason {
				t.Errorf("event before the job's end = %v, want the install error event with the reason", errEv)
			}
			if tt.wrote {
				if n := checkPrefix(t, dev.rootfs(t), b.image); n > badChunk {
					t.Errorf("%d chunks written, want at most the %d before the bad one", n, badChunk)
				}
			} else {
				dev.checkUntouched(t)
			}
		})
	}
	// The next good upload goes through.
	if code, e := h.upload(c, b.good); code != http.StatusOK {
		t.Fatalf("good upload after the bad ones: %d %s", code, e.Error)
	}
	dev.wantImage(t, b.image)
}

// TestUploadCut drops the connection in the middle of a chunk: the chunks
// before it may be written (each verified), nothing after, the pages are
// told the upload was cut off, and the next upload installs.
func TestUploadCut(t *testing.T) {
	b := newBundles(t, testImage)
	dev := newEngineDevice(t, b.key, 4<<20)
	h := newHarness(t, dev, nil)
	c := h.client()
	h.login(c)
	ev := h.events(h.client())

	br, err := bundle.NewReaderAt(bytes.NewReader(b.good), int64(len(b.good)), b.key.Trust())
	if err != nil {
		t.Fatal(err)
	}
	chunks, _ := br.Chunks("rootfs")
	cutChunk := 21 // stored raw (21 % 5 == 1 is text: LZ4; any stored one will do)
	cut := int(br.PayloadStart()+chunks[cutChunk].PayloadOffset) + 100

	conn, err := net.Dial("tcp", h.hs.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	u := c.Jar.Cookies(mustURL(h.hs.URL))[0]
	fmt.Fprintf(conn, "PUT /api/bundle HTTP/1.1\r\nHost: %s\r\nCookie: %s=%s\r\nContent-Length: %d\r\n\r\n",
		h.hs.Listener.Addr(), SessionCookie, u.Value, len(b.good))
	if _, err := conn.Write(b.good[:cut]); err != nil {
		t.Fatal(err)
	}
	// The bytes written arrive before the end of the connection.
	conn.Close()

	end := ev.jobEnd(t)
	if end["state"] != stateFailed || end["cut"] != true || int(end["received"].(float64)) != cut {
		t.Errorf("job end = %v, want failed, cut, %d bytes received", end, cut)
	}
	reason := dev.reason()
	if end["error"] != reason || !strings.Contains(reason, "truncated") || !strings.Contains(reason, fmt.Sprintf("upload cut off after %d of %d bytes", cut, len(b.good))) {
		t.Errorf("job error = %q, device said %q: want the same, saying the bundle is truncated and where the upload stopped", end["error"], reason)
	}
	if n := checkPrefix(t, dev.rootfs(t), b.image); n > cutChunk {
		t.Errorf("%d chunks written, want at most the %d before the cut", n, cutChunk)
	}
	h.log.waitFor(t, "cut off after")

	if code, e := h.upload(c, b.good); code != http.StatusOK {
		t.Fatalf("upload after the cut: %d %s", code, e.Error)
	}
	dev.wantImage(t, b.image)
}

// TestUploadStalled ends an upload whose client stops sending.
func TestUploadStalled(t *testing.T) {
	b := newBundles(t, testImage)
	dev := newEngineDevice(t, b.key, 4<<20)
	h := newHarness(t, dev, func(c *Config) { c.StallTimeout = 300 * time.Millisecond })
	c := h.client()
	h.login(c)
	ev := h.events(h.client())
	pr, pw := io.Pipe()
	defer pw.Close()
	go func() {
		pw.Write(b.good[:len(b.good)/2])
		// and then nothing, with the connection open
	}()
	req, _ := http.NewRequest("PUT", h.hs.URL+"/api/bundle", pr)
	req.ContentLength = int64(len(b.good))
	go c.Do(req)
	end := ev.jobEnd(t)
	if end["cut"] != true || !strings.Contains(fmt.Sprint(end["error"]), "nothing received for 300ms") {
		t.Errorf("job end = %v, want cut: nothing received", end)
	}
	checkPrefix(t, dev.rootfs(t), b.image)
}

// TestTwoUploads: while an install runs, a second upload, a factory reset
// and a reboot are refused with 409 and a message saying why; the first
// install is not disturbed.
func TestTwoUploads(t *testing.T) {
	b := newBundles(t, testImage)
	dev := newEngineDevice(t, b.key, 4<<20)
	dev.hold = make(chan struct{})
	h := newHarness(t, dev, nil)
	c := h.client()
	h.login(c)
	ev := h.events(h.client())

	first := make(chan int, 1)
	go func() {
		req, _ := http.NewRequest("PUT", h.hs.URL+"/api/bundle", bytes.NewReader(b.good))
		resp, err := c.Do(req)
		if err != nil {
			first <- 0
			return
		}
		resp.Body.Close()
		first <- resp.StatusCode
	}()
	ev.until(t, "the first install's start", func(m map[string]any) bool { return m["event"] == "start" })

	c2 := h.client()
	h.login(c2)
	code, e := h.upload(c2, b.good)
	if want := "a bundle is being installed (from 127.0.0.1); try again when it has finished"; code != http.StatusConflict || e.Error != want {
		t.Errorf("second upload: %d %q, want %d %q", code, e.Error, http.StatusConflict, want)
	}
	if resp, e := h.post(c2, "/api/factory-reset", `{"confirm": true}`); resp.StatusCode != http.StatusConflict || !strings.Contains(e.Error, "being installed") {
		t.Errorf("factory reset during the install: %s %q, want 409", resp.Status, e.Error)
	}
	if resp, e := h.post(c2, "/api/reboot", `{}`); resp.StatusCode != http.StatusConflict || !strings.Contains(e.Error, "being installed") {
		t.Errorf("reboot during the install: %s %q, want 409", resp.Status, e.Error)
	}
	close(dev.hold)
	if code := <-first; code != http.StatusOK {
		t.Fatalf("first upload: %d", code)
	}
	if installs, resets, reboots := dev.counts(); installs != 1 || resets != 0 || reboots != 0 {
		t.Errorf("device did %d installs, %d resets, %d reboots; want 1, 0, 0", installs, resets, reboots)
	}
	dev.wantImage(t, b.image)
}

func TestSignInRequired(t *testing.T) {
	b := newBundles(t, testImage)
	dev := newEngineDevice(t, b.key, 4<<20)
	h := newHarness(t, dev, nil)
	c := h.client()
	if code, e := h.upload(c, b.good); code != http.StatusUnauthorized || e.Error != msgSignIn {
		t.Errorf("upload without signing in: %d %q", code, e.Error)
	}
	// A made-up session is no session.
	u := mustURL(h.hs.URL)
	c.Jar.SetCookies(u, []*http.Cookie{{Name: SessionCookie, Value: "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}})
	for _, path := range []string{"/api/factory-reset", "/api/reboot"} {
		if resp, _ := h.post(c, path, `{"confirm": true}`); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("POST %s without signing in: %s", path, resp.Status)
		}
	}
	if installs, resets, reboots := dev.counts(); installs+resets+reboots != 0 {
		t.Errorf("device acted without a sign-in: %d installs, %d resets, %d reboots", installs, resets, reboots)
	}
	dev.checkUntouched(t)
}

// TestCrossOrigin: another site's page in the same browser (which has a
// session cookie) cannot change anything, and a site that points its own
// name at the device cannot even read the page.
func TestCrossOrigin(t *testing.T) {
	b := newBundles(t, testImage)
	dev := newEngineDevice(t, b.key, 4<<20)
	h := newHarness(t, dev, nil)
	c := h.client()
	h.login(c)
	tests := []struct {
		name, method, path string
		body               []byte
		header             map[string]string
		want               int
	}{
		{"reset, cross-site", "POST", "/api/factory-reset", []byte(`{"confirm": true}`),
			map[string]string{"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"}, http.StatusForbidden},
		{"reset, same site, other port", "POST", "/api/factory-reset", []byte(`{"confirm": true}`),
			map[string]string{"Origin": "http://127.0.0.1:1", "Sec-Fetch-Site": "same-site"}, http.StatusForbidden},
		{"reset, old browser: Origin only", "POST", "/api/factory-reset", []byte(`{"confirm": true}`),
			map[string]string{"Origin": "http://evil.example", "Sec-Fetch-Site": ""}, http.StatusForbidden},
		{"upload, cross-site", "PUT", "/api/bundle", b.good,
			map[string]string{"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"}, http.StatusForbidden},
		{"reboot, cross-site", "POST", "/api/reboot", nil,
			map[string]string{"Origin": "null", "Sec-Fetch-Site": "cross-site"}, http.StatusForbidden},
		{"sign-in, cross-site", "POST", "/api/login", []byte(fmt.Sprintf(`{"code": %q}`, h.srv.Code())),
			map[string]string{"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"}, http.StatusForbidden},
		{"page by a foreign name (DNS rebinding)", "GET", "/api/status", nil,
			map[string]string{"Host": "evil.example"}, http.StatusMisdirectedRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, h.hs.URL+tt.path, bytes.NewReader(tt.body))
			for k, v := range tt.header {
				if k == "Host" {
					req.Host = v
				} else if v != "" {
					req.Header.Set(k, v)
				}
			}
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Errorf("%s %s: %s, want %d", tt.method, tt.path, resp.Status, tt.want)
			}
		})
	}
	if installs, resets, reboots := dev.counts(); installs+resets+reboots != 0 {
		t.Errorf("device acted on a cross-origin request: %d installs, %d resets, %d reboots", installs, resets, reboots)
	}
	dev.checkUntouched(t)
	if !strings.Contains(h.log.text(), "refused a cross-origin POST /api/factory-reset from 127.0.0.1") {
		t.Errorf("console does not report the refusal:\n%s", h.log.text())
	}
	if n := strings.Count(h.log.text(), "web: refused"); n != 1 {
		t.Errorf("%d console lines for %d refusals in a row, want 1 (the rest are counted in the next)", n, len(tests))
	}
	// The names a person opens the page by work.
	for _, host := range []string{"127.0.0.1", "[::1]:80", "localhost", "test-board-sn0042.local", "Test-Board-SN0042.local."} {
		req, _ := http.NewRequest("GET", h.hs.URL+"/api/status", nil)
		req.Host = host
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET /api/status with Host %s: %s", host, resp.Status)
		}
	}
}

func TestLogin(t *testing.T) {
	b := newBundles(t, testImage)
	h := newHarness(t, newEngineDevice(t, b.key, 4<<20), nil)
	c := h.client()
	code := h.srv.Code()
	if len(code) != CodeLength+1 || code[4] != '-' || strings.Trim(code, codeAlphabet+"-") != "" {
		t.Fatalf("code %q, want %d characters of %s in two groups", code, CodeLength, codeAlphabet)
	}
	wrong := "ZZZZ-ZZZZ"
	if code == wrong {
		wrong = "YYYY-YYYY"
	}
	// Three wrong codes are free, then each waits twice as long.
	for i, want := range []struct {
		status int
		retry  int
	}{{403, 0}, {403, 0}, {403, 1}, {429, 1}} {
		resp, e := h.post(c, "/api/login", fmt.Sprintf(`{"code": %q}`, wrong))
		if resp.StatusCode != want.status || e.RetryAfter != want.retry {
			t.Errorf("wrong code %d: %s %+v, want %d, retry after %d", i+1, resp.Status, e, want.status, want.retry)
		}
		if want.retry > 0 && resp.Header.Get("Retry-After") != fmt.Sprint(want.retry) {
			t.Errorf("wrong code %d: Retry-After %q", i+1, resp.Header.Get("Retry-After"))
		}
	}
	// The right code is refused too while the client waits.
	if resp, e := h.post(c, "/api/login", fmt.Sprintf(`{"code": %q}`, code)); resp.StatusCode != http.StatusTooManyRequests {
		t.Errorf("right code while waiting: %s %+v, want 429", resp.Status, e)
	}
	h.clock.Add(time.Second)
	if resp, e := h.post(c, "/api/login", fmt.Sprintf(`{"code": %q}`, wrong)); resp.StatusCode != http.StatusForbidden || e.RetryAfter != 2 {
		t.Errorf("fourth wrong code: %s %+v, want 403, retry after 2", resp.Status, e)
	}
	h.clock.Add(2 * time.Second)
	// Typed as people type it.
	typed := strings.ToLower(strings.ReplaceAll(code, "-", " "))
	resp, e := h.post(c, "/api/login", fmt.Sprintf(`{"code": %q}`, typed))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("right code typed as %q: %s %+v", typed, resp.Status, e)
	}
	var cookie *http.Cookie
	for _, ck := range resp.Cookies() {
		if ck.Name == SessionCookie {
			cookie = ck
		}
	}
	if cookie == nil || !cookie.HttpOnly || cookie.SameSite != http.SameSiteStrictMode || cookie.Path != "/" || len(cookie.Value) < 40 {
		t.Fatalf("session cookie %+v, want HttpOnly, SameSite=Strict, Path=/, a long token", cookie)
	}
	if !strings.Contains(h.log.text(), "web: wrong code from 127.0.0.1") || !strings.Contains(h.log.text(), "web: 127.0.0.1 signed in") {
		t.Errorf("console:\n%s", h.log.text())
	}
	// The session ends after its lifetime.
	h.clock.Add(SessionLifetime)
	if resp, _ := h.post(c, "/api/reboot", `{}`); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("reboot after the session's lifetime: %s, want 401", resp.Status)
	}
}

// TestLoginManyClients: an attacker with many addresses gets GlobalBurst
// wrong codes and then one every GlobalEvery, not one per address.
func TestLoginManyClients(t *testing.T) {
	b := newBundles(t, testImage)
	h := newHarness(t, newEngineDevice(t, b.key, 4<<20), nil)
	try := func(i int, code string) int {
		req := httptest.NewRequest("POST", "/api/login", strings.NewReader(fmt.Sprintf(`{"code": %q}`, code)))
		req.RemoteAddr = fmt.Sprintf("10.%d.%d.%d:4000", i>>16&255, i>>8&255, i&255)
		req.Host = "192.0.2.1"
		w := httptest.NewRecorder()
		h.srv.Handler().ServeHTTP(w, req)
		return w.Code
	}
	wrong := "ZZZZ-ZZZZ"
	if h.srv.Code() == wrong {
		wrong = "YYYY-YYYY"
	}
	for i := range GlobalBurst {
		if code := try(i, wrong); code != http.StatusForbidden {
			t.Fatalf("wrong code %d from a new address: %d, want 403", i+1, code)
		}
	}
	if code := try(GlobalBurst, wrong); code != http.StatusTooManyRequests {
		t.Errorf("wrong code %d from a new address: %d, want 429 (global limit)", GlobalBurst+1, code)
	}
	if code := try(GlobalBurst+1, h.srv.Code()); code != http.StatusTooManyRequests {
		t.Errorf("right code past the global limit: %d, want 429 (no guess is checked then)", code)
	}
	h.clock.Add(GlobalEvery)
	if code := try(GlobalBurst+2, wrong); code != http.StatusForbidden {
		t.Errorf("wrong code %v later: %d, want 403", GlobalEvery, code)
	}
	if code := try(GlobalBurst+3, wrong); code != http.StatusTooManyRequests {
		t.Errorf("the next at once: %d, want 429", code)
	}
	h.clock.Add(GlobalEvery)
	if code := try(GlobalBurst+4, h.srv.Code()); code != http.StatusOK {
		t.Errorf("right code %v later: %d, want 200", GlobalEvery, code)
	}
}

func TestPassword(t *testing.T) {
	b := newBundles(t, testImage)
	hash := testPasswordHash(t, "lifeboat rescue 7")
	h := newHarness(t, newEngineDevice(t, b.key, 4<<20), func(c *Config) { c.Password = hash })
	if h.srv.Code() != "" {
		t.Errorf("Code() = %q with a password, want none", h.srv.Code())
	}
	c := h.client()
	if resp, e := h.post(c, "/api/login", `{"code": "lifeboat rescue 8"}`); resp.StatusCode != http.StatusForbidden || e.Error != "wrong password" {
		t.Errorf("wrong password: %s %q", resp.Status, e.Error)
	}
	if resp, e := h.post(c, "/api/login", `{"code": "lifeboat rescue 7"}`); resp.StatusCode != http.StatusOK {
		t.Errorf("right password: %s %q", resp.Status, e.Error)
	}
	h.srv.Announce(nil, "")
	if !strings.Contains(h.log.text(), "the board's password opens the page") {
		t.Errorf("console:\n%s", h.log.text())
	}
}

// TestCodeNotOnPage: the one-time code appears on the console only.
func TestCodeNotOnPage(t *testing.T) {
	b := newBundles(t, testImage)
	h := newHarness(t, newEngineDevice(t, b.key, 4<<20), nil)
	c := h.client()
	h.login(c)
	code := h.srv.Code()
	for _, path := range []string{"/", "/page.js", "/page.css", "/api/status"} {
		resp, body := h.request(c, "GET", path, nil, nil)
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %s", path, resp.Status)
		}
		if bytes.Contains(body, []byte(code)) || bytes.Contains(body, []byte(normalizeCode(code))) {
			t.Errorf("GET %s shows the code", path)
		}
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || resp.Header.Get("X-Frame-Options") != "DENY" {
			t.Errorf("GET %s: CSP %q, X-Frame-Options %q", path, csp, resp.Header.Get("X-Frame-Options"))
		}
	}
	ev := h.events(c)
	hello := ev.until(t, "hello", func(m map[string]any) bool { return m["event"] == "hello" })
	if strings.Contains(fmt.Sprint(hello), code) {
		t.Error("the event stream shows the code")
	}
	h.srv.Announce(nil, "")
	if !strings.Contains(h.log.text(), "web: access code "+code) {
		t.Errorf("console does not show the code:\n%s", h.log.text())
	}
}

func TestFactoryResetAndReboot(t *testing.T) {
	b := newBundles(t, testImage)
	dev := newEngineDevice(t, b.key, 4<<20)
	h := newHarness(t, dev, nil)
	c := h.client()
	h.login(c)
	ev := h.events(c)
	if resp, e := h.post(c, "/api/factory-reset", `{}`); resp.StatusCode != http.StatusBadRequest || !strings.Contains(e.Error, "not confirmed") {
		t.Errorf("reset without confirmation: %s %q", resp.Status, e.Error)
	}
	if _, resets, _ := dev.counts(); resets != 0 {
		t.Fatal("reset without confirmation wiped")
	}
	if resp, e := h.post(c, "/api/factory-reset", `{"confirm": true}`); resp.StatusCode != http.StatusOK {
		t.Fatalf("reset: %s %q", resp.Status, e.Error)
	}
	end := ev.jobEnd(t)
	if end["kind"] != jobReset || end["state"] != stateDone {
		t.Errorf("job end %v", end)
	}
	st, err := os.ReadFile(dev.state)
	if err != nil {
		t.Fatal(err)
	}
	if i := firstDiff(st[:1<<20], 0); i >= 0 {
		t.Errorf("state partition byte %d not wiped", i)
	}

	if resp, e := h.post(c, "/api/reboot", `{}`); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("reboot: %s %q", resp.Status, e.Error)
	}
	ev.until(t, "reboot job", func(m map[string]any) bool {
		return m["event"] == "job" && m["kind"] == jobReboot && m["state"] == stateDone
	})
	if _, _, reboots := dev.counts(); reboots != 1 {
		t.Errorf("%d reboots, want 1", reboots)
	}
	// Nothing more once the board is going down.
	if code, e := h.upload(c, b.good); code != http.StatusConflict || !strings.Contains(e.Error, "rebooting") {
		t.Errorf("upload while rebooting: %d %q", code, e.Error)
	}
}

// TestObserve: an install the rescue runs from a source of its own shows
// on the page.
func TestObserve(t *testing.T) {
	b := newBundles(t, testImage)
	dev := newEngineDevice(t, b.key, 4<<20)
	h := newHarness(t, dev, nil)
	ev := h.events(h.client())
	br, err := bundle.NewReader(bytes.NewReader(b.good), b.key.Trust())
	if err != nil {
		t.Fatal(err)
	}
	h.srv.Observe(install.StartEvent(br, "http://10.0.2.2/demo.lfb"))
	dev.mu.Lock()
	dev.status.Activity = "installing from http://10.0.2.2/demo.lfb"
	dev.mu.Unlock()
	h.srv.StatusChanged()
	ev.until(t, "start", func(m map[string]any) bool { return m["event"] == "start" && m["bundle"] == "http://10.0.2.2/demo.lfb" })
	st := ev.until(t, "status", func(m map[string]any) bool { return m["event"] == "status" })
	if got := st["status"].(map[string]any)["activity"]; got != "installing from http://10.0.2.2/demo.lfb" {
		t.Errorf("activity %v", got)
	}
}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}

// corruptChunk returns the good bundle with one stored byte of chunk n
// changed.
func corruptChunk(t testing.TB, b *testBundles, n int) []byte {
	t.Helper()
	br, err := bundle.NewReaderAt(bytes.NewReader(b.good), int64(len(b.good)), b.key.Trust())
	if err != nil {
		t.Fatal(err)
	}
	chunks, _ := br.Chunks("rootfs")
	c := chunks[n]
	if c.StoredSize == 0 {
		t.Fatalf("chunk %d is not stored", n)
	}
	out := bytes.Clone(b.good)
	out[br.PayloadStart()+c.PayloadOffset+uint64(c.StoredSize)/2] ^= 0x55
	return out
}

func testPasswordHash(t testing.TB, password string) *boards.PasswordHash {
	h, err := boards.NewPasswordHash(password, boards.MinPasswordIterations)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestRoutes(t *testing.T) {
	b := newBundles(t, cs)
	h := newHarness(t, newEngineDevice(t, b.key, 1<<20), nil)
	c := h.client()
	for _, tt := range []struct {
		method, path string
		want         int
		ctype        string
	}{
		{"GET", "/", 200, "text/html; charset=utf-8"},
		{"GET", "/page.js", 200, "text/javascript; charset=utf-8"},
		{"GET", "/page.css", 200, "text/css; charset=utf-8"},
		{"GET", "/api/status", 200, "application/json"},
		{"GET", "/index.html", 404, "application/json"},
		{"GET", "/api/bundle", 405, "application/json"},
		{"POST", "/", 405, "application/json"},
		{"DELETE", "/api/bundle", 405, "application/json"},
	} {
		resp, _ := h.request(c, tt.method, tt.path, nil, nil)
		if resp.StatusCode != tt.want || resp.Header.Get("Content-Type") != tt.ctype {
			t.Errorf("%s %s: %s %q, want %d %q", tt.method, tt.path, resp.Status, resp.Header.Get("Content-Type"), tt.want, tt.ctype)
		}
	}
}

// TestCurl drives the API as docs/web.md shows it, with curl: sign in,
// upload with -T (a PUT streamed from the file), read the status.
func TestCurl(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Fatalf("curl: %v (Debian package curl; scripts/install-deps.sh installs it)", err)
	}
	b := newBundles(t, testImage)
	dev := newEngineDevice(t, b.key, 4<<20)
	h := newHarness(t, dev, nil)
	dir := t.TempDir()
	jar, file := filepath.Join(dir, "jar"), writeFile(t, "demo.lfb", b.good)
	curl := func(args ...string) string {
		t.Helper()
		out, err := exec.Command("curl", append([]string{"-sS", "--fail-with-body"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("curl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	curl("-c", jar, "-d", fmt.Sprintf(`{"code": %q}`, h.srv.Code()), h.hs.URL+"/api/login")
	if out := curl("-b", jar, "-T", file, h.hs.URL+"/api/bundle"); !strings.Contains(out, `"product":"demo"`) {
		t.Errorf("upload answered %s", out)
	}
	dev.wantImage(t, b.image)
	if out := curl(h.hs.URL + "/api/status"); !strings.Contains(out, `"state":"done"`) {
		t.Errorf("status %s", out)
	}
}

func TestAnnounce(t *testing.T) {
	b := newBundles(t, cs)
	log := &console{}
	srv, err := New(Config{Device: newEngineDevice(t, b.key, 1<<20), Logf: log.printf})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(t.Context(), "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	port := srv.Addr().(*net.TCPAddr).Port
	srv.Announce([]netip.Addr{netip.MustParseAddr("10.0.2.15"), netip.MustParseAddr("fe80::5054:ff:fe12:3456%eth0")}, "qemu-x86-64-525400123456.local")
	want := fmt.Sprintf("web: recovery page at http://10.0.2.15:%d/ or http://[fe80::5054:ff:fe12:3456]:%d/ or http://qemu-x86-64-525400123456.local:%d/\n"+
		"web: access code %s (type it on the page; a new one at every boot)", port, port, port, srv.Code())
	if got := log.text(); got != want {
		t.Errorf("console:\n%s\nwant:\n%s", got, want)
	}
	// The server answers on its port.
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/api/status", port))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET /api/status: %s", resp.Status)
	}
}
