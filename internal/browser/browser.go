// Package browser drives a real browser for the tests of Lifeboat's web
// pages: Debian's chromium, headless, through the DevTools protocol
// (chromedp). Every page Lifeboat serves (the rescue's recovery page, the
// factory station's line view) is tested in it, not against a mock.
package browser

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// Candidates are the names chromium goes by; Debian's package is chromium.
var Candidates = []string{"chromium", "chromium-browser", "google-chrome"}

// Path returns the browser to run: $LIFEBOAT_BROWSER, else the first of
// Candidates on $PATH.
func Path() (string, error) {
	if p := os.Getenv("LIFEBOAT_BROWSER"); p != "" {
		return p, nil
	}
	for _, c := range Candidates {
		if p, err := exec.LookPath(c); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("browser: none of %s on $PATH (Debian package chromium; scripts/install-deps.sh installs it)", strings.Join(Candidates, ", "))
}

// Flags are the options chromium runs with: headless, as root without a
// sandbox, and none of its own network traffic (updates, sync, field
// trials), which a closed test network refuses and which would slow every
// start.
func Flags(userDataDir string) []chromedp.ExecAllocatorOption {
	return []chromedp.ExecAllocatorOption{
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.UserDataDir(userDataDir),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("metrics-recording-only", true),
		chromedp.Flag("no-pings", true),
		chromedp.WindowSize(1280, 900),
	}
}

// New starts a headless browser for t and returns a context that chromedp
// actions run in; the browser stops when t ends. The test fails (it is
// not skipped) when no browser is installed: CI installs one, and a page
// test that silently did not run would pass for nothing.
func New(t testing.TB) context.Context {
	t.Helper()
	path, err := Path()
	if err != nil {
		t.Fatal(err)
	}
	opts := append(Flags(t.TempDir()), chromedp.ExecPath(path))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithErrorf(t.Logf))
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	// Start the browser now, so a broken install fails here and not in
	// the first action of the test.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("browser: starting %s: %v", path, err)
	}
	return ctx
}

// Do runs actions with a time limit, failing the test with what was
// being done.
func Do(t testing.TB, ctx context.Context, what string, timeout time.Duration, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := chromedp.Do(c, actions...); err != nil {
		t.Fatalf("browser: %s: %v", what, err)
	}
}

// Get runs one action that returns a value, with a time limit, failing
// the test with what was being done.
func Get[T any](t testing.TB, ctx context.Context, what string, timeout time.Duration, action chromedp.Action[T]) T {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	v, err := chromedp.Run(c, action)
	if err != nil {
		t.Fatalf("browser: %s: %v", what, err)
	}
	return v
}

// ArtifactDir is where tests keep what a person looks at after a run
// (screenshots): $LIFEBOAT_ARTIFACTS, else out/test-artifacts in the
// module root found from the working directory, else the test's
// temporary directory.
func ArtifactDir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("LIFEBOAT_ARTIFACTS")
	if dir == "" {
		if root, err := moduleRoot(); err == nil {
			dir = filepath.Join(root, "out", "test-artifacts")
		} else {
			return t.TempDir()
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// Screenshot saves the whole page as name.png in ArtifactDir and returns
// its path.
func Screenshot(t testing.TB, ctx context.Context, name string) string {
	t.Helper()
	png := Get(t, ctx, "screenshot", 30*time.Second, chromedp.FullScreenshot(100))
	path := filepath.Join(ArtifactDir(t), name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s (%d bytes)", path, len(png))
	return path
}

func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", os.ErrNotExist
		}
		dir = parent
	}
}
