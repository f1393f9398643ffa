package partitions

import (
	"fmt"
	"os"
)

// ReadDevice reads the partition table of the disk at path: a whole-disk
// block device, read in its logical sector size (512, or 4096 on 4Kn eMMC,
// NVMe and loop devices made so), or a disk image file, read in 512-byte
// sectors. Errors are Read's (ErrNoTable for blank storage), or ErrDevice
// wrapping why the disk cannot be read.
func ReadDevice(path string) (*Layout, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrDevice, err)
	}
	defer f.Close()
	g, err := geometry(f, "/sys")
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrDevice, path, err)
	}
	l, err := Read(f, g.size, g.sectorSize)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return l, nil
}
