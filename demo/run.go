package demo

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/lifeboat-updater/lifeboat/initramfs"
	"github.com/lifeboat-updater/lifeboat/internal/cli"
	"github.com/lifeboat-updater/lifeboat/internal/vm"
	"github.com/lifeboat-updater/lifeboat/rescue"
)

// BundleName is the demo bundle's file name, on the server and on sticks.
const BundleName = "demo.lfb"

// Console markers of the rescue that the demo and the tests wait for.
var (
	MarkReason    = "lifeboat: " + rescue.MsgReason
	MarkBlank     = "lifeboat: " + rescue.MsgReason + rescue.ReasonBlank
	MarkLease     = "(DHCP server "
	MarkInstalled = "lifeboat: " + rescue.MsgInstalled
	MarkRebooting = "lifeboat: done, rebooting"
)

// PrepareOptions say where to build the demo.
type PrepareOptions struct {
	// OutDir receives everything: keys/, rescue image, device/, www/.
	OutDir string
	// KeyDir holds the signing key (made if missing); default OutDir/keys.
	KeyDir string
	// Kernel is the kernel the rescue and the production system run
	// (vm.FetchKernel).
	Kernel vm.Kernel
	// Version of the production system; default "1.0.0".
	Version string
	// Logf, if set, receives a line per step.
	Logf func(format string, args ...any)
}

// Prepared is everything the demo boots: a signing key, the rescue image
// that trusts it, the demo device's images and the signed bundle that
// provisions a blank device with them.
type Prepared struct {
	Kernel    vm.Kernel
	Key       *Key
	Rescue    RescueImage
	Artifacts *Artifacts
	Bundle    string // www/demo.lfb
	// Took is how long each part took to build.
	Took map[string]time.Duration
}

// Prepare builds the rescue image, the demo device and the bundle.
func Prepare(ctx context.Context, o PrepareOptions) (*Prepared, error) {
	logf := o.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	if o.KeyDir == "" {
		o.KeyDir = filepath.Join(o.OutDir, "keys")
	}
	if o.Version == "" {
		o.Version = "1.0.0"
	}
	p := &Prepared{Kernel: o.Kernel, Took: map[string]time.Duration{}}
	var err error
	if p.Key, err = LoadOrCreateKey(o.KeyDir); err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}

	start := time.Now()
	logf("building the rescue image (cmd/lifeboat as PID 1, board %s)", Board)
	imgs, err := BuildRescue(ctx, RescueOptions{
		KernelDir: o.Kernel.Root, Keys: []string{p.Key.PubPath()}, OutDir: o.OutDir,
		Formats: []initramfs.Format{initramfs.XZ},
	})
	if err != nil {
		return nil, err
	}
	p.Rescue = imgs[0]
	p.Took["rescue image"] = time.Since(start)
	logf("  %s", p.Rescue.Result)

	start = time.Now()
	logf("building the demo device: GRUB, production system %s, rescue partition", o.Version)
	p.Artifacts, err = Build(ctx, Options{
		KernelPath: o.Kernel.Vmlinuz, ModulesDir: o.Kernel.Modules,
		RescueKernel: o.Kernel.Vmlinuz, RescueInitramfs: p.Rescue.Path,
		OutDir: filepath.Join(o.OutDir, "device"), Version: o.Version, SecurityVersion: 1,
	})
	if err != nil {
		return nil, err
	}
	p.Took["device"] = time.Since(start)

	start = time.Now()
	www := filepath.Join(o.OutDir, "www")
	if err := os.MkdirAll(www, 0o755); err != nil {
		return nil, err
	}
	p.Bundle = filepath.Join(www, BundleName)
	logf("signing the bundle %s", p.Bundle)
	if err := CreateBundle(ctx, p.Artifacts.Spec, p.Bundle, p.Key.Signer()); err != nil {
		return nil, err
	}
	p.Took["bundle"] = time.Since(start)
	return p, nil
}

// RescueVM boots the rescue image as the demo board would after a network
// boot: -kernel/-initrd, 256 MiB, a virtio NIC on QEMU's user network
// (DHCP; the host is 10.0.2.2), disk as its virtio disk, and the board's
// watchdog (i6300esb), which resets the board when the rescue stops
// showing life. params are added to the kernel command line
// (lifeboat.url=...).
func (p *Prepared) RescueVM(disk string, params ...string) vm.Options {
	return vm.Options{
		Kernel:   p.Kernel.Image(),
		Initrd:   p.Rescue.Path,
		Append:   strings.Join(append([]string{"console=ttyS0", "panic=-1"}, params...), " "),
		Memory:   256,
		CPU:      "max",
		Drives:   []vm.Drive{{Path: disk}},
		NICs:     []string{"user,model=virtio-net-pci"},
		Watchdog: "i6300esb",
	}
}

// DeviceVM powers the demo board on from its disk alone: SeaBIOS, GRUB,
// and whatever GRUB boots.
func DeviceVM(disk string) vm.Options {
	return vm.Options{DiskBoot: true, Memory: 256, CPU: "max", Drives: []vm.Drive{{Path: disk}}}
}

// BlankDisk makes a sparse all-zero disk image of size bytes (blank
// storage, as a board comes from the factory).
func BlankDisk(path string, size int64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// Verify runs `lifeboat verify` on the host: it compares disk, chunk by
// chunk, with the bundle. It returns the command's output, and an error
// unless the disk matches.
func Verify(ctx context.Context, bundlePath, pubKey, disk string) (string, error) {
	var out bytes.Buffer
	code := cli.Main(ctx, []string{"verify", bundlePath, "--keys", pubKey, "--board", Board,
		"--target", "disk=" + disk, "--progress", "none"}, nil, &out, &out)
	if code != 0 {
		return out.String(), fmt.Errorf("lifeboat verify: exit %d: %s", code, strings.TrimSpace(out.String()))
	}
	return out.String(), nil
}

// RunOptions say how to run the demo.
type RunOptions struct {
	// OutDir receives the disk image (disk.img).
	OutDir string
	// Console shows the guests' serial consoles to a person; nil: none.
	Console io.Writer
	// Logf, if set, receives a line per step.
	Logf func(format string, args ...any)
	// Timeout bounds each VM; default 3 minutes.
	Timeout time.Duration
}

// Report is what the demo saw, with times since each VM started.
type Report struct {
	Bundle, Disk string
	BundleSize   int64
	Image        string // the rescue image (xz)
	ImageSize    int64

	// The rescue's boot.
	Reason     string        // the rescue's reason line
	ToReason   time.Duration // the install flow's first line
	ToLease    time.Duration
	ToFirst    time.Duration // the first byte written to the disk
	ToDone     time.Duration // the install's summary
	Install    time.Duration // the install itself, as the rescue measured it
	Summary    string        // the summary line
	RescueVM   time.Duration // QEMU start to exit (the rescue rebooted)
	Requests   []Request
	DeviceBoot time.Duration // QEMU start to the production system's boot ok
	Verify     string        // lifeboat verify's verdict
}

// String is the report for a person.
func (r *Report) String() string {
	var b strings.Builder
	s := func(d time.Duration) string { return fmt.Sprintf("%6.1fs", d.Seconds()) }
	fmt.Fprintf(&b, "rescue image      %s (%.2f MiB)\n", r.Image, float64(r.ImageSize)/(1<<20))
	fmt.Fprintf(&b, "bundle            %s (%.1f MB)\n", r.Bundle, float64(r.BundleSize)/1e6)
	fmt.Fprintf(&b, "rescue VM:\n")
	fmt.Fprintf(&b, "  reason          %s  %s\n", s(r.ToReason), r.Reason)
	fmt.Fprintf(&b, "  DHCP lease      %s\n", s(r.ToLease))
	fmt.Fprintf(&b, "  first write     %s\n", s(r.ToFirst))
	fmt.Fprintf(&b, "  installed       %s  (install %.1fs)\n", s(r.ToDone), r.Install.Seconds())
	fmt.Fprintf(&b, "  rebooted        %s\n", s(r.RescueVM))
	fmt.Fprintf(&b, "device VM (disk only):\n")
	fmt.Fprintf(&b, "  production ok   %s\n", s(r.DeviceBoot))
	fmt.Fprintf(&b, "lifeboat verify   %s\n", strings.TrimSpace(r.Verify))
	return b.String()
}

// Run is the demo: a blank disk, the bundle served over HTTP, the rescue
// booted in QEMU to provision the disk and reboot, then the disk booted
// on its own into production, then the disk checked against the bundle
// with `lifeboat verify`. It fails unless every step was seen.
func (p *Prepared) Run(ctx context.Context, o RunOptions) (*Report, error) {
	logf := o.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	if o.Timeout == 0 {
		o.Timeout = 3 * time.Minute
	}
	r := &Report{Bundle: p.Bundle, Disk: filepath.Join(o.OutDir, "disk.img"), Image: p.Rescue.Path, ImageSize: p.Rescue.Result.Size}
	if fi, err := os.Stat(p.Bundle); err == nil {
		r.BundleSize = fi.Size()
	}
	if err := os.MkdirAll(o.OutDir, 0o755); err != nil {
		return r, err
	}
	if err := BlankDisk(r.Disk, DefaultDiskSize); err != nil {
		return r, err
	}
	srv, err := Serve(filepath.Dir(p.Bundle))
	if err != nil {
		return r, err
	}
	defer srv.Close()
	url := srv.GuestURL(BundleName)
	logf("serving %s at %s (the guest's %s)", BundleName, srv.URL(BundleName), url)

	// The rescue provisions the blank disk and reboots.
	logf("booting the rescue in QEMU with a blank %d MiB disk", DefaultDiskSize>>20)
	tl := NewTimeline(o.Console)
	// quiet: the kernel's own messages would drown the rescue's.
	opts := p.RescueVM(r.Disk, "quiet", "lifeboat.url="+url, "lifeboat.events=console")
	opts.Console = tl
	rctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	v, err := vm.Start(rctx, opts)
	if err != nil {
		return r, err
	}
	defer v.Kill()
	tl.Restart()
	for _, step := range []struct{ what, mark string }{
		{"the install flow", MarkBlank},
		{"a DHCP lease", MarkLease},
		{"the install", MarkInstalled},
		{"the reboot", MarkRebooting},
	} {
		if err := v.ExpectString(step.mark, time.Until(deadline(rctx))); err != nil {
			return r, fmt.Errorf("rescue: waiting for %s: %w", step.what, err)
		}
	}
	if err := v.WaitTimeout(time.Minute); err != nil {
		return r, fmt.Errorf("rescue: the VM did not end after the reboot: %w", err)
	}
	r.RescueVM = time.Since(tl.startTime())
	// Every line is complete now.
	r.ToReason, _ = tl.First(MarkReason)
	r.ToLease, _ = tl.First(MarkLease)
	r.ToDone, _ = tl.First(MarkInstalled)
	r.ToFirst, _ = tl.FirstWrite()
	for _, l := range tl.Lines() {
		switch {
		case strings.Contains(l.Text, MarkReason) && r.Reason == "":
			r.Reason = strings.TrimSpace(l.Text[strings.Index(l.Text, MarkReason)+len(MarkReason):])
		case strings.Contains(l.Text, MarkInstalled):
			r.Summary = strings.TrimSpace(l.Text[strings.Index(l.Text, "lifeboat: ")+len("lifeboat: "):])
		}
	}
	for _, e := range tl.Events() {
		if e.Kind() == "done" {
			d, _ := e.Fields["duration_seconds"].(float64)
			r.Install = time.Duration(d * float64(time.Second))
		}
	}
	r.Requests = srv.Requests()

	// The board powers on from its disk alone.
	logf("powering the board on from its disk alone")
	tl2 := NewTimeline(o.Console)
	dopts := DeviceVM(r.Disk)
	dopts.Console = tl2
	dctx, dcancel := context.WithTimeout(ctx, o.Timeout)
	defer dcancel()
	d, err := vm.Start(dctx, dopts)
	if err != nil {
		return r, err
	}
	defer d.Kill()
	tl2.Restart()
	for _, step := range []struct{ what, mark string }{
		{"GRUB", GRUBMenu},
		{"the production system", Banner(p.Artifacts.Version)},
		{"the production system's boot ok", MsgBootOK},
	} {
		if err := d.ExpectString(step.mark, time.Until(deadline(dctx))); err != nil {
			return r, fmt.Errorf("device: waiting for %s: %w", step.what, err)
		}
	}
	// The production system powers off once it has booted.
	if err := d.WaitTimeout(time.Minute); err != nil {
		logf("the production system did not power off: %v", err)
	}
	r.DeviceBoot, _ = tl2.First(MsgBootOK)

	logf("checking the disk against the bundle with lifeboat verify")
	out, err := Verify(ctx, p.Bundle, p.Key.PubPath(), r.Disk)
	r.Verify = out
	if err != nil {
		return r, err
	}
	return r, nil
}

func deadline(ctx context.Context) time.Time {
	if d, ok := ctx.Deadline(); ok {
		return d
	}
	return time.Now().Add(time.Hour)
}

func (t *Timeline) startTime() time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.start
}
