package bootenv

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/lifeboat-updater/lifeboat/handlers/mtd"
	"golang.org/x/sys/unix"
)

// MTD is an MTD character device (/dev/mtdN) as a Medium. The device
// access is package mtd's; MTD adds what the env needs on top of it: a
// read-only fallback, the NOR check and bad blocks as errors.
type MTD struct {
	dev  *mtd.Dev
	info mtd.Info
}

// OpenMTD opens an MTD character device read-write (read-only if that is
// all it allows) and reads its geometry.
func OpenMTD(path string) (*MTD, error) {
	// mtd.Open takes MTD names too; path is a path, even a relative one.
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	dev, err := mtd.Open(abs, true)
	if errors.Is(err, mtd.ErrReadOnly) {
		dev, err = mtd.Open(abs, false)
	}
	if err != nil {
		return nil, openMTDError(path, err)
	}
	m := &MTD{dev: dev, info: dev.Info()}
	if m.info.EraseSize == 0 {
		dev.Close()
		return nil, fmt.Errorf("%w: %s reports erase size 0", ErrConfig, path)
	}
	return m, nil
}

// openMTDError keeps the error shapes callers know: an open failure is
// the open's *os.PathError, and a device that answers no MEMGETINFO (not
// an MTD) a *os.PathError with Op "MEMGETINFO".
func openMTDError(path string, err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe
	}
	var errno unix.Errno
	if errors.As(err, &errno) {
		return &os.PathError{Op: "MEMGETINFO", Path: path, Err: errno}
	}
	return err
}

// ReadAt reads from the flash.
func (m *MTD) ReadAt(p []byte, off int64) (int, error) { return m.dev.ReadAt(p, off) }

// WriteAt programs the flash; the range must have been erased, except for
// clearing bits on NOR.
func (m *MTD) WriteAt(p []byte, off int64) (int, error) { return m.dev.WriteAt(p, off) }

// EraseSize is the device's erase block size.
func (m *MTD) EraseSize() int64 { return m.info.EraseSize }

// NOR reports NOR flash, where the active/obsolete flag scheme applies.
func (m *MTD) NOR() bool { return m.info.Type == mtd.TypeNOR }

// Erase erases whole blocks in [off, off+n). On NAND a bad block in the
// range is an error: the env's place is fixed, it is not moved past it.
func (m *MTD) Erase(off, n int64) error {
	es := m.EraseSize()
	if off%es != 0 || n%es != 0 {
		return fmt.Errorf("%w: erase %#x+%#x not aligned to %#x", ErrConfig, off, n, es)
	}
	for b := off; b < off+n; b += es {
		if m.info.IsNAND() {
			bad, err := m.dev.IsBad(b)
			if err != nil {
				return err
			}
			if bad {
				return fmt.Errorf("%w: %s block at %#x", ErrBadBlock, m.dev.Path(), b)
			}
		}
		if err := m.dev.Erase(b, es); err != nil {
			return err
		}
	}
	return nil
}

// Sync flushes. mtdchar writes reach the driver synchronously.
func (m *MTD) Sync() error { return m.dev.Sync() }

// Close closes the device.
func (m *MTD) Close() error { return m.dev.Close() }
