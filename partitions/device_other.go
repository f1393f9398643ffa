//go:build !linux

package partitions

import (
	"errors"
	"fmt"
	"os"
)

type diskGeometry struct {
	size       int64
	sectorSize int
	block      bool
}

// geometry supports image files only: block device ioctls are Linux's.
func geometry(f *os.File, _ string) (diskGeometry, error) {
	fi, err := f.Stat()
	if err != nil {
		return diskGeometry{}, err
	}
	if !fi.Mode().IsRegular() {
		return diskGeometry{}, fmt.Errorf("only image files are supported on this system, not %s", fi.Mode().Type())
	}
	return diskGeometry{size: fi.Size(), sectorSize: 512}, nil
}

func syncKernel(*os.File, *Layout, string, bool) error {
	return errors.ErrUnsupported
}
