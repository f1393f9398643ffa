// Command prodinit is the init (PID 1) of the demo production system that
// Lifeboat installs in its demo and end-to-end tests. It stands for a real
// product's boot: it loads the modules its root needs, mounts the root
// partition read-only, checks that the root holds the release it was built
// for, marks the boot good and powers off, so a test that boots it ends.
//
// What it is comes from /etc/demo/init.conf in its initramfs (key=value
// lines: product, version, fail_boot), and the modules to load, in order,
// from /etc/demo/modules. The messages it prints are what tests wait for:
//
//	demo-os 1.0.0 production: starting
//	demo-os 1.0.0 production: root ok
//	production: boot ok
//
// A build with fail_boot=1 prints "production: failing on purpose" and
// reboots without marking the boot good, as a broken release would.
//
// As PID 1 it never exits, never panics and never calls log.Fatal: an init
// that dies panics the kernel. Every path ends in power-off or reboot.
package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/lifeboat-updater/lifeboat/bootenv"
)

const (
	confPath    = "/etc/demo/init.conf"
	modulesPath = "/etc/demo/modules"
	rootMount   = "/root"
	releaseFile = "etc/demo-release"
	// rootPartName is the GPT partition name of the root filesystem.
	rootPartName = "rootfs"
	// The boot counter: the GRUB environment block's partition, its
	// offset in it and the variable (demo.PartGRUBEnv,
	// demo.GRUBEnvOffset, demo.GRUBCounter; this program does not import
	// the demo package, which would bring the image builders with it).
	grubEnvPartName = "grubenv"
	grubEnvOffset   = 54 * 1024
	bootCounter     = "boot_count"
	// rootWait bounds how long the root device may take to appear: the
	// virtio disk shows up a few ms after its module loads, a slow USB or
	// MMC device much later.
	rootWait = 10 * time.Second
)

// config is what the initramfs says this production system is.
type config struct {
	product  string
	version  string
	failBoot bool
}

func main() {
	con := console()
	err := run(con)
	switch {
	case errors.Is(err, errFailOnPurpose):
		fmt.Fprintln(con, "production: failing on purpose")
		end(con, unix.LINUX_REBOOT_CMD_RESTART)
	case err != nil:
		fmt.Fprintf(con, "production: boot failed: %v\n", err)
		end(con, unix.LINUX_REBOOT_CMD_RESTART)
	default:
		end(con, unix.LINUX_REBOOT_CMD_POWER_OFF)
	}
}

var errFailOnPurpose = errors.New("failing on purpose")

func run(con *os.File) error {
	if err := earlyMounts(); err != nil {
		// Go on: with no /proc or /sys the steps below say what is missing.
		fmt.Fprintf(con, "production: %v\n", err)
	}
	cfg, err := readConfig(confPath)
	if err != nil {
		return err
	}
	name := cfg.product + " " + cfg.version + " production"
	fmt.Fprintf(con, "%s: starting\n", name)
	if cfg.failBoot {
		return errFailOnPurpose
	}
	if err := loadModules(modulesPath); err != nil {
		return err
	}
	dev, err := findRoot(readCmdline(), rootWait)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(rootMount, 0o755); err != nil {
		return err
	}
	if err := unix.Mount(dev, rootMount, "ext4", unix.MS_RDONLY, ""); err != nil {
		return fmt.Errorf("mount %s read-only: %w", dev, err)
	}
	b, err := os.ReadFile(filepath.Join(rootMount, releaseFile))
	if err != nil {
		return fmt.Errorf("root %s: %w", dev, err)
	}
	if got := strings.TrimSpace(string(b)); got != cfg.version {
		return fmt.Errorf("root %s holds release %q, want %q", dev, got, cfg.version)
	}
	fmt.Fprintf(con, "%s: root ok\n", name)
	if err := markGood(con); err != nil {
		return err
	}
	return nil
}

// markGood tells the bootloader that this boot succeeded, so that its boot
// counter does not fall back to the rescue: GRUB counted this boot in
// boot_count (demo.GRUBCounter) before it started the kernel, and a boot
// that gets here sets it back to 0. The GRUB environment block lies at a
// fixed offset (demo.GRUBEnvOffset) in the partition named "grubenv" and
// is rewritten in place, as GRUB's save_env does; nothing is mounted.
// Only the counter is written, and only when it is not 0 already.
func markGood(con *os.File) error {
	dev, ok := lookupRoot("PARTLABEL=" + grubEnvPartName)
	if !ok {
		return fmt.Errorf("marking the boot good: no partition %s", grubEnvPartName)
	}
	st := bootenv.NewGRUBStoreAt(dev, grubEnvOffset)
	if err := st.Apply(map[string]string{bootCounter: "0"}, nil); err != nil {
		return fmt.Errorf("marking the boot good: %w", err)
	}
	fmt.Fprintln(con, "production: boot ok")
	return nil
}

// console is where messages go: the kernel gives init /dev/console as
// stdout when the initramfs has it; open it again in case it did not.
func console() *os.File {
	if f, err := os.OpenFile("/dev/console", os.O_WRONLY, 0); err == nil {
		return f
	}
	return os.Stdout
}

func earlyMounts() error {
	var errs []error
	for _, m := range []struct{ dir, fstype string }{
		{"/proc", "proc"},
		{"/sys", "sysfs"},
		{"/dev", "devtmpfs"},
	} {
		if err := os.MkdirAll(m.dir, 0o755); err != nil {
			errs = append(errs, err)
			continue
		}
		if err := unix.Mount(m.fstype, m.dir, m.fstype, unix.MS_NOSUID|unix.MS_NOEXEC, ""); err != nil && !errors.Is(err, unix.EBUSY) {
			errs = append(errs, fmt.Errorf("mount %s: %w", m.dir, err))
		}
	}
	return errors.Join(errs...)
}

func readConfig(path string) (config, error) {
	cfg := config{product: "demo-os", version: "unknown"}
	b, err := os.ReadFile(path)
	if err != nil {
		return cfg, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), "=")
		if !ok {
			continue
		}
		switch k {
		case "product":
			cfg.product = v
		case "version":
			cfg.version = v
		case "fail_boot":
			cfg.failBoot = v == "1" || v == "true"
		}
	}
	return cfg, nil
}

// loadModules loads the listed module files in order; the list is already
// sorted so that each module follows what it needs.
func loadModules(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		p := strings.TrimSpace(s.Text())
		if p == "" || strings.HasPrefix(p, "#") {
			continue
		}
		if err := loadModule(p); err != nil {
			return err
		}
	}
	return s.Err()
}

func loadModule(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	err = unix.FinitModule(int(f.Fd()), "", 0)
	if err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("load module %s: %w", path, err)
	}
	return nil
}

func readCmdline() string {
	b, _ := os.ReadFile("/proc/cmdline")
	return string(b)
}

// findRoot waits for the root partition: root= on the kernel command line
// (a device path or PARTLABEL=NAME), else the GPT partition named rootfs.
func findRoot(cmdline string, wait time.Duration) (string, error) {
	want := "PARTLABEL=" + rootPartName
	for _, f := range strings.Fields(cmdline) {
		if v, ok := strings.CutPrefix(f, "root="); ok {
			want = v
		}
	}
	deadline := time.Now().Add(wait)
	for {
		if dev, ok := lookupRoot(want); ok {
			return dev, nil
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("no root device %s after %s", want, wait)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func lookupRoot(want string) (string, bool) {
	label, byLabel := strings.CutPrefix(want, "PARTLABEL=")
	if !byLabel {
		_, err := os.Stat(want)
		return want, err == nil
	}
	ueventFiles, _ := filepath.Glob("/sys/class/block/*/uevent")
	for _, p := range ueventFiles {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		var name, part string
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "DEVNAME="); ok {
				name = v
			}
			if v, ok := strings.CutPrefix(line, "PARTNAME="); ok {
				part = v
			}
		}
		if part == label && name != "" {
			dev := "/dev/" + name
			if _, err := os.Stat(dev); err == nil {
				return dev, true
			}
		}
	}
	return "", false
}

// end syncs and powers off or reboots. reboot(2) does not return when it
// works; if it fails, wait forever rather than exit and panic the kernel.
func end(con *os.File, cmd int) {
	unix.Sync()
	if err := unix.Reboot(cmd); err != nil {
		fmt.Fprintf(con, "production: reboot: %v\n", err)
	}
	for {
		time.Sleep(time.Hour)
	}
}
