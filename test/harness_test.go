// Package test holds Lifeboat's end-to-end tests: the real rescue image
// (cmd/lifeboat as PID 1) booted in QEMU with the pinned Debian kernel,
// against virtual disks, USB sticks and a real HTTP server on the host.
// `go test -short` skips them.
//
// This file is the harness the tests share; a new end-to-end test uses it
// like this:
//
//	p := prepared(t)                        // rescue image, demo device, bundle (built once)
//	disk := blankDisk(t)                    // or a disk a first run installed
//	srv := serve(t, filepath.Dir(p.Bundle)) // knobs: BytesPerSecond, CutAfter, Hook
//	v, tl := bootRescue(t, rescueBoot{Disk: disk, Params: []string{"lifeboat.url=" + srv.GuestURL(demo.BundleName)}})
//	expect(t, v, demo.MarkInstalled, 2*time.Minute)
//	v.Kill()                                // a power cut, at any moment
//	verifyDisk(t, p, disk)                  // lifeboat verify on the host
//	bootProduction(t, p, disk)              // SeaBIOS, GRUB, production
//
// The rescue prints its install events on the console (lifeboat.events=
// console is always on here); tl.Events() has them with their arrival
// times, so a test can act at a given point of an install.
package test

import (
	"context"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lifeboat-updater/lifeboat/demo"
	"github.com/lifeboat-updater/lifeboat/internal/vm"
)

var (
	prepOnce sync.Once
	prep     *demo.Prepared
	prepErr  error
	workDir  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if workDir != "" {
		os.RemoveAll(workDir)
	}
	os.Exit(code)
}

// needVM skips a test that boots QEMU where it cannot: with -short, or
// without the tools. CI installs them all (scripts/install-deps.sh).
func needVM(t *testing.T, tools ...string) {
	t.Helper()
	if testing.Short() {
		t.Skip("boots QEMU; skipped with -short")
	}
	for _, tool := range append([]string{"qemu-system-x86_64", "grub-mkimage", "mke2fs", "xz"}, tools...) {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s (scripts/install-deps.sh installs it): %v", tool, err)
		}
	}
}

// prepared returns what every end-to-end test boots, built once per test
// binary: a signing key, the rescue image trusting it, the demo device's
// images and the bundle that provisions a blank disk with them.
func prepared(t *testing.T) *demo.Prepared {
	t.Helper()
	needVM(t)
	k := vm.DebianKernel(t)
	prepOnce.Do(func() {
		workDir, prepErr = os.MkdirTemp("", "lifeboat-e2e-")
		if prepErr != nil {
			return
		}
		start := time.Now()
		prep, prepErr = demo.Prepare(context.Background(), demo.PrepareOptions{
			OutDir: workDir, Kernel: k, Logf: t.Logf,
		})
		if prepErr == nil {
			t.Logf("MEASURE prepare (rescue image, demo device, bundle): %v (%v)", time.Since(start).Round(100*time.Millisecond), prep.Took)
			t.Logf("MEASURE rescue image: %s", prep.Rescue.Result)
			if fi, err := os.Stat(prep.Bundle); err == nil {
				t.Logf("MEASURE bundle: %d bytes", fi.Size())
			}
		}
	})
	if prepErr != nil {
		t.Fatalf("preparing the end-to-end tests: %v", prepErr)
	}
	return prep
}

// blankDisk returns a new blank virtual disk of the demo's size.
func blankDisk(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "disk.img")
	if err := demo.BlankDisk(p, demo.DefaultDiskSize); err != nil {
		t.Fatal(err)
	}
	return p
}

// serve serves dir over HTTP on 127.0.0.1 until the test ends, and logs
// the requests it answered.
func serve(t *testing.T, dir string) *demo.Server {
	t.Helper()
	srv, err := demo.Serve(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, r := range srv.Requests() {
			t.Logf("http: %s", r)
		}
		srv.Close()
	})
	return srv
}

// rescueBoot says how to boot the rescue.
type rescueBoot struct {
	Disk string // the board's disk (virtio, /dev/vda)
	// DiskOptions are more -drive options for Disk (throttling, ...).
	DiskOptions string
	Params      []string // more kernel parameters: lifeboat.url=, ip=, ...
	CPU         string   // -cpu; default max
	// NICs replace the default virtio NIC on QEMU's user network;
	// []string{"none"} boots without a network.
	NICs []string
	// Drives are attached after the disk (USB sticks, ...).
	Drives []vm.Drive
	// Watchdog replaces the board's watchdog model (i6300esb).
	Watchdog string
	// AllowReboot keeps QEMU running across a reboot or watchdog reset.
	AllowReboot bool
}

// bootRescue boots the rescue image with -kernel/-initrd as RescueVM
// does, with the install events on the console. The VM is killed when
// the test ends; its console goes to the test log.
func bootRescue(t *testing.T, p *demo.Prepared, b rescueBoot) (*vm.VM, *demo.Timeline) {
	t.Helper()
	o := p.RescueVM(b.Disk, append([]string{"lifeboat.events=console"}, b.Params...)...)
	o.Drives[0].Options = b.DiskOptions
	if b.CPU != "" {
		o.CPU = b.CPU
	}
	if b.NICs != nil {
		o.NICs = b.NICs
	}
	o.Drives = append(o.Drives, b.Drives...)
	if b.Watchdog != "" {
		o.Watchdog = b.Watchdog
	}
	o.AllowReboot = b.AllowReboot
	tl := demo.NewTimeline(nil)
	o.Console = tl
	v := vm.StartT(t, o)
	tl.Restart()
	return v, tl
}

// bootDevice powers the board on from its disk alone.
func bootDevice(t *testing.T, disk string) (*vm.VM, *demo.Timeline) {
	t.Helper()
	o := demo.DeviceVM(disk)
	tl := demo.NewTimeline(nil)
	o.Console = tl
	v := vm.StartT(t, o)
	tl.Restart()
	return v, tl
}

// expect waits for s on the console after what earlier expects matched;
// the test fails at once if it does not come in time.
func expect(t *testing.T, v *vm.VM, s string, timeout time.Duration) {
	t.Helper()
	if err := v.ExpectString(s, timeout); err != nil {
		t.Fatal(err)
	}
}

// waitInstalled waits for the rescue to install and reboot (QEMU exits:
// it runs with -no-reboot) and returns the summary line.
func waitInstalled(t *testing.T, v *vm.VM, tl *demo.Timeline, timeout time.Duration) string {
	t.Helper()
	expect(t, v, demo.MarkInstalled, timeout)
	expect(t, v, demo.MarkRebooting, 30*time.Second)
	if err := v.WaitTimeout(time.Minute); err != nil {
		t.Fatalf("the rescue did not reboot after installing: %v", err)
	}
	for _, l := range tl.Lines() {
		if i := strings.Index(l.Text, demo.MarkInstalled); i >= 0 {
			return l.Text[i+len("lifeboat: "):]
		}
	}
	t.Fatal("no summary line")
	return ""
}

// bootProduction powers the board on from disk and waits for the
// production system p's bundle installs to say its boot is good.
func bootProduction(t *testing.T, p *demo.Prepared, disk string) time.Duration {
	t.Helper()
	v, tl := bootDevice(t, disk)
	expect(t, v, demo.GRUBMenu, time.Minute)
	expect(t, v, demo.Banner(p.Artifacts.Version), 90*time.Second)
	expect(t, v, demo.MsgBootOK, 30*time.Second)
	if err := v.WaitTimeout(time.Minute); err != nil {
		t.Errorf("the production system did not power off: %v", err)
	}
	d, _ := tl.First(demo.MsgBootOK)
	return d
}

// verifyDisk runs `lifeboat verify` on the host: the disk must match the
// bundle chunk for chunk.
func verifyDisk(t *testing.T, p *demo.Prepared, disk string) {
	t.Helper()
	out, err := demo.Verify(context.Background(), p.Bundle, p.Key.PubPath(), disk)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	t.Logf("%s", strings.TrimSpace(out))
}

// fatStick makes a FAT USB stick image without a partition table (a
// "superfloppy", as many sticks come) holding files (image path: host
// path), with mkfs.vfat and mtools: nothing is mounted on the host.
func fatStick(t *testing.T, sizeMiB int, files map[string]string) string {
	t.Helper()
	needVM(t, "mkfs.vfat", "mcopy", "mmd")
	img := filepath.Join(t.TempDir(), "stick.img")
	run := func(name string, args ...string) {
		t.Helper()
		if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
	}
	run("mkfs.vfat", "-C", "-n", "LIFEBOAT", img, strconv.Itoa(sizeMiB*1024))
	var dirs []string
	for dst := range files {
		for d := path.Dir(dst); d != "/" && d != "."; d = path.Dir(d) {
			if !slices.Contains(dirs, d) {
				dirs = append(dirs, d)
			}
		}
	}
	slices.Sort(dirs) // parents first
	for _, d := range dirs {
		run("mmd", "-i", img, "::"+d)
	}
	for dst, src := range files {
		run("mcopy", "-i", img, src, "::"+dst)
	}
	return img
}
