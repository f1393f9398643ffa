package mtd

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Dev is an MTD character device (/dev/mtdN) opened as a Device. Reads
// and writes go through the kernel's mtdchar with ECC on, as nandwrite's.
type Dev struct {
	f    *os.File
	path string
	info Info
}

// mtdInfoUser is struct mtd_info_user (include/uapi/mtd/mtd-abi.h), 32
// bytes, as MEMGETINFO fills it.
type mtdInfoUser struct {
	Type      uint8
	_         [3]byte
	Flags     uint32
	Size      uint32
	EraseSize uint32
	WriteSize uint32
	OOBSize   uint32
	_         uint64
}

// eraseInfoUser64 is struct erase_info_user64.
type eraseInfoUser64 struct {
	Start  uint64
	Length uint64
}

// Open opens the MTD device name (a path, "mtdN", or an MTD name, see
// Lookup). With write, it fails with an error wrapping ErrReadOnly if the
// device cannot be written, before anything is.
func Open(name string, write bool) (*Dev, error) {
	path, err := Lookup(name)
	if err != nil {
		return nil, err
	}
	flag := os.O_RDONLY
	if write {
		flag = os.O_RDWR
	}
	f, err := os.OpenFile(path, flag, 0)
	if err != nil {
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return nil, fmt.Errorf("%w: %w", ErrNotFound, err)
		case errors.Is(err, fs.ErrPermission), errors.Is(err, unix.EROFS):
			return nil, fmt.Errorf("%w: %w", ErrReadOnly, err)
		}
		return nil, err
	}
	d := &Dev{f: f, path: path}
	var mi mtdInfoUser
	if err := d.ioctl(unix.MEMGETINFO, unsafe.Pointer(&mi)); err != nil {
		f.Close()
		return nil, fmt.Errorf("mtd: %s: MEMGETINFO: %w (not an MTD character device?)", path, err)
	}
	d.info = Info{
		Type: mi.Type, Flags: mi.Flags, Size: int64(mi.Size),
		EraseSize: int64(mi.EraseSize), WriteSize: int64(mi.WriteSize), OOBSize: int64(mi.OOBSize),
	}
	// MEMGETINFO's size is 32 bits; sysfs has the whole of it.
	if size, ok := sysfsSize(f); ok {
		d.info.Size = size
	}
	if !write {
		d.info.Flags &^= FlagWriteable
	} else if !d.info.Writable() {
		f.Close()
		return nil, fmt.Errorf("%w: %s (MTD_WRITEABLE is clear)", ErrReadOnly, path)
	}
	return d, nil
}

func sysfsSize(f *os.File) (int64, bool) {
	var st unix.Stat_t
	if unix.Fstat(int(f.Fd()), &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR {
		return 0, false
	}
	// /dev/mtdN has minor 2N (mtdNro is 2N+1).
	n := unix.Minor(uint64(st.Rdev)) / 2
	b, err := os.ReadFile(filepath.Join(SysClassMTD, fmt.Sprintf("mtd%d", n), "size"))
	if err != nil {
		return 0, false
	}
	size, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	return size, err == nil && size > 0
}

func (d *Dev) ioctl(req uint, arg unsafe.Pointer) error {
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, d.f.Fd(), uintptr(req), uintptr(arg)); e != 0 {
		return e
	}
	return nil
}

// Path is the device node.
func (d *Dev) Path() string { return d.path }

func (d *Dev) String() string { return d.path }

// Info implements Device.
func (d *Dev) Info() Info { return d.info }

// Erase implements Device (MEMERASE64).
func (d *Dev) Erase(off, n int64) error {
	e := eraseInfoUser64{Start: uint64(off), Length: uint64(n)}
	if err := d.ioctl(unix.MEMERASE64, unsafe.Pointer(&e)); err != nil {
		return &os.PathError{Op: fmt.Sprintf("MEMERASE64 %#x+%#x", off, n), Path: d.path, Err: err}
	}
	return nil
}

// IsBad implements Device (MEMGETBADBLOCK). Devices without bad blocks
// (NOR) report none.
func (d *Dev) IsBad(off int64) (bool, error) {
	r, _, e := unix.Syscall(unix.SYS_IOCTL, d.f.Fd(), uintptr(unix.MEMGETBADBLOCK), uintptr(unsafe.Pointer(&off)))
	if e == unix.EOPNOTSUPP {
		return false, nil
	}
	if e != 0 {
		return false, &os.PathError{Op: fmt.Sprintf("MEMGETBADBLOCK %#x", off), Path: d.path, Err: e}
	}
	return r > 0, nil
}

// MarkBad implements Device (MEMSETBADBLOCK).
func (d *Dev) MarkBad(off int64) error {
	if err := d.ioctl(unix.MEMSETBADBLOCK, unsafe.Pointer(&off)); err != nil {
		return &os.PathError{Op: fmt.Sprintf("MEMSETBADBLOCK %#x", off), Path: d.path, Err: err}
	}
	return nil
}

// ECCStats implements ECCStatser (ECCGETSTATS).
func (d *Dev) ECCStats() (ECCStats, error) {
	var s ECCStats
	if err := d.ioctl(unix.ECCGETSTATS, unsafe.Pointer(&s)); err != nil {
		return ECCStats{}, &os.PathError{Op: "ECCGETSTATS", Path: d.path, Err: err}
	}
	return s, nil
}

// ReadAt implements Device.
func (d *Dev) ReadAt(p []byte, off int64) (int, error) { return d.f.ReadAt(p, off) }

// WriteAt implements Device.
func (d *Dev) WriteAt(p []byte, off int64) (int, error) { return d.f.WriteAt(p, off) }

// Sync does nothing: writes to an MTD character device are done when
// the write returns (mtdchar has no fsync). Drivers with a cache of their
// own, like block2mtd, flush it when the device is closed.
func (d *Dev) Sync() error { return nil }

// Close closes the device; the driver syncs its cache, if it has one.
func (d *Dev) Close() error { return d.f.Close() }
