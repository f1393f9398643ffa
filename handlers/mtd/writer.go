package mtd

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"syscall"
)

// Options say where and how a Writer writes.
type Options struct {
	// Offset is where the region starts in the device, a multiple of the
	// erase block size.
	Offset int64
	// Length is the region's size, a multiple of the erase block size;
	// 0 means up to the device's end. The image and the bad blocks it
	// passes over must fit in it: nothing past it is read or written.
	Length int64
	// Size is the image's size if known. NewWriter then checks, before
	// anything is written, that the region's good blocks can hold it.
	Size int64
	// MaxBad is the bad-block budget: how many bad blocks (found marked,
	// or marked by this write) the write may pass over before it fails
	// with ErrTooManyBad. 0 means no budget but the region's end;
	// negative means not one.
	MaxBad int
	// NoVerify turns off reading back each block after writing it.
	NoVerify bool
	// Rewrite turns off skip-unchanged: every block is erased and written
	// even when it already holds the image's bytes.
	Rewrite bool
	// Prepare, if set, is called with each block of the image and the
	// device offset of the block it is about to be written to, before the
	// block there is read, erased or written. It may change the data: UBI
	// puts the erase counter of the block it lands on into its header.
	// When that block turns out bad, Prepare is called again with the
	// same data (as changed) and the next block's offset.
	Prepare func(off int64, block []byte) error
}

// Stats count what a Writer did.
type Stats struct {
	Bytes        int64 // image bytes taken
	Blocks       int   // erase blocks of image data
	Written      int   // blocks erased (or found blank) and written
	Unchanged    int   // blocks that held the data already: left alone
	EraseSkipped int   // blocks written without an erase: already blank (not NAND)
	BlankPages   int   // all-0xFF pages (write units) not written
	BadSkipped   int   // blocks already marked bad, passed over
	MarkedBad    int   // blocks this write marked bad after an I/O error
	Scrubbed     int   // blocks that held the data, but only with ECC corrections: rewritten
	Corrected    int   // bit flips the ECC corrected in the blocks' read-backs
	End          int64 // device offset after the last block used
}

// Bad is the number of bad blocks the write passed over.
func (s Stats) Bad() int { return s.BadSkipped + s.MarkedBad }

// Writer writes an image to an MTD region. It is an io.WriteCloser: each
// full erase block is written as soon as it has been received, the last
// partial one at Close, padded with 0xFF. After an error every call
// returns it. When the stream that feeds it fails, do not call Close:
// that would write the partial block. A Writer holds nothing that needs
// releasing.
//
// Flash whose Info().IsNAND() is false (NOR, RAM, block2mtd) has no bad
// blocks: an I/O error there fails the write.
type Writer struct {
	dev  Device
	info Info
	opt  Options
	name string
	end  int64 // region end
	unit int64 // write unit: a NAND page, a bigger run on NOR

	buf  []byte // the block being received
	n    int    // bytes of buf filled
	old  []byte // a block read from flash
	next int64  // device offset of the next block to consider
	ecc  ECCStatser

	stats  Stats
	err    error
	closed bool
}

// NewWriter returns a Writer to the region opt describes. It fails with
// ErrReadOnly on a device that cannot be written, ErrUnaligned on a
// region not made of whole erase blocks, and, when opt.Size is known,
// ErrNoSpace or ErrTooManyBad if the image cannot fit.
func NewWriter(dev Device, opt Options) (*Writer, error) {
	info := dev.Info()
	name := fmt.Sprint(dev)
	if s, ok := dev.(fmt.Stringer); ok {
		name = s.String()
	}
	if !info.Writable() {
		return nil, fmt.Errorf("%w: %s (MTD_WRITEABLE is clear)", ErrReadOnly, name)
	}
	es := info.EraseSize
	if es <= 0 || info.WriteSize <= 0 || es%info.WriteSize != 0 {
		return nil, fmt.Errorf("mtd: %s: bad geometry: erase size %d, write size %d", name, es, info.WriteSize)
	}
	if opt.Length == 0 && opt.Offset <= info.Size {
		opt.Length = info.Size - opt.Offset
	}
	if opt.Offset < 0 || opt.Offset%es != 0 || opt.Length%es != 0 {
		return nil, fmt.Errorf("%w: region at %#x of %#x bytes on %s (erase size %#x)", ErrUnaligned, opt.Offset, opt.Length, name, es)
	}
	if opt.Length < 0 || opt.Offset+opt.Length > info.Size {
		return nil, fmt.Errorf("%w: region at %#x of %#x bytes is past the end of %s (%#x bytes)", ErrNoSpace, opt.Offset, opt.Length, name, info.Size)
	}
	w := &Writer{
		dev: dev, info: info, opt: opt, name: name,
		end:  opt.Offset + opt.Length,
		unit: writeUnit(info),
		buf:  make([]byte, es),
		old:  make([]byte, es),
		next: opt.Offset,
	}
	w.stats.End = opt.Offset
	w.ecc, _ = dev.(ECCStatser)
	if opt.Size > 0 {
		if err := w.checkFits(opt.Size); err != nil {
			return nil, err
		}
	}
	return w, nil
}

// writeUnit is how much is written at once, and what counts as a page
// that is left out when all 0xFF: a page on NAND; on NOR, whose write
// size is often a byte, runs of up to 4 KiB.
func writeUnit(info Info) int64 {
	u := info.WriteSize
	if info.IsNAND() {
		return u
	}
	for u < 4096 && info.EraseSize%(2*u) == 0 {
		u *= 2
	}
	return u
}

// checkFits walks the region's bad blocks before anything is written.
func (w *Writer) checkFits(size int64) error {
	es := w.info.EraseSize
	need := (size + es - 1) / es
	var good int64
	bad := 0
	for off := w.opt.Offset; good < need; off += es {
		if off+es > w.end {
			return fmt.Errorf("%w: %d bytes need %d erase blocks, %s has %d good ones in [%#x, %#x) (%d bad)",
				ErrNoSpace, size, need, w.name, good, w.opt.Offset, w.end, bad)
		}
		if w.info.IsNAND() {
			isBad, err := w.dev.IsBad(off)
			if err != nil {
				return fmt.Errorf("mtd: %s: bad block check at %#x: %w", w.name, off, err)
			}
			if isBad {
				bad++
				if w.overBudget(bad) {
					return fmt.Errorf("%w: %d bad blocks before the image's end in %s, budget %d", ErrTooManyBad, bad, w.name, w.opt.MaxBad)
				}
				continue
			}
		}
		good++
	}
	return nil
}

func (w *Writer) overBudget(bad int) bool {
	return (w.opt.MaxBad < 0 && bad > 0) || (w.opt.MaxBad > 0 && bad > w.opt.MaxBad)
}

// Write implements io.Writer.
func (w *Writer) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	if w.closed {
		return 0, ErrClosed
	}
	done := 0
	for len(p) > 0 {
		k := copy(w.buf[w.n:], p)
		w.n += k
		p = p[k:]
		if w.n == len(w.buf) {
			if err := w.flush(); err != nil {
				w.err = err
				return done, err
			}
		}
		done += k
	}
	return done, nil
}

// ReadFrom implements io.ReaderFrom, so io.Copy fills whole blocks
// without an extra buffer.
func (w *Writer) ReadFrom(r io.Reader) (int64, error) {
	var total int64
	for {
		if w.err != nil {
			return total, w.err
		}
		if w.closed {
			return total, ErrClosed
		}
		k, err := io.ReadFull(r, w.buf[w.n:])
		w.n += k
		total += int64(k)
		if w.n == len(w.buf) {
			if ferr := w.flush(); ferr != nil {
				w.err = ferr
				return total, ferr
			}
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

// Close writes the last partial block, padded with 0xFF. It returns the
// first error of the write, if any.
func (w *Writer) Close() error {
	if w.closed {
		return w.err
	}
	w.closed = true
	if w.err == nil && w.n > 0 {
		w.err = w.flush()
	}
	return w.err
}

// Stats returns what the write did so far.
func (w *Writer) Stats() Stats { return w.stats }

// flush writes buf[:n] as the next block, padded with 0xFF.
func (w *Writer) flush() error {
	for i := w.n; i < len(w.buf); i++ {
		w.buf[i] = 0xFF
	}
	w.stats.Bytes += int64(w.n)
	w.stats.Blocks++
	w.n = 0
	es := w.info.EraseSize
	for {
		off := w.next
		if off+es > w.end {
			return fmt.Errorf("%w: %s: block %d of the image would go past the region's end %#x (%d bad blocks passed over)",
				ErrNoSpace, w.name, w.stats.Blocks, w.end, w.stats.Bad())
		}
		if w.info.IsNAND() {
			bad, err := w.dev.IsBad(off)
			if err != nil {
				return fmt.Errorf("mtd: %s: bad block check at %#x: %w", w.name, off, err)
			}
			if bad {
				w.stats.BadSkipped++
				w.next += es
				if err := w.checkBudget(off, nil); err != nil {
					return err
				}
				continue
			}
		}
		if w.opt.Prepare != nil {
			if err := w.opt.Prepare(off, w.buf); err != nil {
				return fmt.Errorf("mtd: %s: block at %#x: %w", w.name, off, err)
			}
		}
		ok, err := w.writeBlock(off, w.buf)
		if err != nil {
			return err
		}
		w.next += es
		if ok {
			w.stats.End = w.next
			return nil
		}
	}
}

func (w *Writer) checkBudget(off int64, cause error) error {
	if !w.overBudget(w.stats.Bad()) {
		return nil
	}
	err := fmt.Errorf("%w: %s: %d bad blocks by %#x, budget %d", ErrTooManyBad, w.name, w.stats.Bad(), off, w.opt.MaxBad)
	if cause != nil {
		err = fmt.Errorf("%w (last: %w)", err, cause)
	}
	return err
}

// writeBlock puts data on the block at off. It returns false, nil when
// the block went bad (it is marked) and the data must go to the next one.
func (w *Writer) writeBlock(off int64, data []byte) (bool, error) {
	nand := w.info.IsNAND()
	es := w.info.EraseSize
	blank := false
	// NOR needs the read to tell a blank block; skip-unchanged needs it
	// everywhere.
	if !w.opt.Rewrite || !nand {
		ok, flips, err := w.readBlock(off, w.old)
		same := err == nil && ok && !w.opt.Rewrite && bytes.Equal(w.old, data)
		switch {
		case err != nil && !nand:
			return false, fmt.Errorf("mtd: %s: read at %#x: %w", w.name, off, err)
		case same && flips == 0:
			w.stats.Unchanged++
			return true, nil
		case same:
			// The data is right only thanks to the ECC: the block
			// is refreshed before more bits flip.
			w.stats.Scrubbed++
		case err == nil && !nand:
			// NAND pages programmed with 0xFF are not blank for
			// the ECC: only NOR (and RAM) skips the erase.
			blank = allFF(w.old)
		}
	}
	if blank {
		w.stats.EraseSkipped++
	} else if err := w.dev.Erase(off, es); err != nil {
		if nand && errors.Is(err, syscall.EIO) {
			return false, w.markBad(off, fmt.Errorf("erase: %w", err))
		}
		return false, fmt.Errorf("mtd: %s: erase at %#x: %w", w.name, off, err)
	}
	for i := int64(0); i < es; {
		if allFF(data[i : i+w.unit]) {
			w.stats.BlankPages++
			i += w.unit
			continue
		}
		j := i + w.unit
		for j < es && !allFF(data[j:j+w.unit]) {
			j += w.unit
		}
		if _, err := w.dev.WriteAt(data[i:j], off+i); err != nil {
			if nand && errors.Is(err, syscall.EIO) {
				// As nandwrite: erase what was half written, then
				// mark the block bad.
				_ = w.dev.Erase(off, es)
				return false, w.markBad(off, fmt.Errorf("write at %#x: %w", off+i, err))
			}
			return false, fmt.Errorf("mtd: %s: write at %#x: %w", w.name, off+i, err)
		}
		i = j
	}
	if !w.opt.NoVerify {
		ok, flips, err := w.readBlock(off, w.old)
		w.stats.Corrected += flips
		if err == nil && ok && bytes.Equal(w.old, data) {
			w.stats.Written++
			return true, nil
		}
		why := fmt.Errorf("%w at %#x", ErrVerify, off)
		if err != nil {
			why = fmt.Errorf("read-back at %#x: %w", off, err)
		} else if !ok {
			why = fmt.Errorf("%w at %#x: uncorrectable ECC error", ErrVerify, off)
		}
		if nand {
			_ = w.dev.Erase(off, es)
			return false, w.markBad(off, why)
		}
		return false, fmt.Errorf("mtd: %s: %w", w.name, why)
	}
	w.stats.Written++
	return true, nil
}

// readBlock reads the block at off into p. ok is false when the ECC
// counters say the read had an uncorrectable error: the bytes cannot be
// trusted even if they look right. flips is the number of bit flips the
// ECC corrected.
func (w *Writer) readBlock(off int64, p []byte) (ok bool, flips int, err error) {
	var before ECCStats
	if w.ecc != nil {
		if before, err = w.ecc.ECCStats(); err != nil {
			w.ecc = nil // the device cannot tell; compare bytes only
		}
	}
	if _, err := w.dev.ReadAt(p, off); err != nil {
		return false, 0, err
	}
	if w.ecc == nil {
		return true, 0, nil
	}
	after, err := w.ecc.ECCStats()
	if err != nil {
		return true, 0, nil
	}
	return after.Failed == before.Failed, int(after.Corrected - before.Corrected), nil
}

func (w *Writer) markBad(off int64, cause error) error {
	// A block that cannot be marked is still passed over: the next
	// install meets the same failure and passes it over too.
	_ = w.dev.MarkBad(off)
	w.stats.MarkedBad++
	return w.checkBudget(off, cause)
}

var ff = bytes.Repeat([]byte{0xFF}, 4096)

func allFF(p []byte) bool {
	for len(p) > 0 {
		k := min(len(p), len(ff))
		if !bytes.Equal(p[:k], ff[:k]) {
			return false
		}
		p = p[k:]
	}
	return true
}

// WriteImage copies r to the region opt describes and returns what it did.
func WriteImage(dev Device, r io.Reader, opt Options) (Stats, error) {
	w, err := NewWriter(dev, opt)
	if err != nil {
		return Stats{}, err
	}
	if _, err := w.ReadFrom(r); err != nil {
		w.closed = true // a partial last block must not be written
		return w.Stats(), err
	}
	err = w.Close()
	return w.Stats(), err
}
