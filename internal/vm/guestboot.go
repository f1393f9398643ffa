package vm

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lifeboat-updater/lifeboat/initramfs"
)

// GuestAppend starts the kernel command line of every test guest: the
// serial console the harness reads, a reboot on panic (which ends QEMU,
// see Options.AllowReboot), and no watchdog, which a test guest does not
// feed.
const GuestAppend = "console=ttyS0 panic=-1 lifeboat.watchdog=off"

// GuestOptions describe a test guest: a PID 1 program made with package
// internal/vm/guest, in an initramfs for the pinned Debian kernel.
type GuestOptions struct {
	// Image is the guest's initramfs: Init (the PID 1's package, such as
	// "./testdata/mtdinit"), Modules, BoardProfile, Keys, Files.
	// KernelDir and KVer (the pinned kernel's), Format (LZ4, which
	// builds fastest) and Output are filled in.
	Image initramfs.Options
	// Args are kernel command line arguments after GuestAppend, such as
	// the guest's "lifeboat.NAME=VALUE" parameters.
	Args string
	// VM is the machine: drives, memory, a console file. Kernel, Initrd
	// and Append are filled in.
	VM Options
}

// Guest is a built test guest, which can be booted more than once.
type Guest struct {
	Kernel Kernel
	Initrd string
}

// BuildGuest builds the initramfs of a test guest and logs what it made
// and how long that took. It skips the test where no Debian kernel can
// be had (DebianKernel).
func BuildGuest(t testing.TB, o GuestOptions) Guest {
	t.Helper()
	k := DebianKernel(t)
	opt := o.Image
	opt.KernelDir, opt.KVer, opt.Format = k.Root, k.KVer, initramfs.LZ4
	opt.Output = filepath.Join(t.TempDir(), filepath.Base(opt.Init)+".cpio.lz4")
	start := time.Now()
	res, err := initramfs.Build(context.Background(), opt)
	if err != nil {
		t.Fatalf("initramfs.Build(%s) = %v", opt.Init, err)
	}
	t.Logf("built in %v: %s", time.Since(start).Round(time.Millisecond), res)
	return Guest{Kernel: k, Initrd: res.Output}
}

// Boot starts the guest for the test (StartT) with the kernel command line
// GuestAppend and args, on the machine o describes.
func (g Guest) Boot(t testing.TB, args string, o Options) *VM {
	t.Helper()
	o.Kernel, o.Initrd = g.Kernel.Image(), g.Initrd
	o.Append = strings.TrimSpace(GuestAppend + " " + args)
	return StartT(t, o)
}

// BootGuest builds a test guest and starts it. Collect what it reports
// with GuestResults.
func BootGuest(t testing.TB, o GuestOptions) *VM {
	t.Helper()
	return BuildGuest(t, o).Boot(t, o.Args, o.VM)
}
