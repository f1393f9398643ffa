package handlers

import (
	"fmt"
	"io"
)

// ReaderTarget is a read-only Target over an io.ReaderAt of size bytes:
// storage that is read through something other than a block device or a
// file, such as the good blocks of raw flash (mtd.Reader) or a UBI
// volume, so that code comparing a target with an image reads it like any
// other. Writes fail with ErrReadOnly; Close does not close the reader.
type ReaderTarget struct {
	r    io.ReaderAt
	size int64
	name string
}

// NewReaderTarget returns the first size bytes of r as a read-only
// target called name.
func NewReaderTarget(r io.ReaderAt, size int64, name string) *ReaderTarget {
	return &ReaderTarget{r: r, size: size, name: name}
}

// ReadAt implements io.ReaderAt. Like a file, it returns io.EOF for a read
// that reaches the end.
func (t *ReaderTarget) ReadAt(p []byte, off int64) (int, error) {
	return readWithin(t.r, p, off, 0, t.size)
}

// WriteAt fails with ErrReadOnly.
func (t *ReaderTarget) WriteAt(p []byte, off int64) (int, error) { return 0, t.readOnly() }

// ZeroRange fails with ErrReadOnly.
func (t *ReaderTarget) ZeroRange(off, n int64) error { return t.readOnly() }

// Discard fails with ErrReadOnly.
func (t *ReaderTarget) Discard(off, n int64) error { return t.readOnly() }

func (t *ReaderTarget) readOnly() error { return fmt.Errorf("%w: %s", ErrReadOnly, t.name) }

// Size implements Target.
func (t *ReaderTarget) Size() int64 { return t.size }

// DropCache does nothing: the reader has no cache of this package's.
func (t *ReaderTarget) DropCache(off, n int64) error { return nil }

// Sync does nothing: nothing is written.
func (t *ReaderTarget) Sync() error { return nil }

// Close does nothing; the reader's owner closes it.
func (t *ReaderTarget) Close() error { return nil }

func (t *ReaderTarget) String() string { return t.name }
