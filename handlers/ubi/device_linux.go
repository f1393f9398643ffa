package ubi

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Request structs of include/uapi/mtd/ubi-user.h. Their sizes are checked
// against the ioctl numbers in the tests.

// attachReq is struct ubi_attach_req (24 bytes).
type attachReq struct {
	UBINum        int32
	MTDNum        int32
	VIDHdrOffset  int32
	MaxBEBPer1024 int16
	DisableFM     int8
	NeedResvPool  int8
	_             [8]int8
}

// mkvolReq is struct ubi_mkvol_req (152 bytes, packed).
type mkvolReq struct {
	VolID     int32
	Alignment int32
	Bytes     int64
	VolType   int8
	Flags     uint8
	NameLen   int16
	_         [4]int8
	Name      [MaxVolumeName + 1]byte
}

// rsvolReq is struct ubi_rsvol_req (12 bytes, packed): an int64 and an
// int32 with no padding, so it is laid out by hand.
type rsvolReq [12]byte

// rnvolEnt is one entry of struct ubi_rnvol_req (136 bytes).
type rnvolEnt struct {
	VolID   int32
	NameLen int16
	_       [2]int8
	Name    [MaxVolumeName + 1]byte
}

// rnvolReq is struct ubi_rnvol_req (4368 bytes).
type rnvolReq struct {
	Count int32
	_     [12]int8
	Ents  [MaxRenames]rnvolEnt
}

const volSkipCRCCheck = 0x1 // UBI_VOL_SKIP_CRC_CHECK_FLG

func ioctl(f *os.File, req uint, arg unsafe.Pointer) error {
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, f.Fd(), uintptr(req), uintptr(arg)); e != 0 {
		return e
	}
	return nil
}

// Attach attaches MTD device mtdNum as UBI device ubiNum (AutoID: the
// kernel chooses) through /dev/ubi_ctrl and returns its number. UBI
// formats blank (all 0xFF) flash as it attaches.
func Attach(mtdNum, ubiNum int, o AttachOptions) (int, error) {
	f, err := os.OpenFile(CtrlDev, os.O_RDWR, 0)
	if err != nil {
		return 0, fmt.Errorf("ubi: %w (is the ubi module loaded?)", err)
	}
	defer f.Close()
	r := attachReq{
		UBINum: int32(ubiNum), MTDNum: int32(mtdNum),
		VIDHdrOffset: int32(o.VIDHeaderOffset), MaxBEBPer1024: int16(o.MaxBEBPer1024),
	}
	if o.DisableFastmap {
		r.DisableFM = 1
	}
	if err := ioctl(f, unix.UBI_IOCATT, unsafe.Pointer(&r)); err != nil {
		return 0, fmt.Errorf("ubi: attach mtd%d: UBI_IOCATT: %w", mtdNum, err)
	}
	// The kernel writes the device number it chose into ubi_num.
	return int(r.UBINum), nil
}

// AttachMTD returns the UBI device of MTD device mtdNum, attaching it
// if it is not yet.
func AttachMTD(mtdNum int, o AttachOptions) (int, error) {
	if n, ok := Sysfs(SysClassUBI).Attached(mtdNum); ok {
		return n, nil
	}
	return Attach(mtdNum, AutoID, o)
}

// Detach detaches UBI device ubiNum (UBI_IOCDET).
func Detach(ubiNum int) error {
	f, err := os.OpenFile(CtrlDev, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("ubi: %w", err)
	}
	defer f.Close()
	n := int32(ubiNum)
	if err := ioctl(f, unix.UBI_IOCDET, unsafe.Pointer(&n)); err != nil {
		return fmt.Errorf("ubi: detach ubi%d: UBI_IOCDET: %w", ubiNum, err)
	}
	return nil
}

// Device is an attached UBI device, /dev/ubiN. It implements Controller.
type Device struct {
	Num  int
	f    *os.File
	sys  Sysfs
	dev  string
	name string
}

// OpenDevice opens /dev/ubiN.
func OpenDevice(num int) (*Device, error) {
	path := filepath.Join(DevDir, fmt.Sprintf("ubi%d", num))
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%w: %w", ErrNotFound, err)
		}
		return nil, fmt.Errorf("ubi: %w", err)
	}
	return &Device{Num: num, f: f, sys: Sysfs(SysClassUBI), dev: DevDir, name: path}, nil
}

func (d *Device) String() string { return d.name }

// Close closes the device.
func (d *Device) Close() error { return d.f.Close() }

// Info implements Controller.
func (d *Device) Info() (DeviceInfo, error) { return d.sys.Device(d.Num) }

// Volumes implements Controller.
func (d *Device) Volumes() ([]Volume, error) { return d.sys.Volumes(d.Num) }

func setName(dst *[MaxVolumeName + 1]byte, name string) (int16, error) {
	if name == "" || len(name) > MaxVolumeName {
		return 0, fmt.Errorf("%w: volume name %q (1 to %d bytes)", ErrLayout, name, MaxVolumeName)
	}
	copy(dst[:], name)
	return int16(len(name)), nil
}

// MakeVolume implements Controller.
func (d *Device) MakeVolume(s VolumeSpec) (int, error) {
	r := mkvolReq{VolID: int32(s.ID), Alignment: int32(max(s.Alignment, 1)), Bytes: s.Size, VolType: int8(s.Type.norm())}
	if s.SkipCRC {
		r.Flags = volSkipCRCCheck
	}
	var err error
	if r.NameLen, err = setName(&r.Name, s.Name); err != nil {
		return 0, err
	}
	if err := ioctl(d.f, unix.UBI_IOCMKVOL, unsafe.Pointer(&r)); err != nil {
		if errors.Is(err, unix.ENOSPC) {
			err = fmt.Errorf("%w: %w", ErrNoSpace, err)
		}
		return 0, fmt.Errorf("%s: UBI_IOCMKVOL %q: %w", d.name, s.Name, err)
	}
	// The kernel writes the volume ID it chose into vol_id.
	return int(r.VolID), nil
}

// RemoveVolume implements Controller.
func (d *Device) RemoveVolume(id int) error {
	n := int32(id)
	if err := ioctl(d.f, unix.UBI_IOCRMVOL, unsafe.Pointer(&n)); err != nil {
		return fmt.Errorf("%s: UBI_IOCRMVOL %d: %w", d.name, id, err)
	}
	return nil
}

// ResizeVolume implements Controller.
func (d *Device) ResizeVolume(id int, size int64) error {
	var r rsvolReq
	binary.NativeEndian.PutUint64(r[0:], uint64(size))
	binary.NativeEndian.PutUint32(r[8:], uint32(int32(id)))
	if err := ioctl(d.f, unix.UBI_IOCRSVOL, unsafe.Pointer(&r)); err != nil {
		if errors.Is(err, unix.ENOSPC) {
			err = fmt.Errorf("%w: %w", ErrNoSpace, err)
		}
		return fmt.Errorf("%s: UBI_IOCRSVOL %d to %d bytes: %w", d.name, id, size, err)
	}
	return nil
}

// RenameVolumes implements Controller.
func (d *Device) RenameVolumes(rs []Rename) error {
	if len(rs) == 0 {
		return nil
	}
	if len(rs) > MaxRenames {
		return fmt.Errorf("%w: %d renames, at most %d at once", ErrLayout, len(rs), MaxRenames)
	}
	r := new(rnvolReq)
	r.Count = int32(len(rs))
	for i, x := range rs {
		r.Ents[i].VolID = int32(x.ID)
		var err error
		if r.Ents[i].NameLen, err = setName(&r.Ents[i].Name, x.Name); err != nil {
			return err
		}
	}
	if err := ioctl(d.f, unix.UBI_IOCRNVOL, unsafe.Pointer(r)); err != nil {
		return fmt.Errorf("%s: UBI_IOCRNVOL %v: %w", d.name, rs, err)
	}
	return nil
}

// VolumePath is the device node of volume id: /dev/ubiN_M.
func (d *Device) VolumePath(id int) string {
	return filepath.Join(d.dev, fmt.Sprintf("ubi%d_%d", d.Num, id))
}

// StartUpdate implements Controller: it opens /dev/ubiN_M and announces
// size with UBI_IOCVOLUP; the file then takes the bytes. Writes of any
// size do: the kernel gathers them into whole LEBs.
func (d *Device) StartUpdate(id int, size int64) (io.WriteCloser, error) {
	path := d.VolumePath(id)
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("ubi: %w", err)
	}
	n := size
	if err := ioctl(f, unix.UBI_IOCVOLUP, unsafe.Pointer(&n)); err != nil {
		f.Close()
		return nil, fmt.Errorf("ubi: %s: UBI_IOCVOLUP %d bytes: %w", path, size, err)
	}
	return f, nil
}

// OpenVolume implements Controller.
func (d *Device) OpenVolume(id int) (VolumeReader, error) {
	f, err := os.Open(d.VolumePath(id))
	if err != nil {
		return nil, fmt.Errorf("ubi: %w", err)
	}
	return f, nil
}
