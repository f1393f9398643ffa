package source

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// BundleDir and BundleExt say where a bundle sits on removable media: a
// file named *.lfb in a directory named lifeboat at the filesystem's root.
// Both names are matched without regard to case (FAT sticks written on
// other systems often carry upper-case names).
const (
	BundleDir = "lifeboat"
	BundleExt = ".lfb"
)

// Media finds a bundle on removable media: USB sticks, SD cards.
//
// It scans the block devices in SysBlock in name order. A disk is a
// candidate when sysfs calls it removable, when it hangs off a USB bus,
// or when its name matches one of Devices (for a board's SD slot, which
// sysfs does not call removable). A candidate's partitions are tried in
// order, or the whole disk when it has none (a "superfloppy" stick). Each
// one whose first bytes show vfat, exFAT, ext2/3/4 or ISO 9660 is mounted
// read-only (ext4 also with noload, so not even a journal replay writes to
// the medium) on a fresh directory under MountDir.
//
// The bundle is /lifeboat/*.lfb on the first filesystem that has one. If
// that directory holds several, the newest by modification time is taken
// (ties: the greatest name), and the choice is logged. The filesystem stays
// mounted while the bundle is open and is unmounted by Close.
type Media struct {
	// SysBlock is sysfs's block directory; "/sys/block" when empty.
	SysBlock string
	// DevDir holds the device nodes; "/dev" when empty.
	DevDir string
	// MountDir is where mount points are made; os.TempDir() when empty.
	MountDir string
	// Devices are more disk names to consider (path.Match patterns such
	// as "mmcblk1" or "loop*").
	Devices []string
	// Logf, if not nil, receives a line per device looked at.
	Logf func(format string, args ...any)

	// mount and unmount are the kernel's, replaced in tests.
	mount   func(dev, dir, fstype string, readOnly bool, data string) error
	unmount func(dir string) error
}

func (m *Media) String() string { return "usb" }

func (m *Media) logf(format string, args ...any) {
	if m.Logf != nil {
		m.Logf(format, args...)
	}
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// volume is a partition or whole disk with a known filesystem.
type volume struct {
	name   string // kernel name: sda1
	dev    string // device node: /dev/sda1
	fstype string // type to mount with
}

// Open mounts each candidate until one has a bundle and opens it.
func (m *Media) Open(ctx context.Context) (*Stream, error) {
	f, name, err := m.find(ctx)
	if err != nil {
		return nil, err
	}
	return &Stream{ReadCloser: f, Size: f.size, Name: name}, nil
}

// OpenReaderAt is Open for random access.
func (m *Media) OpenReaderAt(ctx context.Context) (ReaderAt, error) {
	f, _, err := m.find(ctx)
	if err != nil {
		return nil, err
	}
	return f, nil
}

func (m *Media) find(ctx context.Context) (*osFile, string, error) {
	vols, err := m.volumes()
	if err != nil {
		return nil, "", err
	}
	if len(vols) == 0 {
		return nil, "", fmt.Errorf("%w with a known filesystem", ErrNoMedia)
	}
	var errs []error
	for _, v := range vols {
		if err := ctx.Err(); err != nil {
			return nil, "", err
		}
		f, rel, err := m.tryVolume(v)
		if err == nil {
			return f, v.dev + ":" + rel, nil
		}
		m.logf("source: %s (%s): %v", v.dev, v.fstype, err)
		errs = append(errs, fmt.Errorf("%s: %w", v.dev, err))
	}
	return nil, "", fmt.Errorf("%w: no %s/*%s on removable media: %w", ErrNotFound, BundleDir, BundleExt, errors.Join(errs...))
}

// tryVolume mounts v and opens its bundle; the mount is undone on failure
// and by the returned file's Close.
func (m *Media) tryVolume(v volume) (*osFile, string, error) {
	mount, unmount := m.mount, m.unmount
	if mount == nil {
		mount, unmount = sysMount, sysUnmount
	}
	base := orDefault(m.MountDir, os.TempDir())
	dir, err := os.MkdirTemp(base, "lifeboat-media-")
	if err != nil {
		return nil, "", fmt.Errorf("mount point: %w", err)
	}
	data := ""
	if v.fstype == "ext4" {
		data = "noload"
	}
	if err := mount(v.dev, dir, v.fstype, true, data); err != nil {
		os.Remove(dir)
		return nil, "", err
	}
	cleanup := func() error {
		err := unmount(dir)
		if rerr := os.Remove(dir); err == nil {
			err = rerr
		}
		return err
	}
	rel, err := m.pick(dir)
	if err != nil {
		cleanup()
		return nil, "", err
	}
	f, err := (&File{Path: filepath.Join(dir, rel)}).open()
	if err != nil {
		cleanup()
		return nil, "", err
	}
	f.cleanup = cleanup
	return f, "/" + rel, nil
}

// pick chooses the bundle under the mounted root; it returns a path
// relative to root.
func (m *Media) pick(root string) (string, error) {
	ents, err := os.ReadDir(root)
	if err != nil {
		return "", err
	}
	dir := ""
	for _, e := range ents {
		if e.IsDir() && strings.EqualFold(e.Name(), BundleDir) {
			dir = e.Name()
			break
		}
	}
	if dir == "" {
		return "", fmt.Errorf("%w: no /%s directory", ErrNotFound, BundleDir)
	}
	ents, err = os.ReadDir(filepath.Join(root, dir))
	if err != nil {
		return "", err
	}
	type cand struct {
		name  string
		mtime int64
	}
	var cs []cand
	for _, e := range ents {
		if !e.Type().IsRegular() || !strings.EqualFold(filepath.Ext(e.Name()), BundleExt) {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue
		}
		cs = append(cs, cand{e.Name(), fi.ModTime().UnixNano()})
	}
	if len(cs) == 0 {
		return "", fmt.Errorf("%w: no *%s in /%s", ErrNotFound, BundleExt, dir)
	}
	sort.Slice(cs, func(i, j int) bool {
		if cs[i].mtime != cs[j].mtime {
			return cs[i].mtime > cs[j].mtime
		}
		return cs[i].name > cs[j].name
	})
	if len(cs) > 1 {
		var names []string
		for _, c := range cs {
			names = append(names, c.name)
		}
		m.logf("source: several bundles in /%s %v; taking the newest, %s", dir, names, cs[0].name)
	}
	return filepath.Join(dir, cs[0].name), nil
}

// volumes lists the mountable candidates, in order.
func (m *Media) volumes() ([]volume, error) {
	sysBlock := orDefault(m.SysBlock, "/sys/block")
	devDir := orDefault(m.DevDir, "/dev")
	disks, err := os.ReadDir(sysBlock)
	if err != nil {
		return nil, fmt.Errorf("source: %w", err)
	}
	var out []volume
	for _, d := range disks {
		disk := d.Name()
		dpath := filepath.Join(sysBlock, disk)
		why, ok := m.wanted(disk, dpath)
		if !ok {
			continue
		}
		if readInt(filepath.Join(dpath, "size")) <= 0 {
			m.logf("source: %s: %s, no medium", disk, why)
			continue
		}
		names := partitions(dpath)
		if len(names) == 0 {
			names = []string{disk}
		}
		for _, n := range names {
			dev := filepath.Join(devDir, n)
			fstype, err := sniffFile(dev)
			if err != nil {
				m.logf("source: %s: %v", dev, err)
				continue
			}
			if fstype == "" {
				m.logf("source: %s: no known filesystem", dev)
				continue
			}
			m.logf("source: %s: %s, %s", dev, why, fstype)
			out = append(out, volume{name: n, dev: dev, fstype: fstype})
		}
	}
	return out, nil
}

// wanted says whether a disk is a candidate, and why.
func (m *Media) wanted(disk, dpath string) (string, bool) {
	for _, p := range m.Devices {
		if ok, _ := filepath.Match(p, disk); ok {
			return "listed", true
		}
	}
	for _, prefix := range []string{"loop", "ram", "zram", "dm-", "md", "nbd", "mtdblock", "ubiblock"} {
		if strings.HasPrefix(disk, prefix) {
			return "", false
		}
	}
	if readInt(filepath.Join(dpath, "removable")) == 1 {
		return "removable", true
	}
	if target, err := filepath.EvalSymlinks(dpath); err == nil && strings.Contains(target, "/usb") {
		return "USB", true
	}
	return "", false
}

// partitions lists a disk's partitions from sysfs, by partition number.
func partitions(dpath string) []string {
	ents, err := os.ReadDir(dpath)
	if err != nil {
		return nil
	}
	type part struct {
		name string
		num  int64
	}
	var ps []part
	for _, e := range ents {
		n := readInt(filepath.Join(dpath, e.Name(), "partition"))
		if n > 0 {
			ps = append(ps, part{e.Name(), n})
		}
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i].num < ps[j].num })
	var out []string
	for _, p := range ps {
		out = append(out, p.name)
	}
	return out
}

// readInt reads a sysfs number; -1 when absent or not a number.
func readInt(path string) int64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return -1
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return -1
	}
	return n
}

// sniffSize is how much of a volume sniff needs (ISO 9660's volume
// descriptor is at 32 KiB).
const sniffSize = 0x8001 + 5

func sniffFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	buf := make([]byte, sniffSize)
	n, err := io.ReadFull(f, buf)
	if err != nil && err != io.ErrUnexpectedEOF {
		return "", err
	}
	return sniff(buf[:n]), nil
}

// sniff names the filesystem in the first bytes of a volume as mount(2)
// knows it, or "" when it is none of those Media mounts. Magic numbers
// alone, so that mounting never has to guess (and fill the kernel log with
// failed attempts).
func sniff(b []byte) string {
	has := func(off int, magic string) bool {
		return len(b) >= off+len(magic) && string(b[off:off+len(magic)]) == magic
	}
	switch {
	case has(3, "EXFAT   "):
		return "exfat"
	case isFAT(b):
		return "vfat"
	case len(b) >= 0x43a && binary.LittleEndian.Uint16(b[0x438:]) == 0xef53:
		return "ext4" // ext2 and ext3 too: the ext4 driver mounts them
	case has(0x8001, "CD001"):
		return "iso9660"
	}
	return ""
}

// isFAT checks a FAT boot sector: the signature, a sane BIOS parameter
// block, and the type string of FAT12/16 or FAT32.
func isFAT(b []byte) bool {
	if len(b) < 512 || b[510] != 0x55 || b[511] != 0xaa {
		return false
	}
	bps := binary.LittleEndian.Uint16(b[11:])
	spc := b[13]
	if bps < 512 || bps > 4096 || bps&(bps-1) != 0 || spc == 0 || spc&(spc-1) != 0 {
		return false
	}
	return bytes.HasPrefix(b[54:], []byte("FAT")) || bytes.HasPrefix(b[82:], []byte("FAT32"))
}
