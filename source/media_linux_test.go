package source

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// These tests mount real filesystems from a disk image attached to a loop
// device. They need root and losetup, sgdisk, mkfs.ext4, mkfs.vfat and
// mcopy (Debian: util-linux, gdisk, e2fsprogs, dosfstools, mtools).

func needTools(t *testing.T, tools ...string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: attaches loop devices and mounts filesystems")
	}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s", tool)
		}
	}
}

func sh(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// attach attaches img to a free loop device with partition scanning and
// waits for the partition nodes; it returns the disk name (loopN).
func attach(t *testing.T, img string, parts int) string {
	t.Helper()
	dev := sh(t, "losetup", "--find", "--show", "--partscan", img)
	t.Cleanup(func() { exec.Command("losetup", "-d", dev).Run() })
	name := filepath.Base(dev)
	start := time.Now()
	partx := false
	for p := 1; p <= parts; p++ {
		node := fmt.Sprintf("%sp%d", dev, p)
		for {
			if _, err := os.Stat(node); err == nil {
				break
			}
			// A kernel built without partition table parsers (no
			// CONFIG_EFI_PARTITION) leaves the disk whole: partx
			// reads the table itself and adds the partitions.
			if !partx && time.Since(start) > 300*time.Millisecond {
				partx = true
				if out, err := exec.Command("partx", "-a", dev).CombinedOutput(); err != nil {
					t.Logf("partx -a %s: %v\n%s", dev, err, out)
				}
			}
			if time.Since(start) > 3*time.Second {
				t.Fatalf("%s did not appear", node)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return name
}

func mounted(t *testing.T, dir string) (bool, string) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 5 && f[4] == dir {
			return true, f[5]
		}
	}
	return false, ""
}

func kernelHas(fs string) bool {
	b, _ := os.ReadFile("/proc/filesystems")
	for _, line := range strings.Split(string(b), "\n") {
		if strings.TrimSpace(strings.TrimPrefix(line, "nodev")) == fs {
			return true
		}
	}
	return false
}

// TestMediaLoopPartitions: a GPT stick with a FAT partition (no bundle) and
// an ext4 partition holding two bundles; the newer one is read.
func TestMediaLoopPartitions(t *testing.T) {
	needTools(t, "losetup", "sgdisk", "mkfs.ext4", "mkfs.vfat", "mcopy")
	dir := t.TempDir()
	img := filepath.Join(dir, "stick.img")
	if err := os.WriteFile(img, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 48<<20); err != nil {
		t.Fatal(err)
	}
	sh(t, "sgdisk", "-n", "1:2048:+16M", "-t", "1:0700", "-n", "2:0:0", "-t", "2:8300", img)
	// Partition 1 at 1 MiB: FAT with a file but no bundle.
	sh(t, "mkfs.vfat", "--offset=2048", img, "16384")
	readme := filepath.Join(dir, "README.TXT")
	os.WriteFile(readme, []byte("no bundle here"), 0o644)
	sh(t, "mcopy", "-i", img+"@@1M", readme, "::/README.TXT")
	// Partition 2 at 17 MiB: ext4 with two bundles.
	tree := filepath.Join(dir, "tree")
	older, newer := content(200_000, 40), content(300_000, 41)
	os.MkdirAll(filepath.Join(tree, "lifeboat"), 0o755)
	os.WriteFile(filepath.Join(tree, "lifeboat/a-older.lfb"), older, 0o644)
	os.WriteFile(filepath.Join(tree, "lifeboat/b-newer.lfb"), newer, 0o644)
	os.Chtimes(filepath.Join(tree, "lifeboat/a-older.lfb"), time.Unix(1_700_000_000, 0), time.Unix(1_700_000_000, 0))
	os.Chtimes(filepath.Join(tree, "lifeboat/b-newer.lfb"), time.Unix(1_600_000_000, 0), time.Unix(1_750_000_000, 0))
	sh(t, "mkfs.ext4", "-q", "-F", "-E", fmt.Sprintf("offset=%d", 17<<20), "-d", tree, img, "30M")

	disk := attach(t, img, 2)
	var log logSink
	m := &Media{Devices: []string{disk}, MountDir: t.TempDir(), Logf: log.logf}
	st, err := m.Open(context.Background())
	if err != nil {
		t.Fatalf("Media.Open() = %v\nlog: %q", err, log.lines)
	}
	ents, _ := os.ReadDir(m.MountDir)
	if len(ents) != 1 {
		t.Fatalf("%d mount points while open, want 1", len(ents))
	}
	mp := filepath.Join(m.MountDir, ents[0].Name())
	if ok, opts := mounted(t, mp); !ok || !strings.HasPrefix(opts, "ro,") {
		t.Errorf("mount at %s: mounted %v, options %q; want read-only", mp, ok, opts)
	}
	got, err := io.ReadAll(st)
	if err != nil || !bytes.Equal(got, newer) {
		t.Errorf("read %d bytes, %v; want the newer bundle (%d bytes)", len(got), err, len(newer))
	}
	if want := "/dev/" + disk + "p2:/lifeboat/b-newer.lfb"; st.Name != want || st.Size != int64(len(newer)) {
		t.Errorf("Stream = %q, %d bytes; want %q, %d bytes", st.Name, st.Size, want, len(newer))
	}
	if err := st.Close(); err != nil {
		t.Errorf("Close() = %v", err)
	}
	if ok, _ := mounted(t, mp); ok {
		t.Errorf("%s still mounted after Close", mp)
	}
	if _, err := os.Stat(mp); !os.IsNotExist(err) {
		t.Errorf("mount point %s left behind", mp)
	}
	if !log.contains(disk + "p1: listed, vfat") {
		t.Errorf("FAT partition not seen: %q", log.lines)
	}

	// Random access to the same bundle.
	r, err := m.OpenReaderAt(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	p := make([]byte, 1000)
	if n, err := r.ReadAt(p, 123_456); n != 1000 || err != nil || !bytes.Equal(p, newer[123_456:124_456]) {
		t.Errorf("ReadAt(1000, 123456) = %d, %v", n, err)
	}
	r.Close()
	if ents, _ := os.ReadDir(m.MountDir); len(ents) != 0 {
		t.Errorf("mount points left after ReaderAt Close: %v", ents)
	}
}

// TestMediaLoopFAT: a stick formatted without a partition table, as many
// are, with the bundle written by mtools in upper case.
func TestMediaLoopFAT(t *testing.T) {
	needTools(t, "losetup", "mkfs.vfat", "mcopy", "mmd")
	if !kernelHas("vfat") {
		exec.Command("modprobe", "vfat").Run()
		if !kernelHas("vfat") {
			t.Skip("the running kernel has no vfat filesystem (not in /proc/filesystems, modprobe vfat failed)")
		}
	}
	dir := t.TempDir()
	img := filepath.Join(dir, "fat.img")
	os.WriteFile(img, nil, 0o644)
	os.Truncate(img, 16<<20)
	sh(t, "mkfs.vfat", img)
	data := content(100_000, 42)
	src := filepath.Join(dir, "UNIT.LFB")
	os.WriteFile(src, data, 0o644)
	sh(t, "mmd", "-i", img, "::/LIFEBOAT")
	sh(t, "mcopy", "-i", img, src, "::/LIFEBOAT/UNIT.LFB")

	disk := attach(t, img, 0)
	m := &Media{Devices: []string{disk}, MountDir: t.TempDir(), Logf: t.Logf}
	st, err := m.Open(context.Background())
	if err != nil {
		t.Fatalf("Media.Open() = %v", err)
	}
	defer st.Close()
	got, err := io.ReadAll(st)
	if err != nil || !bytes.Equal(got, data) {
		t.Errorf("read %d bytes, %v; want %d", len(got), err, len(data))
	}
}
