// Package ubitest is an in-memory UBI device for tests of code that
// drives package ubi: a ubi.Controller that keeps the kernel's rules that
// matter to its callers (LEB accounting, unique names and IDs, renames
// that replace, an interrupted update leaving the volume corrupted).
package ubitest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"

	"github.com/lifeboat-updater/lifeboat/handlers/ubi"
)

// Errors the fake returns where the kernel returns an errno.
var (
	ErrExist   = errors.New("ubitest: volume exists (EEXIST)")
	ErrNoVol   = errors.New("ubitest: no such volume (ENODEV)")
	ErrInvalid = errors.New("ubitest: invalid request (EINVAL)")
)

// Device is a UBI device in memory. It implements ubi.Controller; all
// methods are safe for concurrent use.
type Device struct {
	mu    sync.Mutex
	info  ubi.DeviceInfo
	vols  map[int]*ubi.Volume
	data  map[int][]byte
	flips map[int]int64 // FlipOnRead
	calls []string
}

// New returns a device of lebs logical eraseblocks of lebSize bytes,
// with no volumes.
func New(lebs int, lebSize int64) *Device {
	return &Device{
		info:  ubi.DeviceInfo{LEBSize: lebSize, TotalLEBs: lebs, FreeLEBs: lebs, MinIOSize: 2048, MaxVolumes: 128},
		vols:  map[int]*ubi.Volume{},
		data:  map[int][]byte{},
		flips: map[int]int64{},
	}
}

func (d *Device) call(format string, a ...any) {
	d.calls = append(d.calls, fmt.Sprintf(format, a...))
}

// Calls lists the changes made so far, one line each ("mkvol ...",
// "rmvol ...", "rsvol ...", "rnvol ...", "volup ...").
func (d *Device) Calls() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.calls)
}

// Data returns the content of the volume called name, and whether it
// exists.
func (d *Device) Data(name string) ([]byte, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	v := d.byName(name)
	if v == nil {
		return nil, false
	}
	return slices.Clone(d.data[v.ID]), true
}

func (d *Device) lebs(size int64) int { return int((size + d.info.LEBSize - 1) / d.info.LEBSize) }

func (d *Device) byName(name string) *ubi.Volume {
	for _, v := range d.vols {
		if v.Name == name {
			return v
		}
	}
	return nil
}

// Info implements ubi.Controller.
func (d *Device) Info() (ubi.DeviceInfo, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.info, nil
}

// Volumes implements ubi.Controller.
func (d *Device) Volumes() ([]ubi.Volume, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var vs []ubi.Volume
	for _, v := range d.vols {
		vs = append(vs, *v)
	}
	slices.SortFunc(vs, func(a, b ubi.Volume) int { return a.ID - b.ID })
	return vs, nil
}

// MakeVolume implements ubi.Controller.
func (d *Device) MakeVolume(s ubi.VolumeSpec) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	typ := s.Type
	if typ == 0 {
		typ = ubi.Dynamic
	}
	d.call("mkvol %q id=%d size=%d %v", s.Name, s.ID, s.Size, typ)
	if d.byName(s.Name) != nil {
		return 0, fmt.Errorf("%w: name %q", ErrExist, s.Name)
	}
	id := s.ID
	if id == ubi.AutoID {
		for id = 0; d.vols[id] != nil; id++ {
		}
	} else if d.vols[id] != nil {
		return 0, fmt.Errorf("%w: ID %d", ErrExist, id)
	}
	n := d.lebs(s.Size)
	if n > d.info.FreeLEBs {
		return 0, ubi.ErrNoSpace
	}
	d.info.FreeLEBs -= n
	d.vols[id] = &ubi.Volume{ID: id, Name: s.Name, Type: typ, LEBs: n, LEBSize: d.info.LEBSize, Alignment: 1}
	return id, nil
}

// RemoveVolume implements ubi.Controller.
func (d *Device) RemoveVolume(id int) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.call("rmvol %d", id)
	v := d.vols[id]
	if v == nil {
		return fmt.Errorf("%w: %d", ErrNoVol, id)
	}
	d.info.FreeLEBs += v.LEBs
	delete(d.vols, id)
	delete(d.data, id)
	return nil
}

// ResizeVolume implements ubi.Controller.
func (d *Device) ResizeVolume(id int, size int64) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.call("rsvol %d size=%d", id, size)
	v := d.vols[id]
	if v == nil {
		return fmt.Errorf("%w: %d", ErrNoVol, id)
	}
	n := d.lebs(size)
	if n-v.LEBs > d.info.FreeLEBs {
		return ubi.ErrNoSpace
	}
	d.info.FreeLEBs -= n - v.LEBs
	v.LEBs = n
	return nil
}

// RenameVolumes implements ubi.Controller.
func (d *Device) RenameVolumes(rs []ubi.Rename) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.call("rnvol %v", rs)
	renamed := map[int]bool{}
	for _, r := range rs {
		if d.vols[r.ID] == nil {
			return fmt.Errorf("%w: %d", ErrNoVol, r.ID)
		}
		renamed[r.ID] = true
	}
	for _, r := range rs {
		if v := d.byName(r.Name); v != nil && !renamed[v.ID] {
			d.info.FreeLEBs += v.LEBs
			delete(d.vols, v.ID)
			delete(d.data, v.ID)
		}
	}
	for _, r := range rs {
		d.vols[r.ID].Name = r.Name
	}
	return nil
}

// StartUpdate implements ubi.Controller. As the kernel's update marker
// does, the volume reads as corrupted from here until its last byte is
// written; an update closed before that leaves it so.
func (d *Device) StartUpdate(id int, size int64) (io.WriteCloser, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.call("volup %d size=%d", id, size)
	v := d.vols[id]
	if v == nil {
		return nil, fmt.Errorf("%w: %d", ErrNoVol, id)
	}
	if size > v.Size() {
		return nil, fmt.Errorf("%w: %d bytes into volume %d of %d", ErrInvalid, size, id, v.Size())
	}
	v.Corrupted = true
	delete(d.data, id)
	u := &update{d: d, v: v, size: size}
	u.finish()
	return u, nil
}

// update is a volume update under way.
type update struct {
	d    *Device
	v    *ubi.Volume
	size int64
	buf  []byte
	done bool
}

// Write takes no more than the update announced, as the kernel does.
func (u *update) Write(p []byte) (int, error) {
	u.d.mu.Lock()
	defer u.d.mu.Unlock()
	if u.done {
		return 0, fmt.Errorf("%w: write after the update's last byte", ErrInvalid)
	}
	k := min(int64(len(p)), u.size-int64(len(u.buf)))
	u.buf = append(u.buf, p[:k]...)
	u.finish()
	return int(k), nil
}

// finish makes the volume whole once every byte has arrived. The caller
// holds the lock.
func (u *update) finish() {
	if int64(len(u.buf)) < u.size || u.done {
		return
	}
	u.done = true
	if u.d.vols[u.v.ID] != u.v {
		return // removed meanwhile
	}
	u.v.Corrupted = false
	if u.v.Type == ubi.Static {
		u.v.DataBytes = u.size
	} else {
		u.v.DataBytes = u.v.Size()
	}
	u.d.data[u.v.ID] = u.buf
}

// Close ends the update; a short one leaves the volume corrupted.
func (u *update) Close() error { return nil }

// OpenVolume implements ubi.Controller. A volume whose update did not
// finish cannot be read, as with the kernel (EBADF).
func (d *Device) OpenVolume(id int) (ubi.VolumeReader, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	v := d.vols[id]
	if v == nil {
		return nil, fmt.Errorf("%w: %d", ErrNoVol, id)
	}
	if v.Corrupted {
		return nil, fmt.Errorf("%w: volume %d is marked as being updated (EBADF)", ErrInvalid, id)
	}
	b := slices.Clone(d.data[id])
	if off, ok := d.flips[id]; ok && off < int64(len(b)) {
		b[off] ^= 1
	}
	return reader{bytes.NewReader(b)}, nil
}

type reader struct{ *bytes.Reader }

func (reader) Close() error { return nil }

// FlipOnRead makes reads of volume id return its byte at off with its
// lowest bit flipped, as flash whose bits flip beyond what the ECC
// corrects: for read-back checks.
func (d *Device) FlipOnRead(id int, off int64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.flips[id] = off
}

// VolumeData returns the content of volume id.
func (d *Device) VolumeData(id int) ([]byte, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	b, ok := d.data[id]
	return slices.Clone(b), ok
}
