// Package handlers writes to the places an install changes: whole block
// devices, partitions, byte ranges of a device, and regular files standing
// in for them. The install engine decides what to write where; a handler
// only knows how to get bytes onto one kind of storage quickly and safely.
package handlers

import (
	"errors"
	"fmt"
	"io"
)

// Errors returned by this package. Compare with errors.Is: they are wrapped
// with the path and range they concern.
var (
	// ErrNotFound means the target's path does not exist.
	ErrNotFound = errors.New("handlers: target not found")

	// ErrReadOnly means the target cannot be written: a read-only block
	// device (BLKROGET), a file on a read-only filesystem, no permission.
	ErrReadOnly = errors.New("handlers: target is read-only")

	// ErrUnsupported means the path is neither a block device nor a
	// regular file (a character device, a directory).
	ErrUnsupported = errors.New("handlers: unsupported kind of target")

	// ErrOutOfRange means a read or write reaches past the end of the
	// target, or a window does not fit its device. Targets never grow.
	ErrOutOfRange = errors.New("handlers: beyond the end of the target")

	// ErrNotSupported means the storage does not implement an operation
	// (discard on a device without it). Callers that can do without it,
	// like a quick wipe, ignore it.
	ErrNotSupported = errors.New("handlers: operation not supported by the storage")

	// ErrBusy means another install holds the target (Lock): two writers
	// at once would leave a mix of both.
	ErrBusy = errors.New("handlers: target is being written by another install")
)

// Target is a place to write an image: a block device, a regular file, or
// a window of either. Offsets are relative to the target's start; nothing
// outside [0, Size()) is ever read or written.
type Target interface {
	io.ReaderAt
	io.WriterAt
	// Size is the target's size in bytes.
	Size() int64
	// ZeroRange makes [off, off+n) read as zeros, as cheaply as the storage
	// allows (BLKZEROOUT, a punched hole), writing zeros where it cannot.
	ZeroRange(off, n int64) error
	// Discard tells the storage that [off, off+n) is no longer needed
	// (BLKDISCARD, a punched hole). What the range reads afterwards is up
	// to the storage. It returns an error wrapping ErrNotSupported where
	// the storage cannot discard.
	Discard(off, n int64) error
	// DropCache writes back and then drops cached pages of [off, off+n),
	// so that the next reads come from the medium (read-back checks).
	DropCache(off, n int64) error
	// Sync makes every write so far durable: fsync, and on block devices
	// BLKFLSBUF as well.
	Sync() error
	Close() error
	// String names the target for messages: its path, and the window
	// within it if there is one.
	String() string
}

// Window is a byte range of a bigger target, addressed from 0. Partitions
// are written through a window of the whole disk, at the offset the
// partition table gives, so no partition device node is needed and the
// kernel's view of the table does not matter.
type Window struct {
	t         Target
	off, size int64
}

// NewWindow returns the range [off, off+size) of t as a target of its own.
// Closing the window closes t.
func NewWindow(t Target, off, size int64) (*Window, error) {
	if off < 0 || size < 0 || off > t.Size() || size > t.Size()-off {
		return nil, fmt.Errorf("%w: window at %d of %d bytes in %v (%d bytes)", ErrOutOfRange, off, size, t, t.Size())
	}
	return &Window{t: t, off: off, size: size}, nil
}

// Offset is where the window starts in the underlying target.
func (w *Window) Offset() int64 { return w.off }

// Underlying returns the target the window is a part of.
func (w *Window) Underlying() Target { return w.t }

func (w *Window) check(off, n int64) error {
	if off < 0 || n < 0 || off > w.size || n > w.size-off {
		return fmt.Errorf("%w: %d bytes at %d of %v", ErrOutOfRange, n, off, w)
	}
	return nil
}

// ReadAt implements io.ReaderAt. Like a file, it returns io.EOF for a read
// that reaches the window's end.
func (w *Window) ReadAt(p []byte, off int64) (int, error) {
	return readWithin(w.t, p, off, w.off, w.size)
}

// readWithin reads [off, off+len(p)) of the range of r that starts at base
// and holds size bytes, as a file of size bytes reads: io.EOF for a read
// that reaches the end.
func readWithin(r io.ReaderAt, p []byte, off, base, size int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("%w: negative offset %d", ErrOutOfRange, off)
	}
	if off >= size {
		return 0, io.EOF
	}
	var eof error
	if rest := size - off; int64(len(p)) > rest {
		p, eof = p[:rest], io.EOF
	}
	n, err := r.ReadAt(p, base+off)
	if err == nil {
		err = eof
	}
	return n, err
}

// WriteAt implements io.WriterAt.
func (w *Window) WriteAt(p []byte, off int64) (int, error) {
	if err := w.check(off, int64(len(p))); err != nil {
		return 0, err
	}
	return w.t.WriteAt(p, w.off+off)
}

// Size implements Target.
func (w *Window) Size() int64 { return w.size }

// ZeroRange implements Target.
func (w *Window) ZeroRange(off, n int64) error {
	if err := w.check(off, n); err != nil {
		return err
	}
	return w.t.ZeroRange(w.off+off, n)
}

// Discard implements Target.
func (w *Window) Discard(off, n int64) error {
	if err := w.check(off, n); err != nil {
		return err
	}
	return w.t.Discard(w.off+off, n)
}

// DropCache implements Target.
func (w *Window) DropCache(off, n int64) error {
	if err := w.check(off, n); err != nil {
		return err
	}
	return w.t.DropCache(w.off+off, n)
}

// Sync implements Target.
func (w *Window) Sync() error { return w.t.Sync() }

// Close implements Target.
func (w *Window) Close() error { return w.t.Close() }

func (w *Window) String() string {
	return fmt.Sprintf("%v [%d, +%d)", w.t, w.off, w.size)
}

// zeros is a shared source of zero bytes for writes that stand in for
// BLKZEROOUT or hole punching. It is never written to.
var zeros = make([]byte, 1<<20)

// WriteZeros writes n zero bytes at off, in 1 MiB writes. It is the
// fallback of ZeroRange for storage without a cheaper way.
func WriteZeros(w io.WriterAt, off, n int64) error {
	for n > 0 {
		k := min(n, int64(len(zeros)))
		if _, err := w.WriteAt(zeros[:k], off); err != nil {
			return err
		}
		off += k
		n -= k
	}
	return nil
}
