package bootenv

import (
	"errors"
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// mtdInfoUser is the kernel's struct mtd_info_user (MEMGETINFO).
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

// eraseInfoUser64 is the kernel's struct erase_info_user64 (MEMERASE64).
type eraseInfoUser64 struct {
	Start  uint64
	Length uint64
}

// MTD is an MTD character device (/dev/mtdN) as a Medium.
type MTD struct {
	f    *os.File
	info mtdInfoUser
}

// OpenMTD opens an MTD character device read-write (read-only if that is
// all it allows) and reads its geometry.
func OpenMTD(path string) (*MTD, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		if f, err = os.Open(path); err != nil {
			return nil, err
		}
	}
	m := &MTD{f: f}
	if err := m.ioctl(unix.MEMGETINFO, unsafe.Pointer(&m.info)); err != nil {
		f.Close()
		return nil, &os.PathError{Op: "MEMGETINFO", Path: path, Err: err}
	}
	if m.info.EraseSize == 0 {
		f.Close()
		return nil, fmt.Errorf("%w: %s reports erase size 0", ErrConfig, path)
	}
	return m, nil
}

func (m *MTD) ioctl(req uint, arg unsafe.Pointer) error {
	_, err := m.ioctlRC(req, arg)
	return err
}

func (m *MTD) ioctlRC(req uint, arg unsafe.Pointer) (uintptr, error) {
	conn, err := m.f.SyscallConn()
	if err != nil {
		return 0, err
	}
	var rc uintptr
	var errno unix.Errno
	if err := conn.Control(func(fd uintptr) {
		rc, _, errno = unix.Syscall(unix.SYS_IOCTL, fd, uintptr(req), uintptr(arg))
	}); err != nil {
		return 0, err
	}
	if errno != 0 {
		return 0, errno
	}
	return rc, nil
}

// ReadAt reads from the flash.
func (m *MTD) ReadAt(p []byte, off int64) (int, error) { return m.f.ReadAt(p, off) }

// WriteAt programs the flash; the range must have been erased, except for
// clearing bits on NOR.
func (m *MTD) WriteAt(p []byte, off int64) (int, error) { return m.f.WriteAt(p, off) }

// EraseSize is the device's erase block size.
func (m *MTD) EraseSize() int64 { return int64(m.info.EraseSize) }

// NOR reports NOR flash, where the active/obsolete flag scheme applies.
func (m *MTD) NOR() bool { return m.info.Type == unix.MTD_NORFLASH }

// Erase erases whole blocks in [off, off+n). On NAND a bad block in the
// range is an error: the env's place is fixed, it is not moved past it.
func (m *MTD) Erase(off, n int64) error {
	es := m.EraseSize()
	if off%es != 0 || n%es != 0 {
		return fmt.Errorf("%w: erase %#x+%#x not aligned to %#x", ErrConfig, off, n, es)
	}
	for b := off; b < off+n; b += es {
		if m.info.Type == unix.MTD_NANDFLASH || m.info.Type == unix.MTD_MLCNANDFLASH {
			pos := b
			bad, err := m.ioctlRC(unix.MEMGETBADBLOCK, unsafe.Pointer(&pos))
			if err != nil {
				return &os.PathError{Op: "MEMGETBADBLOCK", Path: m.f.Name(), Err: err}
			}
			if bad != 0 {
				return fmt.Errorf("%w: %s block at %#x", ErrBadBlock, m.f.Name(), b)
			}
		}
		ei := eraseInfoUser64{Start: uint64(b), Length: uint64(es)}
		if err := m.ioctl(unix.MEMERASE64, unsafe.Pointer(&ei)); err != nil {
			return &os.PathError{Op: "MEMERASE64", Path: m.f.Name(), Err: err}
		}
	}
	return nil
}

// Sync flushes. mtdchar writes reach the driver synchronously and the
// device has no fsync (EINVAL), which is then not an error.
func (m *MTD) Sync() error {
	if err := m.f.Sync(); err != nil && !errors.Is(err, unix.EINVAL) {
		return err
	}
	return nil
}

// Close closes the device.
func (m *MTD) Close() error { return m.f.Close() }
