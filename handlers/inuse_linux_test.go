package handlers

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestInUse(t *testing.T) {
	// A fake sysfs: disk 8:0 with partitions 8:1 at [1 MiB, +10 MiB)
	// and 8:2 at [11 MiB, +20 MiB).
	sys := t.TempDir()
	disk := filepath.Join(sys, "devices", "sda")
	mk := func(dir string, files map[string]string) {
		os.MkdirAll(dir, 0o755)
		for n, v := range files {
			os.WriteFile(filepath.Join(dir, n), []byte(v+"\n"), 0o644)
		}
	}
	mk(disk, map[string]string{"dev": "8:0"})
	mk(filepath.Join(disk, "sda1"), map[string]string{"dev": "8:1", "start": "2048", "size": "20480"})
	mk(filepath.Join(disk, "sda2"), map[string]string{"dev": "8:2", "start": "22528", "size": "40960"})
	os.MkdirAll(filepath.Join(sys, "dev", "block"), 0o755)
	for l, target := range map[string]string{"8:0": disk, "8:1": filepath.Join(disk, "sda1"), "8:2": filepath.Join(disk, "sda2")} {
		os.Symlink(target, filepath.Join(sys, "dev", "block", l))
	}
	mounts := mountUsers(strings.NewReader(
		"22 27 0:21 / /proc rw - proc proc rw\n" +
			"27 1 8:2 / / rw,relatime - ext4 /dev/sda2 rw\n"))
	const mib = 1 << 20
	tests := []struct {
		name      string
		dev       uint64
		off, size int64
		want      string
	}{
		{"partition 1, free", unix.Mkdev(8, 0), mib, 10 * mib, ""},
		{"overlaps partition 2", unix.Mkdev(8, 0), 10 * mib, 2 * mib, "partition sda2 mounted at /"},
		{"whole disk", unix.Mkdev(8, 0), 0, 64 * mib, "partition sda2 mounted at /"},
		{"the mounted device itself", unix.Mkdev(8, 2), 0, mib, "mounted at /"},
		{"another disk", unix.Mkdev(8, 16), 0, 64 * mib, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := inUse(sys, tt.dev, tt.off, tt.size, mounts); got != tt.want {
				t.Errorf("inUse(%d:%d, %d, %d) = %q, want %q", unix.Major(tt.dev), unix.Minor(tt.dev), tt.off, tt.size, got, tt.want)
			}
		})
	}
}

// TestInUseRoot asks about the real device holding /, when there is one.
func TestInUseRoot(t *testing.T) {
	var st unix.Stat_t
	if err := unix.Stat("/", &st); err != nil {
		t.Fatal(err)
	}
	uevent, err := os.ReadFile(filepath.Join("/sys/dev/block", fmt.Sprintf("%d:%d", unix.Major(st.Dev), unix.Minor(st.Dev)), "uevent"))
	if err != nil {
		t.Skipf("/ is not on a block device: %v", err)
	}
	var dev string
	for _, l := range strings.Split(string(uevent), "\n") {
		if n, ok := strings.CutPrefix(l, "DEVNAME="); ok {
			dev = "/dev/" + n
		}
	}
	if _, err := os.Stat(dev); err != nil {
		t.Skipf("no device node for / (%q)", dev)
	}
	what, err := InUse(dev, 0, 1<<50)
	if err != nil || !strings.Contains(what, "mounted at /") {
		t.Errorf("InUse(%s) = %q, %v; want mounted at /", dev, what, err)
	}
	if what, err := InUse(os.Args[0], 0, 1); what != "" || err != nil {
		t.Errorf("InUse(regular file) = %q, %v; want nothing", what, err)
	}
}
