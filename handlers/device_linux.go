package handlers

import (
	"errors"
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

func blockGeometry(f *os.File) (size int64, sector int, err error) {
	var sz uint64
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, f.Fd(), unix.BLKGETSIZE64, uintptr(unsafe.Pointer(&sz))); e != 0 {
		return 0, 0, fmt.Errorf("BLKGETSIZE64: %w", e)
	}
	ss, err := unix.IoctlGetInt(int(f.Fd()), unix.BLKSSZGET)
	if err != nil {
		return 0, 0, fmt.Errorf("BLKSSZGET: %w", err)
	}
	return int64(sz), ss, nil
}

func blockReadOnly(f *os.File) (bool, error) {
	ro, err := unix.IoctlGetInt(int(f.Fd()), unix.BLKROGET)
	if err != nil {
		return false, fmt.Errorf("BLKROGET: %w", err)
	}
	return ro != 0, nil
}

func openDirect(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_RDWR|unix.O_DIRECT, 0)
}

func isReadOnlyFS(err error) bool { return errors.Is(err, unix.EROFS) }

func rangeIoctl(f *os.File, req uint, off, n int64) error {
	r := [2]uint64{uint64(off), uint64(n)}
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, f.Fd(), uintptr(req), uintptr(unsafe.Pointer(&r[0]))); e != 0 {
		return e
	}
	return nil
}

func zeroOut(f *os.File, off, n int64) error {
	return rangeIoctl(f, unix.BLKZEROOUT, off, n)
}

func discard(f *os.File, off, n int64) error {
	err := rangeIoctl(f, unix.BLKDISCARD, off, n)
	if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOTTY) {
		return fmt.Errorf("%w: BLKDISCARD on %s: %w", ErrNotSupported, f.Name(), err)
	}
	if err != nil {
		return fmt.Errorf("BLKDISCARD on %s: %w", f.Name(), err)
	}
	return nil
}

func punchHole(f *os.File, off, n int64) error {
	err := unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, n)
	if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOSYS) {
		return fmt.Errorf("%w: punching a hole in %s: %w", ErrNotSupported, f.Name(), err)
	}
	if err != nil {
		return fmt.Errorf("punching a hole in %s: %w", f.Name(), err)
	}
	return nil
}

func flushBuffers(f *os.File) error {
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, f.Fd(), unix.BLKFLSBUF, 0); e != 0 {
		return e
	}
	return nil
}

func fadviseDontNeed(f *os.File, off, n int64) error {
	return unix.Fadvise(int(f.Fd()), off, n, unix.FADV_DONTNEED)
}
