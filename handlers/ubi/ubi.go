// Package ubi manages UBI devices and volumes on raw flash through the
// kernel's UBI ioctls: attach an MTD device, bring its volumes to a wanted
// layout changing only what differs, update a volume's content
// (VolumeWriter: the image's bytes in order, as they arrive), and swap a
// new image in atomically (SwapWriter: write a spare volume, then rename
// both in one UBI_IOCRNVOL).
//
// FormatWriter writes a whole ubinized image to an MTD device the way
// ubiformat does, keeping each eraseblock's erase counter (the EC header
// of drivers/mtd/ubi/ubi-media.h), for first installs and for replacing
// every volume at once. UBI must not have the device attached then.
//
// The writers take their image through Write, so that an install can
// hand them each verified chunk as it comes; UpdateVolume, SwapUpdate and
// FormatImage copy an io.Reader into them.
//
// The request structs of include/uapi/mtd/ubi-user.h are defined here;
// golang.org/x/sys/unix has only the ioctl numbers. Everything above the
// ioctls works on a Controller, so it is tested on an in-memory one;
// FormatImage works on an mtd.Device, tested on package mtdtest's NAND.
package ubi

import (
	"errors"
	"fmt"
	"io"
)

// Errors returned by this package. Compare with errors.Is.
var (
	// ErrNotFound means no UBI device or volume has the number or name.
	ErrNotFound = errors.New("ubi: not found")

	// ErrLayout means a wanted layout cannot be: a duplicate name or ID,
	// a name too long, an ID held by a volume that stays.
	ErrLayout = errors.New("ubi: invalid volume layout")

	// ErrNoSpace means the volumes do not fit the device's free LEBs.
	ErrNoSpace = errors.New("ubi: not enough free eraseblocks")

	// ErrShortUpdate means a volume update got fewer bytes than it
	// announced. The kernel leaves the volume marked as being updated
	// (corrupted) until a complete update.
	ErrShortUpdate = errors.New("ubi: volume update stream ended early")

	// ErrVerify means a volume read back differs from what was written.
	ErrVerify = errors.New("ubi: read-back differs from what was written")

	// ErrClosed means a Write after Close.
	ErrClosed = errors.New("ubi: write after close")

	// ErrTooLong means a writer got more bytes than the size it was made
	// for. Nothing of that Write is written, and the writer fails from
	// then on.
	ErrTooLong = errors.New("ubi: more bytes than announced")

	// ErrUnsupported means the system has no UBI (not Linux).
	ErrUnsupported = errors.New("ubi: not supported on this system")
)

// Limits of UBI (ubi-user.h).
const (
	MaxVolumeName = 127 // UBI_MAX_VOLUME_NAME
	MaxRenames    = 32  // UBI_MAX_RNVOL: volumes one rename call can take
	AutoID        = -1  // UBI_VOL_NUM_AUTO, UBI_DEV_NUM_AUTO
)

// VolumeType is a volume's type.
type VolumeType uint8

// Volume types (UBI_DYNAMIC_VOLUME, UBI_STATIC_VOLUME). The zero value
// means Dynamic in a VolumeSpec.
const (
	Dynamic VolumeType = 3
	Static  VolumeType = 4
)

func (t VolumeType) String() string {
	switch t {
	case 0, Dynamic:
		return "dynamic"
	case Static:
		return "static"
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

func (t VolumeType) norm() VolumeType {
	if t == 0 {
		return Dynamic
	}
	return t
}

// DeviceInfo describes an attached UBI device (/sys/class/ubi/ubiN).
type DeviceInfo struct {
	Num        int   // N of /dev/ubiN
	MTDNum     int   // the MTD device it is attached to
	LEBSize    int64 // bytes of a logical eraseblock
	TotalLEBs  int   // eraseblocks for volumes, used or not
	FreeLEBs   int   // eraseblocks not reserved by any volume
	MinIOSize  int64 // smallest write
	BadPEBs    int   // bad physical eraseblocks
	MaxVolumes int
}

// Volume is an existing volume (/sys/class/ubi/ubiN_M).
type Volume struct {
	ID        int
	Name      string
	Type      VolumeType
	LEBs      int   // reserved logical eraseblocks
	LEBSize   int64 // usable bytes of each (the device's LEB size less alignment)
	DataBytes int64 // bytes of data: for a static volume, its content's size
	Alignment int
	// Corrupted: a static volume whose CRC fails, or an interrupted
	// update (the update marker is set).
	Corrupted bool
}

// Size is the bytes the volume reserves.
func (v Volume) Size() int64 { return int64(v.LEBs) * v.LEBSize }

// VolumeSpec is a volume as a layout wants it.
type VolumeSpec struct {
	Name string
	// ID is the volume ID to create it with; AutoID lets UBI choose.
	// A volume missing by name but present by ID under a name the
	// layout does not want is renamed rather than recreated.
	ID int
	// Size is the bytes to reserve; UBI rounds it up to whole LEBs.
	Size int64
	// Type is Dynamic (the default) or Static.
	Type VolumeType
	// Alignment of the volume's LEBs; 0 means 1.
	Alignment int
	// SkipCRC skips the CRC check of a static volume
	// (UBI_VOL_SKIP_CRC_CHECK_FLG).
	SkipCRC bool
}

// Rename gives the volume ID the name Name.
type Rename struct {
	ID   int
	Name string
}

// Controller is a UBI device as this package drives it. *Device is the
// real one.
type Controller interface {
	Info() (DeviceInfo, error)
	Volumes() ([]Volume, error)
	// MakeVolume creates a volume and returns its ID (UBI_IOCMKVOL).
	MakeVolume(spec VolumeSpec) (int, error)
	// RemoveVolume removes a volume (UBI_IOCRMVOL).
	RemoveVolume(id int) error
	// ResizeVolume changes the bytes a volume reserves (UBI_IOCRSVOL).
	ResizeVolume(id int, size int64) error
	// RenameVolumes renames several volumes at once, atomically
	// (UBI_IOCRNVOL). A volume already holding a new name that is not
	// renamed itself is removed by the kernel.
	RenameVolumes(r []Rename) error
	// StartUpdate starts replacing a volume's content with size bytes
	// and returns where the bytes go, in order (UBI_IOCVOLUP, then writes).
	// The kernel marks the volume as being updated until the last byte
	// is written: closing the writer before that leaves the volume
	// corrupted. NewVolumeWriter checks what StartUpdate does not.
	StartUpdate(id int, size int64) (io.WriteCloser, error)
	// OpenVolume opens volume id for reading (/dev/ubiN_M).
	OpenVolume(id int) (VolumeReader, error)
}

// VolumeReader is an open volume's content.
type VolumeReader interface {
	io.ReaderAt
	io.Closer
}

// lebs is the number of LEBs size bytes take.
func lebs(size, lebSize int64) int {
	if lebSize <= 0 {
		return 0
	}
	return int((size + lebSize - 1) / lebSize)
}

// AttachOptions tune Attach; the zero value is ubiattach's default.
type AttachOptions struct {
	// VIDHeaderOffset is where the volume ID header sits in a PEB; 0
	// means the default.
	VIDHeaderOffset int
	// MaxBEBPer1024 is how many PEBs per 1024 to reserve for bad blocks;
	// 0 means the kernel's default (20).
	MaxBEBPer1024 int
	// DisableFastmap does not use a fastmap to attach.
	DisableFastmap bool
}
