package webui

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/lifeboat-updater/lifeboat/internal/browser"
)

// The page in a real browser (Debian's chromium, headless): a person's
// whole visit, and each kind of bad input.

// page is a browser showing the recovery page of a harness.
type page struct {
	t   *testing.T
	ctx context.Context
	h   *harness
}

// browserTest skips t with -short: it starts a browser.
func browserTest(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a browser; skipped with -short")
	}
}

func openPage(t *testing.T, h *harness, url string) *page {
	t.Helper()
	p := &page{t: t, ctx: browser.New(t), h: h}
	if url == "" {
		url = h.hs.URL
	}
	p.do("open the page", chromedp.Navigate(url), chromedp.WaitVisible("#conn.live"))
	return p
}

func (p *page) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	browser.Do(p.t, p.ctx, what, 2*time.Minute, actions...)
}

func (p *page) text(sel string) string {
	p.t.Helper()
	return browser.Get(p.t, p.ctx, "read "+sel, time.Minute, chromedp.TextContent(sel))
}

// waitText waits until the element's text contains s.
func (p *page) waitText(sel, s string) {
	p.t.Helper()
	js := fmt.Sprintf(`document.querySelector(%q).textContent.includes(%q)`, sel, s)
	c, cancel := context.WithTimeout(p.ctx, 2*time.Minute)
	defer cancel()
	if _, err := chromedp.Run(c, chromedp.Poll[bool](js, chromedp.WithPollingTimeout(2*time.Minute))); err != nil {
		p.t.Fatalf("browser: %s never said %q; it says %q (%v)", sel, s, p.text(sel), err)
	}
}

func (p *page) signIn(code string) {
	p.t.Helper()
	p.do("sign in",
		chromedp.WaitEnabled("#login"),
		clearCode,
		chromedp.SendKeys("#code", code),
		chromedp.Click("#login"),
		chromedp.WaitVisible("#install-box"))
}

func (p *page) upload(file string) {
	p.t.Helper()
	p.do("choose "+filepath.Base(file)+" and install",
		chromedp.WaitEnabled("#install"),
		chromedp.SetUploadFiles("#file", []string{file}),
		chromedp.Click("#install"))
}

func writeFile(t testing.TB, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestPageInstall is a person's visit: the page says what the device is
// and why the rescue runs, the code from the console signs in, a real
// bundle chosen in the file input streams into the real install engine,
// the progress bar reaches 100%, and the reboot button boots the board.
func TestPageInstall(t *testing.T) {
	browserTest(t)
	b := newBundles(t, 256*cs+77)
	dev := newEngineDevice(t, b.key, 24<<20)
	h := newHarness(t, dev, nil)
	file := writeFile(t, "demo-1.0.lfb", b.good)
	// Through a link of 4 MB/s the upload takes a few seconds: long
	// enough for the engine's progress events (4 a second) to show.
	link := newProxy(t, h.hs.Listener.Addr().String(), 4e6)
	p := openPage(t, h, link.url())

	for sel, want := range map[string]string{
		"#board": "test-board:2", "#serial": "SN0042", "#reason": "button held at power-on; action: reinstall",
		"#installed": "demo 0.9", "#now": "waiting for a bundle",
	} {
		if got := p.text(sel); got != want {
			t.Errorf("page %s = %q, want %q", sel, got, want)
		}
	}
	p.do("see the sign-in, not the actions", chromedp.WaitVisible("#signin"), chromedp.WaitNotVisible("#install-box"))
	if body := p.text("body"); strings.Contains(body, h.srv.Code()) {
		t.Error("the page shows the code")
	}

	p.signIn(h.srv.Code())
	// Record every value the bars take.
	p.do("watch the bars", chromedp.Evaluate[chromedp.Void](`window.bars = {};
		for (const id of ['upload-bar', 'install-bar']) {
			const seen = window.bars[id] = [];
			setInterval(() => { const v = document.getElementById(id).value; if (seen[seen.length - 1] !== v) seen.push(v); }, 10);
		}`))
	p.upload(file)
	p.waitText("#result", "Installed demo 1.0")
	p.do("see the reboot button", chromedp.WaitVisible("#reboot"))
	if got := p.text("#install-text"); !strings.HasPrefix(got, "100%") {
		t.Errorf("install progress says %q, want 100%%", got)
	}
	if got := browser.Get(t, p.ctx, "install bar", time.Minute, chromedp.Evaluate[float64](`document.getElementById('install-bar').value`)); got != 100 {
		t.Errorf("install bar at %v, want 100", got)
	}
	if got := p.text("#upload-text"); got != fmt.Sprintf("%.1f MB of %.1f MB", float64(len(b.good))/1e6, float64(len(b.good))/1e6) {
		t.Errorf("upload progress says %q", got)
	}
	bars := browser.Get(t, p.ctx, "bar values", time.Minute, chromedp.Evaluate[map[string][]float64](`window.bars`))
	for id, seen := range bars {
		t.Logf("%s values seen: %.1f", id, seen)
		between := false
		for i, v := range seen {
			between = between || (v > 0 && v < 100)
			if i > 0 && v < seen[i-1] && v != 0 {
				t.Errorf("%s went back: %v", id, seen)
			}
		}
		if !between || seen[len(seen)-1] != 100 {
			t.Errorf("%s values %v: want some between 0 and 100, and 100 at the end", id, seen)
		}
	}
	dev.wantImage(t, b.image)
	if got := p.text("#installed"); got != "demo 1.0" {
		t.Errorf("page says installed %q, want demo 1.0", got)
	}
	browser.Screenshot(t, p.ctx, "webui-installed")
	p.do("phone screen", chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2), chromedp.EmulateMobile))
	if w := browser.Get(t, p.ctx, "page width", time.Minute, chromedp.Evaluate[float64](`document.documentElement.scrollWidth`)); w > 390 {
		t.Errorf("on a phone the page is %v px wide, want no more than the screen's 390", w)
	}
	browser.Screenshot(t, p.ctx, "webui-installed-phone")

	p.do("reboot", chromedp.Click("#reboot"))
	p.waitText("#result", "Rebooting")
	h.log.waitFor(t, "web: reboot asked from 127.0.0.1")
	if _, _, reboots := dev.counts(); reboots != 1 {
		t.Errorf("%d reboots, want 1", reboots)
	}
}

// TestPageBadBundles: each bad bundle chosen in the page is refused with
// the console's reason on the page, and nothing is written.
func TestPageBadBundles(t *testing.T) {
	browserTest(t)
	b := newBundles(t, 24*cs)
	other := imageBundle(t, b.key, b.image, "demo", "1.0", "other-board")
	big := imageBundle(t, b.key, make([]byte, 80*cs), "demo", "1.0", "test-board")
	dev := newEngineDevice(t, b.key, 2<<20)
	h := newHarness(t, dev, nil)
	p := openPage(t, h, "")
	p.signIn(h.srv.Code())
	for _, tt := range []struct {
		name   string
		bundle []byte
		want   string
	}{
		{"unsigned.lfb", unsigned(t, b.good), "signature block size 0"},
		{"unknown-key.lfb", imageBundle(t, newBundles(t, cs).key, b.image, "demo", "1.0", "test-board"), "not signed by a trusted key"},
		{"other-board.lfb", other, "not for this board"},
		{"too-big.lfb", big, "target too small"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p.t = t
			p.upload(writeFile(t, tt.name, tt.bundle))
			h.log.waitFor(t, "upload from")
			p.waitText("#result", tt.want)
			if got, want := p.text("#result"), dev.reason(); got != want {
				t.Errorf("page says %q, the console %q", got, want)
			}
			dev.checkUntouched(t)
		})
	}
}

// proxy forwards TCP connections to the server. While armed it cuts every
// connection whose client has sent more than cutAfter bytes: the network
// dropping in the middle of an upload. With a rate, it passes what
// clients send at that many bytes a second at most: a slow link.
type proxy struct {
	ln       net.Listener
	target   string
	rate     int64
	mu       sync.Mutex
	cutAfter int64
	cuts     int
}

func newProxy(t *testing.T, target string, rate int64) *proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target, rate: rate}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.forward(c)
		}
	}()
	return p
}

func (p *proxy) url() string { return "http://" + p.ln.Addr().String() + "/" }

func (p *proxy) arm(n int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cutAfter = n
}

func (p *proxy) forward(c net.Conn) {
	defer c.Close()
	s, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	defer s.Close()
	go func() {
		io.Copy(c, s)
		c.Close()
	}()
	buf := make([]byte, 16<<10)
	var sent int64
	var next time.Time // when the link is free again
	for {
		n, err := c.Read(buf)
		if n > 0 && p.rate > 0 {
			next = later(next, time.Now()).Add(time.Duration(int64(n) * int64(time.Second) / p.rate))
			time.Sleep(time.Until(next))
		}
		if n > 0 {
			p.mu.Lock()
			limit := p.cutAfter
			if limit > 0 && sent+int64(n) > limit {
				p.cuts++
				p.mu.Unlock()
				s.Write(buf[:limit-sent])
				return // both ends closed: the connection is gone
			}
			p.mu.Unlock()
			if _, err := s.Write(buf[:n]); err != nil {
				return
			}
			sent += int64(n)
		}
		if err != nil {
			return
		}
	}
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// TestPageCutUpload drops the connection in the middle of an upload: the
// page says the upload was cut off and that nothing unverified was
// written, the target holds only whole verified chunks, and the next
// upload from the same page installs.
func TestPageCutUpload(t *testing.T) {
	browserTest(t)
	b := newBundles(t, 64*cs)
	dev := newEngineDevice(t, b.key, 8<<20)
	h := newHarness(t, dev, nil)
	proxy := newProxy(t, h.hs.Listener.Addr().String(), 0)
	p := openPage(t, h, proxy.url())
	p.signIn(h.srv.Code())
	file := writeFile(t, "demo.lfb", b.good)

	proxy.arm(int64(len(b.good)) / 2)
	p.upload(file)
	// The job's end says it (the browser's own error may say it first).
	p.waitText("#result", "The connection dropped after")
	res := p.text("#result")
	if !strings.Contains(res, "The connection dropped after") || !strings.Contains(res, "truncated") {
		t.Errorf("page says %q, want the truncated bundle's reason and where the upload was cut off", res)
	}
	n := checkPrefix(t, dev.rootfs(t), b.image)
	t.Logf("page: %s; %d whole chunks written before the cut", res, n)
	if n == 64 {
		t.Error("the whole image was written through a cut connection")
	}

	proxy.arm(0)
	p.upload(file)
	p.waitText("#result", "Installed demo 1.0")
	dev.wantImage(t, b.image)
}

// TestPageWrongCode: wrong codes are refused, and after FreeTries the page
// must wait before the next one.
func TestPageWrongCode(t *testing.T) {
	browserTest(t)
	b := newBundles(t, cs)
	h := newHarness(t, newEngineDevice(t, b.key, 1<<20), nil)
	p := openPage(t, h, "")
	wrong := "ZZZZ-ZZZZ"
	if h.srv.Code() == wrong {
		wrong = "YYYY-YYYY"
	}
	for i := 1; i <= FreeTries; i++ {
		p.do("type a wrong code", chromedp.WaitEnabled("#login"), clearCode, chromedp.SendKeys("#code", wrong), chromedp.Click("#login"))
		h.log.waitCount(t, "web: wrong code from 127.0.0.1", i)
	}
	p.waitText("#login-msg", "wrong code: type the code shown on the device's console (next try in 1 s)")
	// The device's clock stands still: the next try, even with the
	// right code, is too early.
	p.do("try again at once", chromedp.WaitEnabled("#login"), clearCode, chromedp.SendKeys("#code", h.srv.Code()), chromedp.Click("#login"))
	p.waitText("#login-msg", "too many wrong codes: try again in 1 s")
	p.do("still not signed in", chromedp.WaitNotVisible("#install-box"))
	h.clock.Add(time.Second)
	p.signIn(strings.ToLower(h.srv.Code()))
}

// TestPageSecondUpload: while another client's upload is installing, the
// page shows that, and its own upload is refused with the reason.
func TestPageSecondUpload(t *testing.T) {
	browserTest(t)
	b := newBundles(t, 16*cs)
	dev := newEngineDevice(t, b.key, 2<<20)
	dev.hold = make(chan struct{})
	h := newHarness(t, dev, nil)
	p := openPage(t, h, "")
	p.signIn(h.srv.Code())

	other := h.client()
	h.login(other)
	done := make(chan int, 1)
	go func() {
		code, _ := h.upload(other, b.good)
		done <- code
	}()
	p.waitText("#now", "installing the bundle uploaded from 127.0.0.1")
	p.upload(writeFile(t, "demo.lfb", b.good))
	p.waitText("#result", "a bundle is being installed (from 127.0.0.1); try again when it has finished")
	close(dev.hold)
	if code := <-done; code != http.StatusOK {
		t.Fatalf("the other upload: %d", code)
	}
	p.waitText("#result", "Installed demo 1.0")
	if installs, _, _ := dev.counts(); installs != 1 {
		t.Errorf("%d installs, want 1", installs)
	}
}

// TestPageCrossOrigin: a page of another origin, open in the same browser
// after the device's page signed in, posts a factory reset to the device.
// The browser sends it, with the session cookie (the same site: only the
// port differs); the server refuses it.
func TestPageCrossOrigin(t *testing.T) {
	browserTest(t)
	b := newBundles(t, cs)
	dev := newEngineDevice(t, b.key, 1<<20)
	h := newHarness(t, dev, nil)
	p := openPage(t, h, "")
	p.signIn(h.srv.Code())
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `<!doctype html><title>evil</title><script>
fetch(%q, {method: 'POST', mode: 'no-cors', credentials: 'include', headers: {'Content-Type': 'text/plain'}, body: '{"confirm": true}'})
  .finally(() => { document.title = 'sent'; });
</script>`, h.hs.URL+"/api/factory-reset")
	}))
	defer evil.Close()
	p.do("visit the other site", chromedp.Navigate(evil.URL))
	browser.Get(t, p.ctx, "the other site's request", 2*time.Minute, chromedp.Poll[bool](`document.title === 'sent'`))
	h.log.waitFor(t, "web: refused a cross-origin POST /api/factory-reset from 127.0.0.1")
	if _, resets, _ := dev.counts(); resets != 0 {
		t.Errorf("the other site's request reset the device %d times", resets)
	}
}

// TestPageFactoryReset: the reset asks for a confirmation, then wipes.
func TestPageFactoryReset(t *testing.T) {
	browserTest(t)
	b := newBundles(t, cs)
	dev := newEngineDevice(t, b.key, 1<<20)
	h := newHarness(t, dev, nil)
	p := openPage(t, h, "")
	p.signIn(h.srv.Code())
	p.do("ask for a reset, cancel", chromedp.Click("#reset"), chromedp.WaitVisible("#reset-confirm"), chromedp.Click("#reset-no"), chromedp.WaitNotVisible("#reset-confirm"))
	if _, resets, _ := dev.counts(); resets != 0 {
		t.Fatal("reset without confirmation")
	}
	p.do("reset", chromedp.Click("#reset"), chromedp.WaitVisible("#reset-confirm"), chromedp.Click("#reset-yes"))
	p.waitText("#reset-msg", "Factory reset done")
	p.do("see the reboot button", chromedp.WaitVisible("#reboot"))
	if _, resets, _ := dev.counts(); resets != 1 {
		t.Errorf("%d resets, want 1", resets)
	}
}

// clearCode empties the code field.
var clearCode = chromedp.Evaluate[chromedp.Void](`document.getElementById('code').value = ''`)
