package source

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// Synthetic first bytes of each filesystem Media knows.
func fatSector(fat32 bool) []byte {
	b := make([]byte, sniffSize)
	binary.LittleEndian.PutUint16(b[11:], 512)
	b[13] = 8
	if fat32 {
		copy(b[82:], "FAT32   ")
	} else {
		copy(b[54:], "FAT16   ")
	}
	b[510], b[511] = 0x55, 0xaa
	return b
}

func extSector() []byte {
	b := make([]byte, sniffSize)
	binary.LittleEndian.PutUint16(b[0x438:], 0xef53)
	return b
}

func isoSector() []byte {
	b := make([]byte, sniffSize)
	copy(b[0x8001:], "CD001")
	return b
}

func exfatSector() []byte {
	b := make([]byte, sniffSize)
	copy(b[3:], "EXFAT   ")
	b[510], b[511] = 0x55, 0xaa
	return b
}

func TestSniff(t *testing.T) {
	mbr := make([]byte, sniffSize) // a partition table is not a filesystem
	mbr[510], mbr[511] = 0x55, 0xaa
	badFAT := fatSector(false)
	binary.LittleEndian.PutUint16(badFAT[11:], 513)
	for _, tt := range []struct {
		name string
		b    []byte
		want string
	}{
		{"FAT16", fatSector(false), "vfat"},
		{"FAT32", fatSector(true), "vfat"},
		{"ext", extSector(), "ext4"},
		{"ISO 9660", isoSector(), "iso9660"},
		{"exFAT", exfatSector(), "exfat"},
		{"MBR", mbr, ""},
		{"bad sector size", badFAT, ""},
		{"zeros", make([]byte, sniffSize), ""},
		{"short", []byte{1, 2, 3}, ""},
	} {
		if got := sniff(tt.b); got != tt.want {
			t.Errorf("sniff(%s) = %q, want %q", tt.name, got, tt.want)
		}
	}
}

// TestSniffRealImages checks sniff against images made by the reference tools.
func TestSniffRealImages(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range []struct {
		tool string
		args func(img string) []string
		size int64
		want string
	}{
		{"mkfs.vfat", func(img string) []string { return []string{img} }, 2 << 20, "vfat"},
		{"mkfs.vfat", func(img string) []string { return []string{"-F", "32", img} }, 40 << 20, "vfat"},
		{"mkfs.ext4", func(img string) []string { return []string{"-q", "-F", img} }, 4 << 20, "ext4"},
		{"mkfs.ext2", func(img string) []string { return []string{"-q", "-F", img} }, 4 << 20, "ext4"},
		{"mkfs.exfat", func(img string) []string { return []string{img} }, 4 << 20, "exfat"},
	} {
		if _, err := exec.LookPath(tt.tool); err != nil {
			t.Logf("%s not installed; skipping that image", tt.tool)
			continue
		}
		img := filepath.Join(dir, "img")
		os.Remove(img)
		if err := os.WriteFile(img, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		os.Truncate(img, tt.size)
		if out, err := exec.Command(tt.tool, tt.args(img)...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", tt.tool, err, out)
		}
		if got, err := sniffFile(img); got != tt.want || err != nil {
			t.Errorf("sniffFile(%s image) = %q, %v, want %q", tt.tool, got, err, tt.want)
		}
	}
}

// fakeBlock builds a sysfs tree and device files under a temp dir. Each
// volume's device file holds the given first bytes; its content, once
// "mounted", is the files map.
type fakeBlock struct {
	sys, dev string
	trees    map[string]map[string]string // device node -> file -> content
	mounts   map[string]string            // mount dir -> device node
	log      []string
}

func newFakeBlock(t *testing.T) *fakeBlock {
	root := t.TempDir()
	f := &fakeBlock{sys: filepath.Join(root, "sys/block"), dev: filepath.Join(root, "dev"),
		trees: map[string]map[string]string{}, mounts: map[string]string{}}
	os.MkdirAll(f.sys, 0o755)
	os.MkdirAll(f.dev, 0o755)
	return f
}

func write(t *testing.T, path, s string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

// disk adds a disk; parts maps partition numbers to first bytes (nil for
// none: then whole holds the disk's own first bytes).
func (f *fakeBlock) disk(t *testing.T, name string, removable bool, size string, whole []byte, parts ...[]byte) {
	d := filepath.Join(f.sys, name)
	r := "0"
	if removable {
		r = "1"
	}
	write(t, filepath.Join(d, "removable"), r)
	write(t, filepath.Join(d, "size"), size)
	write(t, filepath.Join(f.dev, name), string(whole))
	for i, p := range parts {
		pn := name + string(rune('1'+i))
		if strings.HasPrefix(name, "mmcblk") || strings.HasPrefix(name, "loop") {
			pn = name + "p" + string(rune('1'+i))
		}
		write(t, filepath.Join(d, pn, "partition"), string(rune('1'+i)))
		write(t, filepath.Join(f.dev, pn), string(p))
	}
}

func (f *fakeBlock) media(t *testing.T) *Media {
	m := &Media{SysBlock: f.sys, DevDir: f.dev, MountDir: t.TempDir(),
		Logf: func(format string, args ...any) { t.Logf(format, args...) }}
	m.mount = func(dev, dir, fstype string, ro bool, data string) error {
		f.log = append(f.log, "mount "+filepath.Base(dev)+" "+fstype+" "+data)
		if !ro {
			t.Errorf("mount %s read-write", dev)
		}
		tree, ok := f.trees[dev]
		if !ok {
			return errors.New("mount: wrong fs type, bad superblock")
		}
		for name, s := range tree {
			write(t, filepath.Join(dir, name), s)
			if mt, ok := strings.CutPrefix(s, "mtime:"); ok {
				sec := int64(mt[0]-'0') * 1000
				os.Chtimes(filepath.Join(dir, name), time.Unix(sec, 0), time.Unix(sec, 0))
			}
		}
		f.mounts[dir] = dev
		return nil
	}
	m.unmount = func(dir string) error {
		f.log = append(f.log, "unmount "+filepath.Base(f.mounts[dir]))
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			os.RemoveAll(filepath.Join(dir, e.Name()))
		}
		delete(f.mounts, dir)
		return nil
	}
	return m
}

func TestMediaScan(t *testing.T) {
	f := newFakeBlock(t)
	// sda: internal disk, not removable: never touched.
	f.disk(t, "sda", false, "1000", nil, extSector())
	// sdb: removable stick, FAT partition without a bundle, ext partition with three.
	f.disk(t, "sdb", true, "1000", nil, fatSector(true), make([]byte, sniffSize), extSector())
	f.trees[filepath.Join(f.dev, "sdb1")] = map[string]string{"README.txt": "hello"}
	f.trees[filepath.Join(f.dev, "sdb3")] = map[string]string{
		"LifeBoat/old.lfb":   "mtime:1 old",
		"LifeBoat/NEW.LFB":   "mtime:5 new",
		"LifeBoat/also.lfb":  "mtime:3 also",
		"LifeBoat/notes.txt": "mtime:9 not a bundle",
		"lifeboat.lfb":       "not in the directory",
	}
	// sdc: empty card reader slot.
	f.disk(t, "sdc", true, "0", nil)
	// loop0: a loop device is skipped unless listed.
	f.disk(t, "loop0", false, "1000", extSector())
	f.trees[filepath.Join(f.dev, "loop0")] = map[string]string{"lifeboat/l.lfb": "loop"}

	m := f.media(t)
	vols, err := m.volumes()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, v := range vols {
		names = append(names, v.name+":"+v.fstype)
	}
	if diff := cmp.Diff([]string{"sdb1:vfat", "sdb3:ext4"}, names); diff != "" {
		t.Errorf("volumes() mismatch (-want +got):\n%s", diff)
	}

	st, err := m.Open(context.Background())
	if err != nil {
		t.Fatalf("Media.Open() = %v", err)
	}
	b, _ := io.ReadAll(st)
	if string(b) != "mtime:5 new" {
		t.Errorf("Media.Open() read %q, want the newest bundle", b)
	}
	if want := filepath.Join(f.dev, "sdb3") + ":/LifeBoat/NEW.LFB"; st.Name != want || st.Size != int64(len(b)) {
		t.Errorf("Stream name %q size %d, want %q size %d", st.Name, st.Size, want, len(b))
	}
	if len(f.mounts) != 1 {
		t.Errorf("%d filesystems mounted while the bundle is open, want 1", len(f.mounts))
	}
	st.Close()
	if diff := cmp.Diff([]string{"mount sdb1 vfat ", "unmount sdb1", "mount sdb3 ext4 noload", "unmount sdb3"}, f.log); diff != "" {
		t.Errorf("mount calls mismatch (-want +got):\n%s", diff)
	}
	if ents, _ := os.ReadDir(m.MountDir); len(ents) != 0 {
		t.Errorf("mount points left behind: %v", ents)
	}

	// Listing a loop device makes it a candidate (whole disk: no partitions).
	m.Devices = []string{"loop*"}
	f.log = nil
	r, err := m.OpenReaderAt(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	if diff := cmp.Diff([]string{"mount loop0 ext4 noload", "unmount loop0"}, f.log); diff != "" {
		t.Errorf("with Devices=loop*: mount calls mismatch (-want +got):\n%s", diff)
	}
}

func TestMediaNothing(t *testing.T) {
	f := newFakeBlock(t)
	f.disk(t, "sda", false, "1000", nil, extSector())
	if _, err := f.media(t).Open(context.Background()); !errors.Is(err, ErrNoMedia) {
		t.Errorf("Open() without removable disks = %v, want ErrNoMedia", err)
	}

	// A stick without a bundle, and one that will not mount.
	f.disk(t, "sdb", true, "1000", fatSector(false))
	f.trees[filepath.Join(f.dev, "sdb")] = map[string]string{"lifeboat/readme.txt": "x"}
	f.disk(t, "sdc", true, "1000", isoSector())
	m := f.media(t)
	_, err := m.Open(context.Background())
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "sdb") || !strings.Contains(err.Error(), "bad superblock") {
		t.Errorf("Open() = %v, want ErrNotFound naming each volume's problem", err)
	}
	if len(f.mounts) != 0 {
		t.Errorf("%d filesystems left mounted", len(f.mounts))
	}
}

func TestMediaUSBDetection(t *testing.T) {
	root := t.TempDir()
	// /sys/block entries are symlinks into /sys/devices; a USB disk's path
	// runs through a usb bus.
	usbDev := filepath.Join(root, "devices/pci0000:00/0000:00:14.0/usb1/1-1/1-1:1.0/host2/target2:0:0/2:0:0:0/block/sdd")
	write(t, filepath.Join(usbDev, "removable"), "0")
	write(t, filepath.Join(usbDev, "size"), "1000")
	os.MkdirAll(filepath.Join(root, "block"), 0o755)
	if err := os.Symlink(usbDev, filepath.Join(root, "block/sdd")); err != nil {
		t.Fatal(err)
	}
	m := &Media{SysBlock: filepath.Join(root, "block")}
	if why, ok := m.wanted("sdd", filepath.Join(root, "block/sdd")); !ok || why != "USB" {
		t.Errorf("wanted(USB disk) = %q, %v, want USB, true", why, ok)
	}
	m.Devices = []string{"mmcblk1"}
	if why, ok := m.wanted("mmcblk1", filepath.Join(root, "block/mmcblk1")); !ok || why != "listed" {
		t.Errorf("wanted(listed SD card) = %q, %v, want listed, true", why, ok)
	}
	if _, ok := m.wanted("mmcblk0", filepath.Join(root, "block/mmcblk0")); ok {
		t.Error("wanted(unlisted internal eMMC) = true")
	}
}
