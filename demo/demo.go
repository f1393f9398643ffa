// Package demo builds the demo production system that Lifeboat installs in
// its main job and end-to-end tests: a BIOS PC (QEMU's x86_64 board) with a
// GPT disk, GRUB, a small production system and the rescue to fall back to.
//
// Build makes every image in a folder: the production initramfs (a static
// Go init, prodinit, with the modules its root needs), the root file
// system, the boot and rescue partitions, the GRUB environment block, and
// GRUB itself (mbr.img and core.img, made with grub-mkimage and patched the
// way grub-bios-setup would, since grub-install needs a real device). It
// also writes the bundle spec that installs all of it on a blank disk.
// AssembleDisk lays the same images out by hand, so a test can boot the
// result without the installer.
//
// Needs on the host: go, grub-mkimage with the i386-pc images (Debian
// grub-common, grub-pc-bin), mke2fs 1.43 or newer (e2fsprogs), and sgdisk
// (gdisk) for AssembleDisk. The kernel is any x86_64 bzImage with its
// modules folder and modules.dep (scripts/fetch-kernel.sh).
package demo

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Product is the demo production system's product name, in bundles and
// on its console.
const Product = "demo-os"

// Board is the board name the demo bundle is compatible with.
const Board = "qemu-x86_64"

// Console messages of the production system, for tests to wait for.
const (
	// MsgBootOK follows a root that mounted and held the right release.
	MsgBootOK = "production: boot ok"
	// MsgFailing is what a FailBoot build prints before it reboots.
	MsgFailing = "production: failing on purpose"
	// MsgBootFailed starts the message of a boot that went wrong.
	MsgBootFailed = "production: boot failed"
	// GRUBMenu is in GRUB's menu header on the serial console.
	GRUBMenu = "GNU GRUB"
)

// Banner is the first line the production system of version prints.
func Banner(version string) string { return Product + " " + version + " production: starting" }

// RootOK is the line the production system of version prints once its root
// file system holds the release it was built for.
func RootOK(version string) string { return Product + " " + version + " production: root ok" }

// Errors.
var (
	// ErrOptions reports missing or inconsistent Options.
	ErrOptions = errors.New("demo: bad options")
	// ErrGRUBImage reports a boot.img or core.img that cannot be patched.
	ErrGRUBImage = errors.New("demo: bad GRUB image")
	// ErrGRUBEnv reports variables that do not fit a GRUB environment block.
	ErrGRUBEnv = errors.New("demo: bad GRUB environment")
	// ErrModule reports a kernel module that cannot be resolved.
	ErrModule = errors.New("demo: kernel module not found")
	// ErrNoPartition reports a partition name that is not in Layout.
	ErrNoPartition = errors.New("demo: no such partition")
	// ErrTool reports a host program that failed or is missing.
	ErrTool = errors.New("demo: host tool failed")
)

// Options say what to build.
type Options struct {
	// KernelPath is the production kernel (an x86_64 bzImage).
	KernelPath string
	// ModulesDir is that kernel's lib/modules/KVER, with modules.dep.
	ModulesDir string
	// RescueKernel and RescueInitramfs are the rescue system the device
	// falls back to; they go on the rescue partition unchanged.
	RescueKernel    string
	RescueInitramfs string
	// OutDir receives the artifacts; it is created if needed.
	OutDir string

	// Version of the production system (default "1.0.0"); its root holds
	// it in /etc/demo-release and its init checks it.
	Version string
	// SecurityVersion goes into the bundle spec (anti-rollback).
	SecurityVersion uint64
	// FailBoot builds a production system that never marks its boot good:
	// it prints MsgFailing and reboots.
	FailBoot bool

	// Modules the production initramfs loads (default DefaultModules).
	Modules []string
	// Cmdline is the production kernel's command line (default
	// "console=ttyS0 quiet panic=-1 no_timer_check": QEMU under TCG on a
	// busy host fails the kernel's IO-APIC timer check).
	Cmdline string
	// RescueCmdline is the rescue kernel's (default "console=ttyS0
	// no_timer_check").
	RescueCmdline string
	// GRUBTimeout is the menu's timeout in seconds (default 1).
	GRUBTimeout int
	// RootfsFillMiB is how much stand-in content the root file system
	// carries, in MiB (default 24).
	RootfsFillMiB int
	// GRUBEnv are variables for the initial GRUB environment block;
	// nil means DefaultGRUBEnv.
	GRUBEnv map[string]string

	// GRUBDir holds boot.img and the i386-pc modules (default
	// DefaultGRUBDir).
	GRUBDir string
	// InitBinary is a prebuilt prodinit; empty builds it with go from
	// SourceDir (default: the module root above the working directory).
	InitBinary string
	SourceDir  string
}

// Artifacts are the files Build made, all in Dir.
type Artifacts struct {
	Dir             string
	Version         string
	SecurityVersion uint64
	FailBoot        bool

	Initramfs  string // the production initramfs (also inside Boot)
	InitBinary string // prodinit, for Options.InitBinary of another build
	Kernel     string // the production kernel, as given
	Rootfs     string // ext4 image for the rootfs partition
	Boot       string // ext2 image for the boot partition: vmlinuz, initrd.img
	Rescue     string // ext2 image for the rescue partition: grub/grub.cfg, rescue/
	GRUBEnv    string // GRUBEnvSize bytes for the grubenv partition
	MBR        string // MBRCodeSize bytes of GRUB boot code for disk offset 0
	Core       string // GRUB core.img for the bios-boot partition
	GRUBCfg    string // a copy of the grub.cfg inside Rescue
	Spec       string // bundle spec (YAML) installing all of the above

	// Images maps partition names to the image written there.
	Images map[string]string
}

func (o *Options) defaults() error {
	if o.Version == "" {
		o.Version = "1.0.0"
	}
	if len(o.Modules) == 0 {
		o.Modules = DefaultModules
	}
	if o.Cmdline == "" {
		o.Cmdline = "console=ttyS0 quiet panic=-1 no_timer_check"
	}
	if o.RescueCmdline == "" {
		o.RescueCmdline = "console=ttyS0 no_timer_check"
	}
	if o.GRUBTimeout == 0 {
		o.GRUBTimeout = 1
	}
	if o.RootfsFillMiB == 0 {
		o.RootfsFillMiB = 24
	}
	if o.GRUBDir == "" {
		o.GRUBDir = DefaultGRUBDir
	}
	var missing []string
	for name, v := range map[string]string{
		"KernelPath": o.KernelPath, "ModulesDir": o.ModulesDir, "RescueKernel": o.RescueKernel,
		"RescueInitramfs": o.RescueInitramfs, "OutDir": o.OutDir,
	} {
		if v == "" {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		return fmt.Errorf("%w: %s not set", ErrOptions, strings.Join(missing, ", "))
	}
	if strings.ContainsAny(o.Version, " \n\"'") {
		return fmt.Errorf("%w: version %q", ErrOptions, o.Version)
	}
	if o.InitBinary == "" && o.SourceDir == "" {
		dir, err := moduleRoot()
		if err != nil {
			return err
		}
		o.SourceDir = dir
	}
	return nil
}

// Build makes every artifact in o.OutDir. It takes a few seconds, most of
// it compiling prodinit and writing the root file system.
func Build(ctx context.Context, o Options) (*Artifacts, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(o.OutDir, 0o755); err != nil {
		return nil, err
	}
	out, err := filepath.Abs(o.OutDir)
	if err != nil {
		return nil, err
	}
	a := &Artifacts{
		Dir: out, Version: o.Version, SecurityVersion: o.SecurityVersion, FailBoot: o.FailBoot,
		Kernel:    o.KernelPath,
		Initramfs: filepath.Join(out, "initrd.img"),
		Rootfs:    filepath.Join(out, "rootfs.ext4"),
		Boot:      filepath.Join(out, "boot.ext2"),
		Rescue:    filepath.Join(out, "rescue.ext2"),
		GRUBEnv:   filepath.Join(out, "grubenv.ext2"),
		GRUBCfg:   filepath.Join(out, "grub.cfg"),
		Spec:      filepath.Join(out, "bundle.yaml"),
	}
	tmp, err := os.MkdirTemp(out, ".build-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)

	// The production initramfs.
	a.InitBinary = filepath.Join(out, "prodinit")
	if o.InitBinary == "" {
		if err := buildInit(ctx, o.SourceDir, a.InitBinary); err != nil {
			return nil, err
		}
	} else if src, _ := filepath.Abs(o.InitBinary); src != a.InitBinary {
		if err := copyFile(src, a.InitBinary, 0o755); err != nil {
			return nil, err
		}
	}
	if err := writeInitramfs(&o, a.InitBinary, a.Initramfs); err != nil {
		return nil, err
	}

	// The root file system.
	rootDir := filepath.Join(tmp, "rootfs")
	if err := stage(rootDir, rootfsFiles(&o), rootfsDirs); err != nil {
		return nil, err
	}
	if err := mkfs(ctx, "ext4", PartRootfs, rootDir, a.Rootfs, mustPart(PartRootfs).Size, 4096); err != nil {
		return nil, err
	}

	// The production boot partition.
	bootDir := filepath.Join(tmp, "boot")
	if err := stage(bootDir, []file{
		{path: "vmlinuz", src: o.KernelPath, mode: 0o644},
		{path: "initrd.img", src: a.Initramfs, mode: 0o644},
	}, nil); err != nil {
		return nil, err
	}
	if err := mkfs(ctx, "ext2", PartBoot, bootDir, a.Boot, mustPart(PartBoot).Size, 4096); err != nil {
		return nil, err
	}

	// The rescue partition: GRUB's configuration and the rescue system.
	cfg, err := renderGRUBCfg(&o)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(a.GRUBCfg, cfg, 0o644); err != nil {
		return nil, err
	}
	rescueDir := filepath.Join(tmp, "rescue")
	if err := stage(rescueDir, []file{
		{path: "grub/grub.cfg", data: cfg, mode: 0o644},
		{path: "rescue/vmlinuz", src: o.RescueKernel, mode: 0o644},
		{path: "rescue/initrd.img", src: o.RescueInitramfs, mode: 0o644},
	}, nil); err != nil {
		return nil, err
	}
	if err := mkfs(ctx, "ext2", PartRescue, rescueDir, a.Rescue, mustPart(PartRescue).Size, 4096); err != nil {
		return nil, err
	}

	// The GRUB environment and GRUB itself.
	if err := buildGRUBEnv(ctx, grubEnvVars(&o), filepath.Join(tmp, "grubenv"), a.GRUBEnv); err != nil {
		return nil, err
	}
	if a.MBR, a.Core, err = buildGRUB(ctx, o.GRUBDir, out); err != nil {
		return nil, err
	}
	a.Images = map[string]string{
		PartBIOSBoot: a.Core,
		PartRescue:   a.Rescue,
		PartGRUBEnv:  a.GRUBEnv,
		PartBoot:     a.Boot,
		PartRootfs:   a.Rootfs,
	}
	if err := writeSpec(a); err != nil {
		return nil, err
	}
	return a, nil
}

// moduleRoot finds the lifeboat module's folder above the working
// directory, for building prodinit from source.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.Contains(string(b), "module github.com/lifeboat-updater/lifeboat\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("%w: no lifeboat go.mod above the working directory: set SourceDir or InitBinary", ErrOptions)
		}
		dir = parent
	}
}

// run runs a host program and returns its output in the error if it fails.
func run(ctx context.Context, name string, args ...string) error {
	return runEnv(ctx, nil, name, args...)
}

func runEnv(ctx context.Context, env []string, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.WaitDelay = 5 * time.Second
	b, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%w: %s %s: %w: %s", ErrTool, name, strings.Join(args, " "), err, strings.TrimSpace(string(b)))
	}
	return nil
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
