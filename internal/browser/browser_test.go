package browser

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestClick loads a page from a real HTTP server, clicks its button and
// reads what the page's script wrote: the browser runs JavaScript and
// talks to servers on loopback.
func TestClick(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a browser; skipped with -short")
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/n" {
			fmt.Fprint(w, "42")
			return
		}
		fmt.Fprint(w, `<!doctype html><button id=b onclick="fetch('/n').then(r=>r.text()).then(t=>{document.getElementById('out').textContent='got '+t})">go</button><p id=out></p>`)
	}))
	defer srv.Close()
	ctx := New(t)
	Do(t, ctx, "click", time.Minute,
		chromedp.Navigate(srv.URL),
		chromedp.Click("#b"),
		chromedp.WaitVisible(`//p[@id="out" and text()="got 42"]`),
	)
	got := Get(t, ctx, "read", time.Minute, chromedp.Text("#out"))
	if got != "got 42" {
		t.Errorf("page text = %q, want %q", got, "got 42")
	}
	t.Setenv("LIFEBOAT_ARTIFACTS", t.TempDir())
	p := Screenshot(t, ctx, "click")
	if b, err := os.ReadFile(p); err != nil || len(b) < 8 || string(b[1:4]) != "PNG" {
		t.Errorf("screenshot %s is not a PNG (%d bytes, %v)", p, len(b), err)
	}
}
