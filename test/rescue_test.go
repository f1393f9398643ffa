package test

import (
	"context"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lifeboat-updater/lifeboat/demo"
	"github.com/lifeboat-updater/lifeboat/internal/vm"
)

// TestDemo is `make demo`: the same code (demo.Prepared.Run) provisions a
// blank board over HTTP from the rescue, reboots it, boots production from
// the disk alone, and checks the disk with lifeboat verify; then the test
// checks the disk once more itself.
func TestDemo(t *testing.T) {
	p := prepared(t)
	start := time.Now()
	r, err := p.Run(context.Background(), demo.RunOptions{
		OutDir: t.TempDir(), Console: &testLog{t: t}, Logf: t.Logf,
	})
	if err != nil {
		t.Fatalf("demo: %v", err)
	}
	t.Logf("MEASURE demo run (serve, rescue VM, device VM, verify): %v", time.Since(start).Round(100*time.Millisecond))
	t.Logf("MEASURE\n%s", r)
	if !strings.HasPrefix(r.Reason, "blank storage") {
		t.Errorf("reason %q, want blank storage", r.Reason)
	}
	if r.ToLease <= 0 || r.ToFirst < r.ToLease || r.ToDone < r.ToFirst || r.DeviceBoot <= 0 {
		t.Errorf("times out of order: lease %v, first write %v, installed %v, production %v", r.ToLease, r.ToFirst, r.ToDone, r.DeviceBoot)
	}
	if !regexp.MustCompile(`wrote \d+ chunks .* skipped \d+ chunks`).MatchString(r.Summary) {
		t.Errorf("summary %q, want written and skipped chunk counts", r.Summary)
	}
	for _, req := range r.Requests {
		if req.Path != "/"+demo.BundleName || req.Status/100 != 2 {
			t.Errorf("unexpected request %s", req)
		}
	}
	verifyDisk(t, p, r.Disk)
}

// TestNoEntropyStall boots the rescue on a CPU without RDRAND (qemu64),
// where a kernel RNG that is not seeded yet blocks anything that waits
// for entropy (Go's crypto/rand stalled about 120 s there): the rescue
// must still get its lease and install at once.
func TestNoEntropyStall(t *testing.T) {
	t.Parallel()
	p := prepared(t)
	disk := blankDisk(t)
	srv := serve(t, filepath.Dir(p.Bundle))
	v, tl := bootRescue(t, p, rescueBoot{
		Disk: disk, CPU: "qemu64",
		Params: []string{"lifeboat.url=" + srv.GuestURL(demo.BundleName)},
	})
	expect(t, v, demo.MarkBlank, 90*time.Second)
	expect(t, v, demo.MarkLease, 60*time.Second)
	summary := waitInstalled(t, v, tl, 4*time.Minute)
	lease, _ := tl.First(demo.MarkLease)
	first, _ := tl.FirstWrite()
	done, _ := tl.First(demo.MarkInstalled)
	_, unseeded := tl.First("kernel RNG not seeded")
	t.Logf("MEASURE -cpu qemu64: lease %v, first write %v, installed %v (RNG unseeded at start: %v): %s",
		lease.Round(10*time.Millisecond), first.Round(10*time.Millisecond), done.Round(10*time.Millisecond), unseeded, summary)
	// Waiting for the RNG would take minutes; booting takes seconds.
	if lease > 45*time.Second {
		t.Errorf("lease after %v on a CPU without RDRAND: something waits for entropy", lease)
	}
	verifyDisk(t, p, disk)
}

// TestUSBStick provisions the board from a USB stick, with no network: a
// FAT stick (no partition table) holding /lifeboat/demo.lfb on QEMU's xHCI
// controller. The install completes and production boots.
func TestUSBStick(t *testing.T) {
	t.Parallel()
	p := prepared(t)
	stick := fatStick(t, 80, map[string]string{"/lifeboat/" + demo.BundleName: p.Bundle})
	disk := blankDisk(t)
	v, tl := bootRescue(t, p, rescueBoot{
		Disk: disk, NICs: []string{"none"},
		Params: []string{"lifeboat.url=usb"},
		Drives: []vm.Drive{{Path: stick, Device: "usb-storage", ReadOnly: true}},
	})
	expect(t, v, demo.MarkBlank, 90*time.Second)
	expect(t, v, "lifeboat: network: not needed", 10*time.Second)
	expect(t, v, "lifeboat: installing demo-os", 90*time.Second)
	summary := waitInstalled(t, v, tl, 3*time.Minute)
	found, _ := tl.First("source: opened")
	done, _ := tl.First(demo.MarkInstalled)
	t.Logf("MEASURE USB stick: bundle opened %v, installed %v: %s", found.Round(10*time.Millisecond), done.Round(10*time.Millisecond), summary)
	verifyDisk(t, p, disk)
	prod := bootProduction(t, p, disk)
	t.Logf("MEASURE USB stick: production boot ok after %v", prod.Round(10*time.Millisecond))
}

// testLog writes a VM console to the test log, line by line.
type testLog struct {
	t   *testing.T
	buf []byte
}

func (w *testLog) Write(p []byte) (int, error) {
	w.buf = append(w.buf, p...)
	for {
		i := strings.IndexByte(string(w.buf), '\n')
		if i < 0 {
			return len(p), nil
		}
		w.t.Logf("| %s", w.buf[:i])
		w.buf = w.buf[i+1:]
	}
}

// TestStalledInstallWatchdog: the server stops sending in the middle of
// the install and holds the connection open. The install makes no more
// progress, so the rescue stops feeding the board's watchdog, which resets
// the board; the rescue boots again, finds the partition table it wrote,
// and resumes: what the first boot wrote is skipped, not written again.
func TestStalledInstallWatchdog(t *testing.T) {
	t.Parallel()
	p := prepared(t)
	disk := blankDisk(t)
	srv := serve(t, filepath.Dir(p.Bundle))
	var requests atomic.Int32
	const stallAt = 20 << 20 // in the rootfs image's chunks
	srv.StallAfter = func(*http.Request) int64 {
		if requests.Add(1) == 1 {
			return stallAt
		}
		return 0
	}
	v, tl := bootRescue(t, p, rescueBoot{
		Disk:        disk,
		Params:      []string{"lifeboat.url=" + srv.GuestURL(demo.BundleName), "lifeboat.watchdog=5", "lifeboat.watchdog_grace=8"},
		AllowReboot: true,
	})
	boot := regexp.MustCompile(`Linux version \S+`)
	if _, err := v.ExpectRegexp(boot, time.Minute); err != nil {
		t.Fatal(err)
	}
	expect(t, v, "lifeboat: watchdog armed", 90*time.Second)
	expect(t, v, demo.MarkBlank, 60*time.Second)
	expect(t, v, "lifeboat: [1/7] partition disk: done", 60*time.Second)
	expect(t, v, "lifeboat: watchdog: no sign of life from the flow", 2*time.Minute)
	if _, err := v.ExpectRegexp(boot, time.Minute); err != nil {
		t.Fatalf("the watchdog did not reset the board: %v", err)
	}
	expect(t, v, demo.MarkReason+"requested", 90*time.Second)
	expect(t, v, demo.MarkInstalled, 3*time.Minute)
	expect(t, v, demo.MarkRebooting, 30*time.Second)
	v.Kill()
	// The Timeline has whole lines only: look now that the VM is gone.
	var reset time.Duration
	for _, l := range tl.Lines() {
		if boot.MatchString(l.Text) {
			reset = l.At // the last boot's
		}
	}

	// What the first boot reported done is on the disk: the second boot
	// skips at least that much of the rootfs image.
	var before, after int64
	for _, e := range tl.Events() {
		switch {
		case e.At < reset && e.Kind() == "progress" && e.Int("step") == 2:
			before = e.Int("done_bytes")
		case e.At > reset && e.Kind() == "step-done" && e.Int("step") == 2:
			after = e.Int("skipped_bytes")
		}
	}
	stall, _ := tl.First("watchdog: no sign of life")
	done, _ := tl.First(demo.MarkInstalled)
	t.Logf("MEASURE stalled install: watchdog gave up %v, reset %v, installed %v; rootfs done before the reset %d bytes, skipped after %d bytes",
		stall.Round(10*time.Millisecond), reset.Round(10*time.Millisecond), done.Round(10*time.Millisecond), before, after)
	if before == 0 || after < before {
		t.Errorf("rootfs: %d bytes done before the reset, %d skipped after it; want the second at least the first, and some", before, after)
	}
	if n := requests.Load(); n < 2 {
		t.Errorf("%d requests, want the stalled one and another after the reset", n)
	}
	verifyDisk(t, p, disk)
}
