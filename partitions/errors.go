package partitions

import "errors"

// Errors returned by this package. Compare with errors.Is: they are wrapped
// with the partition, sizes or device a person needs to fix the bundle or
// understand the disk.
var (
	// ErrInvalid means a table in a bundle is malformed in a way no disk
	// could fix: no partitions, an unknown table type, a size of 0 (rest of
	// the disk) before the last entry, a missing or overlong name,
	// attributes on an MBR.
	ErrInvalid = errors.New("partitions: invalid table")

	// ErrGeometry means the disk size or logical sector size cannot hold a
	// partition table (not a power of two from 512 to 4096, or no sectors).
	ErrGeometry = errors.New("partitions: unusable disk geometry")

	// ErrTooSmall means the partitions do not fit on the disk. The message
	// says how many bytes they need and how many the disk has.
	ErrTooSmall = errors.New("partitions: disk too small")

	// ErrOverlap means two partitions share bytes, or a partition reaches
	// into the partition table itself.
	ErrOverlap = errors.New("partitions: partitions overlap")

	// ErrAlign means an explicit start or a size is not a whole number of
	// logical sectors.
	ErrAlign = errors.New("partitions: not a whole number of sectors")

	// ErrBadType means a partition type is neither a known alias nor a
	// type the table kind can hold (a GUID for GPT, a byte "0x83" for MBR).
	ErrBadType = errors.New("partitions: bad partition type")

	// ErrTooMany means the table kind cannot hold that many partitions:
	// 4 primary partitions for MBR (no extended or logical ones), 128 for
	// GPT.
	ErrTooMany = errors.New("partitions: too many partitions")

	// ErrTooLarge means an MBR partition starts or ends beyond what its
	// 32-bit sector fields can address (2 TiB with 512-byte sectors).
	ErrTooLarge = errors.New("partitions: beyond what an MBR can address")

	// ErrBadGUID means a disk or partition GUID (or MBR disk identifier)
	// does not parse, is all zeroes, or is used twice.
	ErrBadGUID = errors.New("partitions: bad GUID")

	// ErrDuplicateName means two partitions have the same name, so steps
	// could not tell them apart.
	ErrDuplicateName = errors.New("partitions: duplicate partition name")

	// ErrNoTable means the disk holds neither a GPT nor an MBR signature:
	// blank storage, or storage with a bare filesystem and no table. The
	// rescue treats it as a blank board.
	ErrNoTable = errors.New("partitions: no partition table")

	// ErrBadTable means the disk carries a partition table signature but
	// the table cannot be used: both GPT copies damaged, a protective MBR
	// without a GPT, an MBR with invalid entries.
	ErrBadTable = errors.New("partitions: damaged or unrecognised partition table")

	// ErrDevice means the target cannot be opened, is neither a regular
	// file nor a whole-disk block device (a partition is refused), or its
	// size or sector size could not be learned.
	ErrDevice = errors.New("partitions: unusable target")

	// ErrReread means the new table is on the disk but the running kernel
	// still has the old partitions (a partition in use, or a device that
	// does not scan partitions). Apply's Result is valid with this error:
	// an install that writes by offset into the whole disk may go on; the
	// kernel sees the new table after a reboot.
	ErrReread = errors.New("partitions: kernel did not take the new table")
)
