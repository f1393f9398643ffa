package partitions

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

type diskGeometry struct {
	size       int64
	sectorSize int
	block      bool
}

// geometry returns the size and logical sector size of a block device, or
// the size of a regular file with 512-byte sectors. It refuses a partition
// (sysfs, mounted at sysfs, says which block devices are): a table written
// into a partition is a board profile's mistake, not a request.
func geometry(f *os.File, sysfs string) (diskGeometry, error) {
	fi, err := f.Stat()
	if err != nil {
		return diskGeometry{}, err
	}
	switch {
	case fi.Mode().IsRegular():
		return diskGeometry{size: fi.Size(), sectorSize: 512}, nil
	case fi.Mode()&os.ModeDevice != 0 && fi.Mode()&os.ModeCharDevice == 0:
	default:
		return diskGeometry{}, fmt.Errorf("not a regular file or block device (%s)", fi.Mode().Type())
	}
	if dir, err := sysfsDir(f, sysfs); err == nil {
		if _, err := os.Stat(filepath.Join(dir, "partition")); err == nil {
			return diskGeometry{}, errors.New("a partition, not a whole disk")
		}
	}
	fd := int(f.Fd())
	size, err := unix.IoctlGetUint64(fd, unix.BLKGETSIZE64)
	if err != nil {
		return diskGeometry{}, fmt.Errorf("BLKGETSIZE64: %w", err)
	}
	ss, err := unix.IoctlGetInt(fd, unix.BLKSSZGET)
	if err != nil {
		return diskGeometry{}, fmt.Errorf("BLKSSZGET: %w", err)
	}
	return diskGeometry{size: int64(size), sectorSize: ss, block: true}, nil
}

// syncKernel makes the kernel's partitions of the disk f match l: always
// after a write, otherwise only if sysfs shows that they differ.
func syncKernel(f *os.File, l *Layout, sysfs string, wrote bool) error {
	if !wrote {
		kernel, err := kernelPartitions(f, sysfs)
		if err != nil || sameAsKernel(l, kernel) {
			return nil // nothing known to be stale
		}
		if err := reread(f, l, sysfs); err != nil && !errors.Is(err, unix.EINVAL) {
			return err
		}
		return nil
	}
	return reread(f, l, sysfs)
}

func sameAsKernel(l *Layout, kernel map[int]Partition) bool {
	if len(kernel) != len(l.Partitions) {
		return false
	}
	for _, p := range l.Partitions {
		k, ok := kernel[p.Number]
		if !ok || k.Start != p.Start || k.Size != p.Size {
			return false
		}
	}
	return true
}

// reread makes the kernel use the table now on the disk f. BLKRRPART
// fails with EBUSY while any partition of the disk is open or mounted;
// then each partition whose place changed is deleted and added again with
// BLKPG, which works as long as the partitions in use are not among them.
// BLKPG also serves when BLKRRPART succeeds but the kernel's partitions
// still differ: a trimmed kernel without CONFIG_EFI_PARTITION or
// CONFIG_MSDOS_PARTITION finds no partitions, or the wrong ones.
// sysfs is where sysfs is mounted ("/sys"), to learn the kernel's view.
func reread(f *os.File, l *Layout, sysfs string) error {
	fd := int(f.Fd())
	err := unix.IoctlSetInt(fd, unix.BLKRRPART, 0)
	switch {
	case err == nil:
		kernel, kerr := kernelPartitions(f, sysfs)
		if kerr != nil || sameAsKernel(l, kernel) {
			return nil // BLKRRPART is all we can do without sysfs
		}
		return reconcile(fd, l, kernel)
	case errors.Is(err, unix.EINVAL):
		return fmt.Errorf("%w: the device does not scan partitions (a partition rather than a whole disk, or a loop device without partscan): %w", ErrReread, err)
	case errors.Is(err, unix.EBUSY):
		kernel, kerr := kernelPartitions(f, sysfs)
		if kerr != nil {
			return fmt.Errorf("%w: BLKRRPART: %w; and the kernel's partitions are unknown: %w", ErrReread, err, kerr)
		}
		return reconcile(fd, l, kernel)
	default:
		return fmt.Errorf("%w: BLKRRPART: %w", ErrReread, err)
	}
}

// reconcile tells the kernel, with BLKPG, about each partition of l whose
// place differs from the kernel's partitions.
func reconcile(fd int, l *Layout, kernel map[int]Partition) error {
	want := map[int]Partition{}
	for _, p := range l.Partitions {
		want[p.Number] = p
	}
	var problems []error
	kept := map[int]bool{}
	for _, num := range slices.Sorted(maps.Keys(kernel)) {
		k := kernel[num]
		if w, ok := want[num]; ok && w.Start == k.Start && w.Size == k.Size {
			kept[num] = true
			continue
		}
		if err := blkpg(fd, unix.BLKPG_DEL_PARTITION, num, 0, 0); err != nil {
			kept[num] = true // still there: do not add over it
			if errors.Is(err, unix.EBUSY) {
				problems = append(problems, fmt.Errorf("partition %d is in use (mounted or open) and changes place", num))
			} else {
				problems = append(problems, fmt.Errorf("deleting partition %d: %w", num, err))
			}
		}
	}
	for _, p := range l.Partitions {
		if kept[p.Number] {
			continue
		}
		if err := blkpg(fd, unix.BLKPG_ADD_PARTITION, p.Number, p.Start, p.Size); err != nil {
			problems = append(problems, fmt.Errorf("adding partition %d: %w", p.Number, err))
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: %w; the kernel sees the new table after a reboot", ErrReread, errors.Join(problems...))
	}
	return nil
}

// kernelPartitions reads the kernel's current partitions of the disk f
// from sysfs: number → byte range. Sysfs counts in 512-byte units
// whatever the sector size.
func kernelPartitions(f *os.File, sysfs string) (map[int]Partition, error) {
	dir, err := sysfsDir(f, sysfs)
	if err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	parts := map[int]Partition{}
	for _, e := range entries {
		num, err := readSysInt(filepath.Join(dir, e.Name(), "partition"))
		if err != nil {
			continue // not a partition
		}
		start, err1 := readSysInt(filepath.Join(dir, e.Name(), "start"))
		size, err2 := readSysInt(filepath.Join(dir, e.Name(), "size"))
		if err := errors.Join(err1, err2); err != nil {
			return nil, err
		}
		parts[int(num)] = Partition{Number: int(num), Start: start * 512, Size: size * 512}
	}
	return parts, nil
}

// sysfsDir returns the sysfs directory of the block device f.
func sysfsDir(f *os.File, sysfs string) (string, error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return "", err
	}
	return filepath.Join(sysfs, "dev", "block", fmt.Sprintf("%d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))), nil
}

func readSysInt(path string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
}

func blkpg(fd, op, num int, start, size int64) error {
	p := unix.BlkpgPartition{Start: start, Length: size, Pno: int32(num)}
	arg := unix.BlkpgIoctlArg{
		Op:      int32(op),
		Datalen: int32(unsafe.Sizeof(p)),
		Data:    (*byte)(unsafe.Pointer(&p)),
	}
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.BLKPG, uintptr(unsafe.Pointer(&arg)))
	if errno != 0 {
		return errno
	}
	return nil
}
