//go:build !linux

package handlers

import (
	"fmt"
	"os"
)

// Block devices are only understood on Linux. Regular files work
// everywhere: their zeroing and discarding fall back to writing zeros.

func blockGeometry(f *os.File) (int64, int, error) {
	return 0, 0, fmt.Errorf("%w: block devices on this system", ErrNotSupported)
}

func blockReadOnly(f *os.File) (bool, error) { return false, nil }

func openDirect(path string) (*os.File, error) {
	return nil, fmt.Errorf("%w: O_DIRECT on this system", ErrNotSupported)
}

func isReadOnlyFS(err error) bool { return false }

func zeroOut(f *os.File, off, n int64) error { return ErrNotSupported }

func discard(f *os.File, off, n int64) error { return ErrNotSupported }

func punchHole(f *os.File, off, n int64) error { return ErrNotSupported }

func flushBuffers(f *os.File) error { return nil }

func fadviseDontNeed(f *os.File, off, n int64) error { return nil }

// InUse reports nothing on systems without /proc and /sys.
func InUse(path string, off, size int64) (string, error) { return "", nil }
