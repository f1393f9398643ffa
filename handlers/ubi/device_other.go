//go:build !linux

package ubi

import (
	"fmt"
	"io"
)

// Attach fails with ErrUnsupported: UBI needs Linux.
func Attach(mtdNum, ubiNum int, o AttachOptions) (int, error) {
	return 0, fmt.Errorf("%w: attach mtd%d", ErrUnsupported, mtdNum)
}

// AttachMTD fails with ErrUnsupported: UBI needs Linux.
func AttachMTD(mtdNum int, o AttachOptions) (int, error) { return Attach(mtdNum, AutoID, o) }

// Detach fails with ErrUnsupported: UBI needs Linux.
func Detach(ubiNum int) error { return fmt.Errorf("%w: detach ubi%d", ErrUnsupported, ubiNum) }

// Device is an attached UBI device; only Linux has them.
type Device struct{ Num int }

// OpenDevice fails with ErrUnsupported: UBI needs Linux.
func OpenDevice(num int) (*Device, error) {
	return nil, fmt.Errorf("%w: open ubi%d", ErrUnsupported, num)
}

func (d *Device) Close() error                                   { return nil }
func (d *Device) Info() (DeviceInfo, error)                      { return DeviceInfo{}, ErrUnsupported }
func (d *Device) Volumes() ([]Volume, error)                     { return nil, ErrUnsupported }
func (d *Device) MakeVolume(VolumeSpec) (int, error)             { return 0, ErrUnsupported }
func (d *Device) RemoveVolume(int) error                         { return ErrUnsupported }
func (d *Device) ResizeVolume(int, int64) error                  { return ErrUnsupported }
func (d *Device) RenameVolumes([]Rename) error                   { return ErrUnsupported }
func (d *Device) StartUpdate(int, int64) (io.WriteCloser, error) { return nil, ErrUnsupported }
func (d *Device) OpenVolume(int) (VolumeReader, error)           { return nil, ErrUnsupported }
func (d *Device) VolumePath(id int) string                       { return "" }
