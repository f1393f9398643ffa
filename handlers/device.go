package handlers

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"unsafe"
)

// Options say how Open opens a device.
type Options struct {
	// Write opens the target for writing. Open then fails with an error
	// wrapping ErrReadOnly when the target cannot be written, so that an
	// install finds out before it writes anything.
	Write bool
	// Direct writes sector-aligned data with O_DIRECT on block devices,
	// bypassing the page cache. Unaligned writes still go through the
	// cache. Ignored for regular files.
	Direct bool
}

// Device is a block device or a regular file opened as a Target. A regular
// file stands for a device in tests and host tools: its size is fixed at
// open, and writes past it fail like they would on a disk.
type Device struct {
	f      *os.File
	dio    *os.File // O_DIRECT descriptor, or nil
	path   string
	size   int64
	sector int
	block  bool
}

// Open opens the block device or regular file at path.
func Open(path string, opt Options) (*Device, error) {
	fi, err := os.Stat(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%w: %w", ErrNotFound, err)
		}
		return nil, err
	}
	m := fi.Mode()
	block := m&fs.ModeDevice != 0 && m&fs.ModeCharDevice == 0
	if !block && !m.IsRegular() {
		return nil, fmt.Errorf("%w: %s is a %v, want a block device or a regular file", ErrUnsupported, path, m.Type())
	}
	flag := os.O_RDONLY
	if opt.Write {
		flag = os.O_RDWR
	}
	f, err := os.OpenFile(path, flag, 0)
	if err != nil {
		return nil, openError(err)
	}
	d := &Device{f: f, path: path, size: fi.Size(), sector: 512, block: block}
	if block {
		if d.size, d.sector, err = blockGeometry(f); err != nil {
			f.Close()
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if opt.Write {
			// A read-only block device opens for writing without
			// complaint and fails the first write: ask the kernel now.
			ro, err := blockReadOnly(f)
			if err != nil {
				f.Close()
				return nil, fmt.Errorf("%s: %w", path, err)
			}
			if ro {
				f.Close()
				return nil, fmt.Errorf("%w: %s (the kernel marks the block device read-only)", ErrReadOnly, path)
			}
			if opt.Direct {
				if d.dio, err = openDirect(path); err != nil {
					f.Close()
					return nil, openError(err)
				}
			}
		}
	}
	return d, nil
}

func openError(err error) error {
	if errors.Is(err, fs.ErrPermission) || isReadOnlyFS(err) {
		return fmt.Errorf("%w: %w", ErrReadOnly, err)
	}
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	return err
}

// Path is the path the device was opened with.
func (d *Device) Path() string { return d.path }

// IsBlock reports whether the device is a block device.
func (d *Device) IsBlock() bool { return d.block }

// SectorSize is the logical sector size: BLKSSZGET for block devices, 512
// for regular files.
func (d *Device) SectorSize() int { return d.sector }

// Size implements Target.
func (d *Device) Size() int64 { return d.size }

func (d *Device) String() string { return d.path }

func (d *Device) check(off, n int64) error {
	if off < 0 || n < 0 || off > d.size || n > d.size-off {
		return fmt.Errorf("%w: %d bytes at %d of %s (%d bytes)", ErrOutOfRange, n, off, d.path, d.size)
	}
	return nil
}

// ReadAt implements io.ReaderAt.
func (d *Device) ReadAt(p []byte, off int64) (int, error) {
	if off >= d.size {
		return 0, io.EOF
	}
	var eof error
	if rest := d.size - off; int64(len(p)) > rest {
		p, eof = p[:rest], io.EOF
	}
	n, err := d.f.ReadAt(p, off)
	if err == nil {
		err = eof
	}
	return n, err
}

// WriteAt implements io.WriterAt. With Options.Direct, a write whose
// offset, length and buffer address are sector-aligned goes around the
// page cache.
func (d *Device) WriteAt(p []byte, off int64) (int, error) {
	if err := d.check(off, int64(len(p))); err != nil {
		return 0, err
	}
	if d.dio != nil && d.aligned(p, off) {
		return d.dio.WriteAt(p, off)
	}
	return d.f.WriteAt(p, off)
}

func (d *Device) aligned(p []byte, off int64) bool {
	s := int64(d.sector)
	return len(p) > 0 && off%s == 0 && int64(len(p))%s == 0 &&
		int64(uintptr(unsafe.Pointer(&p[0])))%s == 0
}

// ZeroRange implements Target: BLKZEROOUT on block devices, a punched hole
// in regular files, zeros written where neither works.
func (d *Device) ZeroRange(off, n int64) error {
	if err := d.check(off, n); err != nil {
		return err
	}
	if n == 0 {
		return nil
	}
	if d.block {
		s := int64(d.sector)
		start, end := (off+s-1)/s*s, (off+n)/s*s
		if end > start && zeroOut(d.f, start, end-start) == nil {
			// Unaligned edges, if any, are written.
			if err := WriteZeros(d, off, start-off); err != nil {
				return err
			}
			return WriteZeros(d, end, off+n-end)
		}
		return WriteZeros(d, off, n)
	}
	if punchHole(d.f, off, n) == nil {
		return nil
	}
	return WriteZeros(d, off, n)
}

// Discard implements Target: BLKDISCARD of the whole sectors in the range
// on block devices, a punched hole in regular files.
func (d *Device) Discard(off, n int64) error {
	if err := d.check(off, n); err != nil {
		return err
	}
	if n == 0 {
		return nil
	}
	if d.block {
		s := int64(d.sector)
		start, end := (off+s-1)/s*s, (off+n)/s*s
		if end <= start {
			return nil
		}
		return discard(d.f, start, end-start)
	}
	return punchHole(d.f, off, n)
}

// DropCache implements Target.
func (d *Device) DropCache(off, n int64) error {
	if err := d.f.Sync(); err != nil {
		return err
	}
	if err := fadviseDontNeed(d.f, off, n); err != nil {
		return err
	}
	if d.block {
		return flushBuffers(d.f)
	}
	return nil
}

// Sync implements Target. On a block device, fsync flushes the device's
// volatile cache as well, and BLKFLSBUF then drops the kernel's buffers,
// so that what is read next comes from the medium.
func (d *Device) Sync() error {
	if err := d.f.Sync(); err != nil {
		return fmt.Errorf("%s: fsync: %w", d.path, err)
	}
	if d.block {
		if err := flushBuffers(d.f); err != nil {
			return fmt.Errorf("%s: BLKFLSBUF: %w", d.path, err)
		}
	}
	return nil
}

// Close implements Target.
func (d *Device) Close() error {
	var err error
	if d.dio != nil {
		err = d.dio.Close()
	}
	return errors.Join(err, d.f.Close())
}

// AlignedBuffer returns a zeroed buffer of n bytes whose address is a
// multiple of 4096, as O_DIRECT writes need.
func AlignedBuffer(n int) []byte {
	const align = 4096
	b := make([]byte, n+align)
	skip := (align - int(uintptr(unsafe.Pointer(&b[0])))%align) % align
	return b[skip : skip+n : skip+n]
}
