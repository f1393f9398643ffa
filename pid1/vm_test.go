package pid1_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lifeboat-updater/lifeboat/initramfs"
	"github.com/lifeboat-updater/lifeboat/internal/vm"
	"github.com/lifeboat-updater/lifeboat/pid1"
)

// These tests boot the rescue platform in QEMU with the pinned Debian
// kernel (scripts/fetch-kernel.sh), as PID 1 of an image built by package
// initramfs: testdata/pid1init (pid1.Run with DefaultFlow, plus the
// test switches it documents) and the modules of testdata/board.json.
// `go test -short` skips them.

const marker = "lifeboat: " + pid1.ReadyMarker

var (
	imagesMu  sync.Mutex
	images    = map[initramfs.Format]initramfs.Result{}
	imagesDir string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if imagesDir != "" {
		os.RemoveAll(imagesDir)
	}
	os.Exit(code)
}

// image builds (once per test binary) the rescue test image in format f.
func image(t *testing.T, f initramfs.Format) initramfs.Result {
	t.Helper()
	if testing.Short() {
		t.Skip("boots QEMU; skipped with -short")
	}
	k := vm.DebianKernel(t)
	imagesMu.Lock()
	defer imagesMu.Unlock()
	if r, ok := images[f]; ok {
		return r
	}
	if imagesDir == "" {
		d, err := os.MkdirTemp("", "rescue-vm-test")
		if err != nil {
			t.Fatal(err)
		}
		imagesDir = d
	}
	profile := filepath.Join("testdata", "board.json")
	b, err := os.ReadFile(profile)
	if err != nil {
		t.Fatal(err)
	}
	var board struct {
		Modules []string `json:"modules"`
	}
	if err := json.Unmarshal(b, &board); err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(imagesDir, "test.pub")
	if err := os.WriteFile(key, []byte("not a real key\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	r, err := initramfs.Build(context.Background(), initramfs.Options{
		Init:         "./testdata/pid1init",
		KernelDir:    k.Root,
		KVer:         k.KVer,
		Modules:      board.Modules,
		BoardProfile: profile,
		Keys:         []string{key},
		Format:       f,
		Output:       filepath.Join(imagesDir, "pid1.cpio."+string(f)),
	})
	if err != nil {
		t.Fatalf("initramfs.Build(%s) = %v", f, err)
	}
	t.Logf("built in %v: %s", time.Since(start).Round(time.Millisecond), r)
	images[f] = r
	return r
}

func emptyDisk(t *testing.T, name string, size int64) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(p, size); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestVMBoot boots the xz image on the QEMU board: the modules load (a
// virtio disk and a USB stick appear), the kernel command line reaches the
// flow, the watchdog is armed, and the ready marker comes.
func TestVMBoot(t *testing.T) {
	t.Parallel()
	img := image(t, initramfs.XZ)
	k := vm.DebianKernel(t)
	start := time.Now()
	v := vm.StartT(t, vm.Options{
		Kernel: k.Image(),
		Initrd: img.Output,
		Append: `console=ttyS0 panic=-1 lifeboat.test_wait_block=vda,sda lifeboat.answer=42 lifeboat.note="two words"`,
		Drives: []vm.Drive{
			{Path: emptyDisk(t, "disk.img", 16<<20)},
			{Path: emptyDisk(t, "stick.img", 8<<20), Device: "usb-storage"},
		},
		NICs:     []string{"user,model=e1000"},
		Watchdog: "i6300esb",
	})
	m, err := v.ExpectRegexp(regexp.MustCompile(`lifeboat: modules: (\d+) loaded([^\r\n]*)`), 2*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if m[2] != "" {
		t.Errorf("modules line %q, want no failures", m[0])
	}
	if err := v.ExpectString("lifeboat: watchdog armed", time.Minute); err != nil {
		t.Error(err)
	}
	if err := v.ExpectString("lifeboat: test: block devices present: vda sda", time.Minute); err != nil {
		t.Error(err)
	}
	if err := v.ExpectString(marker, time.Minute); err != nil {
		t.Fatal(err)
	}
	t.Logf("MEASURE boot to marker (xz, -cpu max): %v", time.Since(start).Round(10*time.Millisecond))
	if err := v.ExpectString(`lifeboat: params: answer=42 note="two words" test_wait_block=vda,sda`, 10*time.Second); err != nil {
		t.Error(err)
	}
	if strings.Contains(v.Console(), "Kernel panic") {
		t.Error("kernel panicked")
	}
	if st, err := v.Status(); err != nil || st != "running" {
		t.Errorf("QMP query-status = %q, %v, want running", st, err)
	}
}

// TestVMNoRDRAND boots the lz4 image on a CPU without RDRAND (qemu64): the
// rescue must not wait for the kernel's entropy (Go's crypto/rand stalled
// about 120 s there) before it is ready.
func TestVMNoRDRAND(t *testing.T) {
	t.Parallel()
	img := image(t, initramfs.LZ4)
	k := vm.DebianKernel(t)
	start := time.Now()
	v := vm.StartT(t, vm.Options{
		Kernel: k.Vmlinuz, // the compressed kernel, as a bootloader starts it
		Initrd: img.Output,
		CPU:    "qemu64",
		Append: "console=ttyS0 panic=-1 lifeboat.watchdog=off",
	})
	if err := v.ExpectString(marker, 90*time.Second); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	t.Logf("MEASURE boot to marker (lz4, -cpu qemu64): %v; entropy seeded at start: %v",
		took.Round(10*time.Millisecond), !strings.Contains(v.Console(), "kernel RNG not seeded"))
	if !strings.Contains(v.Console(), "lifeboat: no watchdog") {
		t.Errorf("lifeboat.watchdog=off: want %q on the console", "lifeboat: no watchdog")
	}
}

// TestVMWatchdogReset hangs the flow: the rescue stops petting the i6300esb
// after the grace period and QEMU resets the board (the kernel boots a
// second time).
func TestVMWatchdogReset(t *testing.T) {
	t.Parallel()
	img := image(t, initramfs.XZ)
	k := vm.DebianKernel(t)
	v := vm.StartT(t, vm.Options{
		Kernel:      k.Image(),
		Initrd:      img.Output,
		Append:      "console=ttyS0 panic=-1 lifeboat.test_hang lifeboat.watchdog=3 lifeboat.watchdog_grace=2",
		Watchdog:    "i6300esb",
		AllowReboot: true,
	})
	boot := regexp.MustCompile(`Linux version \S+`)
	if _, err := v.ExpectRegexp(boot, time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := v.ExpectString("lifeboat: watchdog armed: resets 3s after the flow stops showing life for 2s", 2*time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := v.ExpectString("lifeboat: test: the flow hangs now", time.Minute); err != nil {
		t.Fatal(err)
	}
	hung := time.Now()
	if err := v.ExpectString("lifeboat: watchdog: no sign of life from the flow", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := v.ExpectRegexp(boot, time.Minute); err != nil {
		t.Fatalf("no second boot after the flow hung: %v", err)
	}
	t.Logf("MEASURE hang to reset (grace 2s + timeout 3s): %v", time.Since(hung).Round(10*time.Millisecond))
	if err := v.ExpectString(marker, 2*time.Minute); err != nil {
		t.Fatalf("the rescue did not come back after the reset: %v", err)
	}
}
