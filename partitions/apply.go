package partitions

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/lifeboat-updater/lifeboat/bundle"
)

// Result is what Apply did, or what Check found.
type Result struct {
	// Wrote is true when Apply wrote a new table.
	Wrote bool
	// Layout is the table on the disk after Apply, every GUID filled in;
	// after Check, the table Apply would leave (GUIDs still to be chosen
	// at random are empty). Find maps partition names to byte ranges in
	// it.
	Layout *Layout
	// Before is the table that was on the disk; nil if there was none or
	// it was unusable.
	Before *Layout
	// Differences says why the table is (or would be) written; empty when
	// the disk already held it.
	Differences []string
}

// Apply makes the disk at dev (an image file or a whole-disk block device)
// hold the table t. It learns the disk's size and logical sector size,
// resolves t, reads the table on the disk, and writes only if Diff finds
// a difference, so repeated installs leave the table alone. After writing
// it syncs and, on a block device, makes the kernel read the new table
// (BLKRRPART; when a partition is in use, BLKPG for the partitions that
// changed). When the table already matches, Apply still makes the
// kernel's partitions match it. If only that last part fails, Apply
// returns a valid Result with an error wrapping ErrReread.
func Apply(dev string, t *bundle.Table) (Result, error) {
	return apply(dev, t, true)
}

// Check is Apply without writing: a dry run. Print Result.Layout for the
// table and Result.Differences for what would change.
func Check(dev string, t *bundle.Table) (Result, error) {
	return apply(dev, t, false)
}

func apply(dev string, t *bundle.Table, write bool) (Result, error) {
	flag := os.O_RDONLY
	if write {
		flag = os.O_RDWR
	}
	f, err := os.OpenFile(dev, flag, 0)
	if err != nil {
		return Result{}, fmt.Errorf("%w: %w", ErrDevice, err)
	}
	defer f.Close()
	g, err := geometry(f, "/sys")
	if err != nil {
		return Result{}, fmt.Errorf("%w: %s: %w", ErrDevice, dev, err)
	}
	res, err := Plan(f, g.size, g.sectorSize, t)
	if err != nil || !write {
		return res, err
	}
	if len(res.Differences) > 0 {
		if err := Write(f, res.Layout); err != nil {
			return res, fmt.Errorf("%s: %w", dev, err)
		}
		res.Wrote = true
		if err := f.Sync(); err != nil {
			return res, fmt.Errorf("partitions: %s: sync: %w", dev, err)
		}
	}
	if g.block {
		// Also when nothing was written: an earlier Apply may have left
		// the kernel with the old partitions (ErrReread), and the disk
		// matching now must not hide that.
		if err := syncKernel(f, res.Layout, "/sys", res.Wrote); err != nil {
			return res, fmt.Errorf("%s: %w", dev, err)
		}
	}
	return res, nil
}

// Plan resolves t for the disk r, of size bytes in sectors of sectorSize
// bytes, and compares it with the table r holds: Check without a device
// path, for images of any sector size and for tests. The Result's
// Layout takes the disk's GUIDs where t leaves them empty (see Diff).
func Plan(r io.ReaderAt, size int64, sectorSize int, t *bundle.Table) (Result, error) {
	want, err := Resolve(t, size, sectorSize)
	if err != nil {
		return Result{}, err
	}
	have, err := Read(r, size, sectorSize)
	var res Result
	switch {
	case err == nil:
		res.Before = have
		res.Differences = Diff(want, have)
		adopt(want, have)
	case errors.Is(err, ErrNoTable):
		res.Differences = Diff(want, nil) // blank: a new table
	case overwritable(err):
		res.Differences = []string{"the table on the disk is damaged (" + strings.TrimPrefix(err.Error(), "partitions: ") + ")"}
	default:
		return Result{}, err
	}
	res.Layout = want
	return res, nil
}
