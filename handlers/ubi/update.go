package ubi

import (
	"fmt"
	"hash/crc32"
	"io"
)

// VolumeWriter replaces a volume's content through a volume update:
// NewVolumeWriter announces the size (UBI_IOCVOLUP), Write takes the
// bytes in order, and Close checks that exactly that many arrived, then
// reads the volume back and compares it with what was written.
//
// The kernel marks the volume as being updated until its last byte is
// written, and only then clears the mark. So an update that stops early
// (a failed write, a chunk that did not verify, a power cut) leaves a
// volume that UBI reports as corrupted (Volume.Corrupted) and will not
// read, never one that looks whole; the next complete update clears it.
//
// The read-back cannot compare bytes as they are written: the kernel
// refuses to read a volume while its update runs, and the image is not
// kept in memory. So Write keeps a CRC-32 of the bytes, and Close compares
// it with the CRC-32 of the volume read back. Go computes CRC-32 with the
// CPU's instructions for it (PCLMULQDQ, ARMv8 CRC32), at a small part of
// the cost of SHA-256, which the update used to hash with, twice: that made
// it 5 times slower than ubiupdatevol (docs/BENCHMARKS.md, "Raw flash").
// What the read-back still costs is the reading itself.
//
// Call Close in every case, after an error too: it ends the update. After
// an error every call returns it.
type VolumeWriter struct {
	c    Controller
	id   int
	name string
	w    io.WriteCloser // the update

	opt VolumeOptions

	sized
	sum uint32 // CRC-32 of the bytes taken
}

// sized is the state of a writer that takes an image of a size said in
// advance, in order: the bytes announced and taken, the first error
// (every call returns it after), whether it is closed.
type sized struct {
	size, n int64
	err     error
	closed  bool
}

// admit returns the error a Write of p gets before any of it is written:
// an earlier error, ErrClosed, or ErrTooLong (which sticks) for bytes past
// the size.
func (s *sized) admit(p []byte) error {
	switch {
	case s.err != nil:
		return s.err
	case s.closed:
		return ErrClosed
	case int64(len(p)) > s.size-s.n:
		s.err = fmt.Errorf("%w: %d bytes after %d of %d", ErrTooLong, len(p), s.n, s.size)
		return s.err
	}
	return nil
}

// VolumeOptions tune a VolumeWriter or SwapWriter. The zero value reads
// the volume back.
type VolumeOptions struct {
	// NoVerify turns off reading the volume back at Close.
	NoVerify bool
}

// NewVolumeWriter starts the update of volume id to size bytes. Volume
// id reads as corrupted from now until the last byte is written.
func NewVolumeWriter(c Controller, id int, size int64, opt VolumeOptions) (*VolumeWriter, error) {
	name := fmt.Sprintf("volume %d", id)
	if s, ok := c.(fmt.Stringer); ok {
		name = s.String() + " " + name
	}
	if size < 0 {
		return nil, fmt.Errorf("ubi: %s: update of %d bytes", name, size)
	}
	w, err := c.StartUpdate(id, size)
	if err != nil {
		return nil, err
	}
	return &VolumeWriter{c: c, id: id, name: name, w: w, opt: opt, sized: sized{size: size}}, nil
}

// Write implements io.Writer. Bytes past the announced size are refused,
// and nothing of that Write is written.
func (w *VolumeWriter) Write(p []byte) (int, error) {
	if err := w.admit(p); err != nil {
		return 0, err
	}
	n, err := w.w.Write(p)
	w.sum = crc32.Update(w.sum, crc32.IEEETable, p[:n])
	w.n += int64(n)
	if err == nil && n < len(p) {
		err = io.ErrShortWrite
	}
	if err != nil {
		w.err = fmt.Errorf("ubi: %s: update: %w", w.name, err)
	}
	return n, w.err
}

// Close ends the update. It fails with ErrShortUpdate if fewer bytes than
// announced were written (the volume stays marked as corrupted), with
// the first error of a Write, or with ErrVerify if the volume reads back
// other bytes than were written (unless opt.NoVerify).
func (w *VolumeWriter) Close() error {
	if w.closed {
		return w.err
	}
	w.closed = true
	cerr := w.w.Close()
	switch {
	case w.err != nil:
	case w.n < w.size:
		w.err = fmt.Errorf("%w: %s: %d of %d bytes", ErrShortUpdate, w.name, w.n, w.size)
	case cerr != nil:
		w.err = fmt.Errorf("ubi: %s: %w", w.name, cerr)
	default:
		w.err = w.verify()
	}
	return w.err
}

// verify reads the volume back.
func (w *VolumeWriter) verify() error {
	if w.size == 0 || w.opt.NoVerify {
		return nil
	}
	r, err := w.c.OpenVolume(w.id)
	if err != nil {
		return fmt.Errorf("ubi: %s: read-back: %w", w.name, err)
	}
	defer r.Close()
	// Whole LEBs at a time: the kernel reads one LEB per call.
	bufSize := int64(1 << 20)
	if info, err := w.c.Info(); err == nil && info.LEBSize > 0 {
		bufSize = info.LEBSize
	}
	buf := make([]byte, min(bufSize, w.size))
	var sum uint32
	for off := int64(0); off < w.size; {
		k := min(int64(len(buf)), w.size-off)
		if _, err := r.ReadAt(buf[:k], off); err != nil {
			return fmt.Errorf("ubi: %s: read-back at %d: %w", w.name, off, err)
		}
		sum = crc32.Update(sum, crc32.IEEETable, buf[:k])
		off += k
	}
	if sum != w.sum {
		return fmt.Errorf("%w: %s: CRC-32 %08x read back, %08x written", ErrVerify, w.name, sum, w.sum)
	}
	return nil
}

// UpdateVolume replaces volume id's content with size bytes from r
// through a VolumeWriter, and reads it back.
func UpdateVolume(c Controller, id int, size int64, r io.Reader) error {
	w, err := NewVolumeWriter(c, id, size, VolumeOptions{})
	if err != nil {
		return err
	}
	return copyAndClose(w, r, size)
}

// copyAndClose writes size bytes of r to w and closes w. A read error wins
// over what Close says of the short write it leaves.
func copyAndClose(w io.WriteCloser, r io.Reader, size int64) error {
	_, err := io.CopyBuffer(w, io.LimitReader(r, size), make([]byte, max(1, min(size, 1<<20))))
	cerr := w.Close()
	if err != nil {
		return fmt.Errorf("ubi: reading the image: %w", err)
	}
	return cerr
}

// SwapWriter installs a new image as the volume active without a moment
// where active is half written: NewSwapWriter readies the volume spare
// (created, or grown, to fit; of active's type) and starts its update,
// Write takes the image, and Close finishes the update as a VolumeWriter
// does and then, only if that succeeded, renames spare to active and
// active to spare in one atomic UBI_IOCRNVOL. The old content stays in
// spare. If active does not exist, spare is only renamed to it. An update
// that fails or stops early leaves active as it was.
//
// Call Close in every case, after an error too.
type SwapWriter struct {
	c             Controller
	vw            *VolumeWriter
	active, spare string
	renames       []Rename
	err           error
	closed        bool
}

// NewSwapWriter readies spare and starts its update to size bytes.
func NewSwapWriter(c Controller, active, spare string, size int64, opt VolumeOptions) (*SwapWriter, error) {
	if active == spare || active == "" || spare == "" {
		return nil, fmt.Errorf("%w: swap %q with %q", ErrLayout, active, spare)
	}
	vols, err := c.Volumes()
	if err != nil {
		return nil, err
	}
	var act, spr *Volume
	for i := range vols {
		switch vols[i].Name {
		case active:
			act = &vols[i]
		case spare:
			spr = &vols[i]
		}
	}
	typ := Dynamic
	if act != nil {
		typ = act.Type
	}
	if spr != nil && spr.Type != typ {
		if err := c.RemoveVolume(spr.ID); err != nil {
			return nil, fmt.Errorf("ubi: remove spare volume %q of the wrong type: %w", spare, err)
		}
		spr = nil
	}
	switch {
	case spr == nil:
		reserve := size
		if act != nil {
			reserve = max(size, act.Size())
		}
		id, err := c.MakeVolume(VolumeSpec{Name: spare, ID: AutoID, Size: reserve, Type: typ})
		if err != nil {
			return nil, fmt.Errorf("ubi: create spare volume %q: %w", spare, err)
		}
		spr = &Volume{ID: id, Name: spare}
	case spr.Size() < size:
		if err := c.ResizeVolume(spr.ID, size); err != nil {
			return nil, fmt.Errorf("ubi: grow spare volume %q to %d bytes: %w", spare, size, err)
		}
	}
	vw, err := NewVolumeWriter(c, spr.ID, size, opt)
	if err != nil {
		return nil, fmt.Errorf("ubi: update spare volume %q: %w", spare, err)
	}
	s := &SwapWriter{c: c, vw: vw, active: active, spare: spare, renames: []Rename{{ID: spr.ID, Name: active}}}
	if act != nil {
		s.renames = append(s.renames, Rename{ID: act.ID, Name: spare})
	}
	return s, nil
}

// Write implements io.Writer: it writes to the spare volume.
func (s *SwapWriter) Write(p []byte) (int, error) { return s.vw.Write(p) }

// Close finishes the spare's update, then swaps the names. It fails as
// VolumeWriter.Close does, with nothing renamed, or if the rename fails.
func (s *SwapWriter) Close() error {
	if s.closed {
		return s.err
	}
	s.closed = true
	if err := s.vw.Close(); err != nil {
		s.err = fmt.Errorf("ubi: update spare volume %q: %w", s.spare, err)
		return s.err
	}
	if err := s.c.RenameVolumes(s.renames); err != nil {
		name := "UBI"
		if info, ierr := s.c.Info(); ierr == nil {
			name = devName(info)
		}
		s.err = fmt.Errorf("ubi: swap %q and %q on %s: %w", s.active, s.spare, name, err)
	}
	return s.err
}

// SwapUpdate installs size bytes from r as the volume active through a
// SwapWriter, reading the spare back before the swap.
func SwapUpdate(c Controller, active, spare string, size int64, r io.Reader) error {
	w, err := NewSwapWriter(c, active, spare, size, VolumeOptions{})
	if err != nil {
		return err
	}
	return copyAndClose(w, r, size)
}
