// Package mtd writes images to raw flash through Linux's MTD layer: NOR
// flash, and NAND flash with its bad blocks.
//
// A Writer takes the verified bytes of an image as a stream and puts them
// on an MTD device one erase block at a time: it erases only the blocks it
// writes, writes whole pages, leaves out pages that are all 0xFF, passes
// over bad NAND blocks (and marks a block bad when erasing or writing it
// fails with EIO, as nandwrite does), reads every block back, and leaves
// alone blocks that already hold the right bytes. A bad-block budget and
// the end of the region stop it before it spills into the next partition.
//
// The flash is behind Device, a small interface: Open gives the real one
// (the /dev/mtdN character device and its ioctls), and package mtdtest a
// simulated NAND or NOR chip in memory for tests.
package mtd

import (
	"errors"
	"io"
)

// Errors returned by this package. Compare with errors.Is: they are wrapped
// with the device and offsets they concern.
var (
	// ErrNotFound means no MTD device has the name or path asked for.
	ErrNotFound = errors.New("mtd: device not found")

	// ErrReadOnly means the MTD device cannot be written (its
	// MTD_WRITEABLE flag is clear, or it was opened read-only).
	ErrReadOnly = errors.New("mtd: device is read-only")

	// ErrUnaligned means an offset or length is not a multiple of the
	// erase block size.
	ErrUnaligned = errors.New("mtd: not aligned to an erase block")

	// ErrNoSpace means the image does not fit the region once its bad
	// blocks are passed over. Nothing is written past the region's end.
	ErrNoSpace = errors.New("mtd: image larger than the region's good blocks")

	// ErrTooManyBad means the write met more bad blocks than its budget.
	ErrTooManyBad = errors.New("mtd: too many bad blocks")

	// ErrVerify means a block read back differs from what was written on
	// flash without bad-block handling (NOR, RAM).
	ErrVerify = errors.New("mtd: read-back differs from what was written")

	// ErrClosed means a Write after Close.
	ErrClosed = errors.New("mtd: write after close")

	// ErrUnsupported means the system has no MTD support (not Linux).
	ErrUnsupported = errors.New("mtd: not supported on this system")
)

// Types of MTD device, as MEMGETINFO reports them (include/uapi/mtd/mtd-abi.h).
const (
	TypeAbsent    = 0
	TypeRAM       = 1
	TypeROM       = 2
	TypeNOR       = 3
	TypeNAND      = 4
	TypeDataFlash = 6
	TypeUBIVolume = 7
	TypeMLCNAND   = 8
)

// Flags of an MTD device.
const (
	FlagWriteable    = 0x400  // MTD_WRITEABLE
	FlagBitWriteable = 0x800  // MTD_BIT_WRITEABLE: single bits can be cleared (NOR)
	FlagNoErase      = 0x1000 // MTD_NO_ERASE
)

// Info describes an MTD device.
type Info struct {
	Type      uint8  // TypeNAND, TypeNOR, ...
	Flags     uint32 // FlagWriteable, ...
	Size      int64  // bytes
	EraseSize int64  // bytes of an erase block
	WriteSize int64  // bytes of the smallest write: a NAND page, 1 on most NOR
	OOBSize   int64  // out-of-band bytes per page (NAND)
}

// IsNAND reports whether the device has bad blocks to care about.
func (i Info) IsNAND() bool { return i.Type == TypeNAND || i.Type == TypeMLCNAND }

// Writable reports whether the MTD_WRITEABLE flag is set.
func (i Info) Writable() bool { return i.Flags&FlagWriteable != 0 }

// Blocks is the number of erase blocks.
func (i Info) Blocks() int64 {
	if i.EraseSize == 0 {
		return 0
	}
	return i.Size / i.EraseSize
}

// Device is raw flash. Offsets are bytes from the device's start. The
// real device is *Dev; package mtdtest simulates one.
type Device interface {
	Info() Info
	// Erase erases [off, off+n); both are multiples of the erase size.
	// Erasing a bad block, or a block that fails, returns an error
	// wrapping syscall.EIO.
	Erase(off, n int64) error
	// IsBad reports whether the erase block at off is marked bad.
	IsBad(off int64) (bool, error)
	// MarkBad marks the erase block at off bad.
	MarkBad(off int64) error
	// ReadAt reads as io.ReaderAt. NAND data with ECC errors is returned
	// all the same (the kernel's mtdchar does so); ECCStats tells.
	io.ReaderAt
	// WriteAt programs flash: on NAND, whole pages of an erased block.
	// A program failure returns an error wrapping syscall.EIO.
	io.WriterAt
}

// ECCStats are the kernel's ECC counters of a NAND device since boot.
type ECCStats struct {
	Corrected uint32 // bit flips corrected
	Failed    uint32 // uncorrectable reads
	BadBlocks uint32 // bad blocks in the device
	BBTBlocks uint32 // blocks reserved for the bad block table
}

// ECCStatser is a Device that reports ECC statistics (ECCGETSTATS). The
// Writer uses it to tell a read whose data the ECC could not correct.
type ECCStatser interface {
	ECCStats() (ECCStats, error)
}
