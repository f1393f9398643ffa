package mtd

import (
	"fmt"
	"io"
)

// Reader reads an image back from an MTD region as a Writer lays it out:
// the region's good erase blocks, in order, as one run of bytes, with the
// bad blocks passed over. It is the Writer's twin, for comparing flash
// with an image after the fact (Verify, tests). It returns what the flash
// returns; on NAND that is the ECC-corrected data, as the kernel's mtdchar
// gives it.
//
// A Reader lists the bad blocks once, in NewReader: a block marked bad
// later still counts as good.
type Reader struct {
	dev    Device
	name   string
	es     int64
	blocks []int64 // device offsets of the good blocks, in order
}

// NewReader returns a Reader of the region [off, off+length) of dev;
// length 0 means up to the device's end. It fails with ErrUnaligned on a
// region not made of whole erase blocks, and ErrNoSpace on one past the
// device's end.
func NewReader(dev Device, off, length int64) (*Reader, error) {
	info := dev.Info()
	name := fmt.Sprint(dev)
	es := info.EraseSize
	if length == 0 && off <= info.Size {
		length = info.Size - off
	}
	if es <= 0 || off < 0 || off%es != 0 || length%es != 0 {
		return nil, fmt.Errorf("%w: region at %#x of %#x bytes on %s (erase size %#x)", ErrUnaligned, off, length, name, es)
	}
	if length < 0 || off+length > info.Size {
		return nil, fmt.Errorf("%w: region at %#x of %#x bytes is past the end of %s (%#x bytes)", ErrNoSpace, off, length, name, info.Size)
	}
	r := &Reader{dev: dev, name: name, es: es}
	for o := off; o < off+length; o += es {
		if info.IsNAND() {
			bad, err := dev.IsBad(o)
			if err != nil {
				return nil, fmt.Errorf("mtd: %s: bad block check at %#x: %w", name, o, err)
			}
			if bad {
				continue
			}
		}
		r.blocks = append(r.blocks, o)
	}
	return r, nil
}

// Size is the bytes the region's good blocks hold.
func (r *Reader) Size() int64 { return int64(len(r.blocks)) * r.es }

// String names the device.
func (r *Reader) String() string { return r.name }

// ReadAt implements io.ReaderAt: off counts bytes of good blocks from the
// region's start. Reads past Size return io.EOF.
func (r *Reader) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("mtd: %s: read at negative offset %d", r.name, off)
	}
	n := 0
	for len(p) > 0 {
		b := off / r.es
		if b >= int64(len(r.blocks)) {
			return n, io.EOF
		}
		in := off % r.es
		k := min(int64(len(p)), r.es-in)
		if _, err := r.dev.ReadAt(p[:k], r.blocks[b]+in); err != nil {
			return n, fmt.Errorf("mtd: %s: read at %#x: %w", r.name, r.blocks[b]+in, err)
		}
		n += int(k)
		p, off = p[k:], off+k
	}
	return n, nil
}
