package test

// The numbers of docs/BENCHMARKS.md, "Rescue image":
//
//	go test -count=1 -run 'TestRescueNumbers|TestLargeImageLowMemory' -v ./test | grep MEASURE

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lifeboat-updater/lifeboat/demo"
	"github.com/lifeboat-updater/lifeboat/initramfs"
	"github.com/lifeboat-updater/lifeboat/internal/vm"
	"github.com/u-root/gobusybox/src/pkg/golang"
	"github.com/u-root/mkuimage/uimage"
	"github.com/u-root/uio/llog"
)

// minimalMarker is what the minimal u-root image prints once its init
// has started its uinit.
const minimalMarker = "MINIMAL-UROOT-UP"

// buildMinimal builds the reference image: u-root's init and one trivial
// command (echo, run as uinit to print the marker), in busybox mode, with
// the same mkuimage API the rescue image is built with, compressed as the
// rescue's xz is.
func buildMinimal(t *testing.T, dir string) string {
	t.Helper()
	root, err := vm.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	cpioPath := filepath.Join(tmp, "minimal.cpio")
	env := golang.Default(golang.DisableCGO(), golang.WithGOOS("linux"), golang.WithGOARCH("amd64"), golang.WithWorkingDir(root))
	l := llog.New(slog.LevelWarn, t.Logf)
	err = uimage.Create(l,
		uimage.WithReplaceEnv(env),
		uimage.WithTempDir(tmp),
		uimage.WithBusyboxCommands(
			"github.com/u-root/u-root/cmds/core/init",
			"github.com/u-root/u-root/cmds/core/echo"),
		uimage.WithInit("init"),
		uimage.WithUinit("echo", minimalMarker),
		uimage.WithSkipLDD(),
		uimage.WithCPIOOutput(cpioPath),
	)
	if err != nil {
		t.Fatalf("minimal u-root image: %v", err)
	}
	out := filepath.Join(dir, "minimal.cpio.xz")
	xzFile(t, cpioPath, out)
	return out
}

// xzFile compresses as initramfs does for amd64.
func xzFile(t *testing.T, src, dst string) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	cmd := exec.Command("xz", "--check=crc32", "--x86", "--lzma2=preset=6,dict=8MiB", "--stdout", "--threads=1")
	var stderr bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = in, out, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("xz: %v %s", err, stderr.Bytes())
	}
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

// TestRescueNumbers measures the rescue image of the QEMU board: its size
// (xz and lz4, with the modules' share), and its boot, from QEMU's start
// to the first byte written to a blank disk, against a minimal u-root
// image (init and echo) booted the same way (same kernel, same QEMU
// options), one after the other in this run. Not parallel: the boots are
// timed on a quiet machine as far as this package goes.
func TestRescueNumbers(t *testing.T) {
	p := prepared(t)
	dir := t.TempDir()
	imgs, err := demo.BuildRescue(context.Background(), demo.RescueOptions{
		KernelDir: p.Kernel.Root, Keys: []string{p.Key.PubPath()}, OutDir: dir,
		Formats: []initramfs.Format{initramfs.XZ, initramfs.LZ4},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, im := range imgs {
		r := im.Result
		t.Logf("MEASURE rescue image %s: %d bytes (%.2f MiB); cpio %.2f MiB, /init %.2f MiB; %d modules %.2f MiB, %.2f MiB of the image (%s)",
			im.Format, r.Size, mb(r.Size), mb(r.CPIOSize), mb(r.InitSize), len(r.Modules), mb(r.ModulesSize), mb(r.ModulesCompressedSize), r.Compressor)
	}
	if xz := imgs[0].Result.Size; xz > 3<<20 {
		t.Logf("MEASURE rescue image xz is above 3 MiB by %d bytes", xz-3<<20)
	}
	minimal := buildMinimal(t, dir)
	t.Logf("MEASURE minimal u-root image (init + echo, bb mode) xz: %d bytes (%.2f MiB)", fileSize(t, minimal), mb(fileSize(t, minimal)))

	// The minimal image, booted as the rescue is.
	o := p.RescueVM(blankDisk(t), "lifeboat.events=console")
	o.Initrd = minimal
	tl := demo.NewTimeline(nil)
	o.Console = tl
	v := vm.StartT(t, o)
	tl.Restart()
	expectCount(t, v, tl, minimalMarker, 1, 90*time.Second)
	v.Kill()
	toMarker, _ := tl.First(minimalMarker)
	toKernel, _ := tl.First("Run /init as init process")
	t.Logf("MEASURE minimal u-root: kernel runs /init %v, marker %v after QEMU start", toKernel.Round(10*time.Millisecond), toMarker.Round(10*time.Millisecond))

	// The rescue, xz and lz4, to its first write on a blank disk.
	for _, im := range imgs {
		srv := serve(t, filepath.Dir(p.Bundle))
		o := p.RescueVM(blankDisk(t), "lifeboat.events=console", "lifeboat.url="+srv.GuestURL(demo.BundleName))
		o.Initrd = im.Path
		tl := demo.NewTimeline(nil)
		o.Console = tl
		v := vm.StartT(t, o)
		tl.Restart()
		expect(t, v, demo.MarkBlank, 90*time.Second)
		waitEvent(t, v, tl, 0, 2*time.Minute, "the first write", func(demo.Event) bool {
			_, ok := tl.FirstWrite()
			return ok
		})
		v.Kill()
		first, _ := tl.FirstWrite()
		toInit, _ := tl.First("Run /init as init process")
		reason, _ := tl.First(demo.MarkReason)
		lease, _ := tl.First(demo.MarkLease)
		t.Logf("MEASURE rescue %s: kernel runs /init %v, reason line %v, DHCP lease %v, first byte written %v after QEMU start (minimal u-root marker: %v)",
			im.Format, toInit.Round(10*time.Millisecond), reason.Round(10*time.Millisecond), lease.Round(10*time.Millisecond),
			first.Round(10*time.Millisecond), toMarker.Round(10*time.Millisecond))
	}
}

func mb(n int64) float64 { return float64(n) / (1 << 20) }

// TestLargeImageLowMemory installs a 1 GiB image from HTTP in a VM with
// 128 MiB of RAM: the bundle streams through the rescue, it is never held
// in memory. To keep the time sane under TCG the image is 1 GiB with
// about 100 MiB of real data (1 MiB of this machine's files every 10 MiB)
// and zero chunks between. The rescue's peak memory (VmHWM of PID 1) is
// what the rescue itself reports: the done event's peak_rss_bytes, and the
// same figure in its summary line.
func TestLargeImageLowMemory(t *testing.T) {
	t.Parallel()
	p := prepared(t)
	dir := t.TempDir()

	img := filepath.Join(dir, "big.img")
	realBytes := makeBigImage(t, img, 1<<30, 10<<20, 1<<20)
	spec := fmt.Sprintf(`product: big
version: "1.0.0"
security_version: 1
compatible: [%s]
steps:
  - {type: image, target: disk, offset: 0, file: %s, verify: true}
`, demo.Board, img)
	start := time.Now()
	b := writeBundle(t, spec, p.Key.Signer())
	t.Logf("MEASURE 1 GiB image: %d MiB of data, bundle %.1f MiB, made in %v", realBytes>>20, mb(fileSize(t, b)), time.Since(start).Round(100*time.Millisecond))

	disk := filepath.Join(dir, "disk.img")
	if err := demo.BlankDisk(disk, 1<<30+64<<20); err != nil {
		t.Fatal(err)
	}
	srv := serve(t, filepath.Dir(b))
	o := p.RescueVM(disk, "lifeboat.events=console", "lifeboat.url="+srv.GuestURL(demo.BundleName))
	o.Memory = 128
	tl := demo.NewTimeline(nil)
	o.Console = tl
	v := vm.StartT(t, o)
	tl.Restart()
	expect(t, v, demo.MarkInstalled, 15*time.Minute)
	_ = v.WaitTimeout(time.Minute)

	var summary string
	for _, l := range tl.Lines() {
		if i := strings.Index(l.Text, demo.MarkInstalled); i >= 0 {
			summary = l.Text[i:]
		}
	}
	var dur, peak float64
	for _, e := range tl.Events() {
		if e.Kind() == "done" {
			dur, _ = e.Fields["duration_seconds"].(float64)
			peak, _ = e.Fields["peak_rss_bytes"].(float64)
		}
	}
	t.Logf("MEASURE 1 GiB image, -m 128: install %.1fs: %s", dur, summary)
	if peak <= 0 {
		t.Fatalf("the done event has no peak_rss_bytes; events: %v", tl.Events())
	}
	// The summary says the same figure in kB: a person reading the
	// console sees what a program reading the events sees.
	if want := fmt.Sprintf("peak memory %d kB", int64(peak)>>10); !strings.Contains(summary, want) {
		t.Errorf("summary %q does not say %q", summary, want)
	}
	// 128 MiB is the whole VM: a rescue that held the bundle, or an
	// image, in memory would have died long before this.
	if peak >= 128<<20 {
		t.Errorf("PID 1 peak memory %.1f MiB, not below the VM's 128 MiB", peak/(1<<20))
	}
	t.Logf("MEASURE 1 GiB image, -m 128: PID 1 peak memory (VmHWM) %.0f kB (%.1f MiB)", peak/1024, peak/(1<<20))
	out, err := demo.Verify(context.Background(), b, p.Key.PubPath(), disk)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	t.Logf("%s", strings.TrimSpace(out))
}

// makeBigImage writes a sparse image of size bytes with chunk bytes of
// this machine's files every stride bytes, and returns the data bytes.
func makeBigImage(t *testing.T, path string, size, stride, chunk int64) int64 {
	t.Helper()
	var src bytes.Buffer
	for _, dir := range []string{"/usr/lib/x86_64-linux-gnu", "/usr/bin", "/usr/share/doc"} {
		_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
			if err != nil || !d.Type().IsRegular() || int64(src.Len()) >= size/stride*chunk {
				return nil
			}
			if b, err := os.ReadFile(p); err == nil {
				src.Write(b)
			}
			return nil
		})
	}
	data := src.Bytes()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	var n int64
	for off := int64(0); off+chunk <= size; off += stride {
		if len(data) < int(chunk) {
			break
		}
		if _, err := f.WriteAt(data[:chunk], off); err != nil {
			t.Fatal(err)
		}
		data = data[chunk:]
		n += chunk
	}
	return n
}
