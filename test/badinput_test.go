package test

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lifeboat-updater/lifeboat/bundle"
	"github.com/lifeboat-updater/lifeboat/demo"
	"github.com/lifeboat-updater/lifeboat/internal/vm"
)

// smallSpec is the demo bundle's spec cut down to its partition step and
// one small image, for boards: the bundles a test refuses need not be
// big.
func smallSpec(t *testing.T, p *demo.Prepared, boards string) string {
	t.Helper()
	b, err := os.ReadFile(p.Artifacts.Spec)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, "type: image") {
			break
		}
		if strings.HasPrefix(l, "compatible:") {
			l = "compatible: [" + boards + "]"
		}
		out = append(out, l)
	}
	out = append(out, fmt.Sprintf("  - {type: image, target: grubenv, file: %s, verify: true}", p.Artifacts.GRUBEnv))
	return strings.Join(out, "\n") + "\n"
}

// TestBadBundles boots the rescue once, on a disk too small for the demo
// layout, and serves it one bad answer after another at the same address:
// 404, a bundle for another board, a bundle signed by an unknown key, and
// the right bundle (which does not fit). Each is refused with a clear
// line, before anything is written: the disk stays all zero, and the
// rescue stays up and keeps trying.
func TestBadBundles(t *testing.T) {
	t.Parallel()
	p := prepared(t)
	other := writeBundle(t, smallSpec(t, p, "other-board"), p.Key.Signer())
	_, priv, err := bundle.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	unknown := writeBundle(t, smallSpec(t, p, demo.Board), bundle.Ed25519Signer{Key: priv})

	// 256 MiB: the demo layout's last partition starts at 259 MiB.
	disk := filepath.Join(t.TempDir(), "small.img")
	if err := demo.BlankDisk(disk, 256<<20); err != nil {
		t.Fatal(err)
	}
	srv := newSwitchServer(t)
	srv.serveStatus(http.StatusNotFound)
	srv.up()
	v, tl := bootRescue(t, p, rescueBoot{Disk: disk, Params: []string{"lifeboat.url=" + srv.GuestURL()}})
	expect(t, v, demo.MarkBlank, 90*time.Second)

	untouched := func(t *testing.T) {
		t.Helper()
		if zero, at := allZero(t, disk); !zero {
			t.Fatalf("the disk was written: first non-zero byte at %d", at)
		}
	}
	line := func(s string) string {
		for _, l := range tl.Lines() {
			if strings.Contains(l.Text, s) {
				return strings.TrimSpace(l.Text)
			}
		}
		return ""
	}
	failed := func() int { return countLines(tl, "failed: ") }

	t.Run("404", func(t *testing.T) {
		// Within an attempt the source is tried again, further apart
		// each round; then the attempt fails and the rescue tries again
		// after its own backoff.
		expectCount(t, v, tl, "404 Not Found", 2, time.Minute)
		expectCount(t, v, tl, "failed: source failed", 1, time.Minute)
		for _, s := range []string{"404 Not Found", "no source worked; trying again in", "failed: source failed"} {
			t.Logf("MEASURE 404: %q", line(s))
		}
		t.Logf("MEASURE 404: %d requests answered 404 in the first attempt", countLines(tl, "404 Not Found"))
		untouched(t)
	})
	// Each case is switched in while the rescue waits between attempts.
	for _, c := range []struct {
		name, file, want string
	}{
		{"other board", other, "exit 7 (incompatible)"},
		{"unknown key", unknown, "exit 3 (untrusted)"},
		{"disk too small", p.Bundle, "exit 10 (target too small)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			n := failed()
			inner := serve(t, filepath.Dir(c.file))
			srv.serveFile(c.file, inner)
			expect(t, v, c.want, 2*time.Minute)
			expectCount(t, v, tl, "failed: ", n+1, 30*time.Second)
			t.Logf("MEASURE %s: %q", c.name, line(c.want))
			untouched(t)
		})
	}
	t.Run("stays up", func(t *testing.T) {
		n := countLines(tl, "trying again in")
		expectCount(t, v, tl, "trying again in", n+1, 2*time.Minute)
		select {
		case <-v.Done():
			t.Fatal("the rescue VM ended")
		default:
		}
		untouched(t)
	})
}

// TestServerFaults: the server is not there when the rescue boots
// (connection refused), comes up later, and then drops the connection in
// the middle of the download. The rescue retries, the HTTP source resumes
// where it was cut (a Range request), and the install completes.
func TestServerFaults(t *testing.T) {
	t.Parallel()
	p := prepared(t)
	disk := blankDisk(t)
	srv := newSwitchServer(t) // the port is closed
	v, tl := bootRescue(t, p, rescueBoot{Disk: disk, Params: []string{"lifeboat.url=" + srv.GuestURL()}})
	expect(t, v, demo.MarkBlank, 90*time.Second)

	t.Run("unreachable", func(t *testing.T) {
		// Some retries go by before the server comes up.
		expectCount(t, v, tl, "connection refused", 3, time.Minute)
		refused, _ := tl.First("connection refused")
		for _, l := range tl.Lines() {
			if strings.Contains(l.Text, "connection refused") {
				t.Logf("MEASURE unreachable: %q", strings.TrimSpace(l.Text))
				break
			}
		}
		if zero, at := allZero(t, disk); !zero {
			t.Fatalf("the disk was written with no bundle: first non-zero byte at %d", at)
		}
		t.Logf("MEASURE unreachable: first refusal %v after boot", refused.Round(10*time.Millisecond))
	})

	inner := serve(t, filepath.Dir(p.Bundle))
	var requests atomic.Int32
	const cutAt = 20 << 20 // inside the rootfs image
	inner.CutAfter = func(*http.Request) int64 {
		if requests.Add(1) == 1 {
			return cutAt
		}
		return 0
	}
	srv.serveFile(p.Bundle, inner)
	srv.up()

	t.Run("cut mid-download", func(t *testing.T) {
		summary := waitInstalled(t, v, tl, 3*time.Minute)
		t.Logf("MEASURE server faults: %s", summary)
		var ranged bool
		for _, r := range inner.Requests() {
			if r.Range != "" && r.Status == http.StatusPartialContent {
				ranged = true
			}
		}
		for _, l := range tl.Lines() {
			if strings.Contains(l.Text, "dropped at byte") || strings.Contains(l.Text, "resum") {
				t.Logf("MEASURE cut: %q", strings.TrimSpace(l.Text))
			}
		}
		if !ranged {
			t.Errorf("no Range request after the cut: the download started over")
		}
		verifyDisk(t, p, disk)
	})
}

// TestNoDisk boots the rescue on a board whose disk is missing (or dead):
// it says so on the console and keeps trying, and never reboots.
func TestNoDisk(t *testing.T) {
	t.Parallel()
	p := prepared(t)
	srv := serve(t, filepath.Dir(p.Bundle))
	o := p.RescueVM("", "lifeboat.events=console", "lifeboat.url="+srv.GuestURL(demo.BundleName))
	o.Drives = nil
	tl := demo.NewTimeline(nil)
	o.Console = tl
	v := vm.StartT(t, o)
	tl.Restart()
	expect(t, v, demo.MarkReason, 90*time.Second)
	expect(t, v, "exit 9 (target missing)", 2*time.Minute)
	expectCount(t, v, tl, "exit 9 (target missing)", 2, 2*time.Minute)
	for _, l := range tl.Lines() {
		if strings.Contains(l.Text, "storage disk") || strings.Contains(l.Text, "exit 9") {
			t.Logf("MEASURE no disk: %q", strings.TrimSpace(l.Text))
		}
	}
	if _, ok := tl.First(demo.MarkRebooting); ok {
		t.Errorf("the rescue rebooted without a disk")
	}
}
