package ubi

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"syscall"

	"github.com/lifeboat-updater/lifeboat/handlers/mtd"
)

// The erase counter header that starts every UBI physical eraseblock
// (struct ubi_ec_hdr of drivers/mtd/ubi/ubi-media.h): 64 bytes, big
// endian, protected by a CRC32 of its first 60 bytes.
const (
	ECHeaderSize  = 64
	ECHeaderMagic = 0x55424923 // "UBI#"
	Version       = 1
	MaxEraseCount = 0x7FFFFFFF // UBI_MAX_ERASECOUNTER
)

// ErrBadImage means a UBI image is not what ubinize makes: a size that is
// not whole eraseblocks, an eraseblock without a valid EC header.
var ErrBadImage = errors.New("ubi: not a UBI image for this flash")

// ECHeader is the fields of an erase counter header.
type ECHeader struct {
	Version      uint8
	EC           int64 // how many times the PEB was erased
	VIDHdrOffset uint32
	DataOffset   uint32
	ImageSeq     uint32
}

// crc is UBI's CRC32: crc32_le seeded with 0xFFFFFFFF and no final
// inversion, the complement of the usual IEEE checksum.
func crc(p []byte) uint32 { return ^crc32.ChecksumIEEE(p) }

// ParseECHeader reads an EC header. ok is false when p does not start
// with one (wrong magic, bad CRC): an erased or foreign block.
func ParseECHeader(p []byte) (h ECHeader, ok bool) {
	if len(p) < ECHeaderSize || binary.BigEndian.Uint32(p) != ECHeaderMagic ||
		binary.BigEndian.Uint32(p[60:]) != crc(p[:60]) {
		return ECHeader{}, false
	}
	return ECHeader{
		Version:      p[4],
		EC:           int64(binary.BigEndian.Uint64(p[8:])),
		VIDHdrOffset: binary.BigEndian.Uint32(p[16:]),
		DataOffset:   binary.BigEndian.Uint32(p[20:]),
		ImageSeq:     binary.BigEndian.Uint32(p[24:]),
	}, true
}

// Put writes h into p[:ECHeaderSize] with a fresh CRC.
func (h ECHeader) Put(p []byte) {
	clear(p[:ECHeaderSize])
	binary.BigEndian.PutUint32(p, ECHeaderMagic)
	p[4] = h.Version
	binary.BigEndian.PutUint64(p[8:], uint64(h.EC))
	binary.BigEndian.PutUint32(p[16:], h.VIDHdrOffset)
	binary.BigEndian.PutUint32(p[20:], h.DataOffset)
	binary.BigEndian.PutUint32(p[24:], h.ImageSeq)
	binary.BigEndian.PutUint32(p[60:], crc(p[:60]))
}

// ScanECs reads the erase counters of the PEBs in [off, off+length) of
// dev: one entry per PEB, -1 where the PEB is bad or holds no valid EC
// header. mean is the mean of the valid ones (0 if none).
func ScanECs(dev mtd.Device, off, length int64) (ecs []int64, mean int64, err error) {
	info := dev.Info()
	es := info.EraseSize
	hdr := make([]byte, max(ECHeaderSize, info.WriteSize))
	var sum, n int64
	for o := off; o+es <= off+length; o += es {
		ec := int64(-1)
		bad := false
		if info.IsNAND() {
			if bad, err = dev.IsBad(o); err != nil {
				return nil, 0, fmt.Errorf("ubi: bad block check at %#x: %w", o, err)
			}
		}
		if !bad {
			if _, err := dev.ReadAt(hdr, o); err != nil && !errors.Is(err, io.EOF) {
				return nil, 0, fmt.Errorf("ubi: read EC header at %#x: %w", o, err)
			}
			if h, ok := ParseECHeader(hdr); ok && h.EC >= 0 && h.EC <= MaxEraseCount {
				ec = h.EC
				sum += ec
				n++
			}
		}
		ecs = append(ecs, ec)
	}
	if n > 0 {
		mean = sum / n
	}
	return ecs, mean, nil
}

// FormatOptions say where and how FormatImage writes.
type FormatOptions struct {
	// Offset and Length are the region of the MTD device UBI owns, whole
	// eraseblocks; Length 0 means up to the device's end. Usually the
	// whole MTD partition.
	Offset, Length int64
	// MaxBad is the bad-block budget for the image's eraseblocks (see
	// mtd.Options.MaxBad).
	MaxBad int
	// NoVerify turns off reading each written eraseblock back.
	NoVerify bool
}

// FormatStats count what FormatImage did.
type FormatStats struct {
	Image     mtd.Stats // writing the image's eraseblocks
	Formatted int       // PEBs after the image given a bare EC header
	Bad       int       // PEBs after the image that are bad, or went bad
	MeanEC    int64     // mean erase counter found before the write
	Unknown   int       // good PEBs that had no valid EC header
	ImageSeq  uint32    // the image's sequence number
}

// FormatWriter writes a UBI image made by ubinize (a whole number of
// eraseblocks) to a region of an MTD device, as ubiformat does: erase
// counters survive. Each PEB of the image is written with the erase
// counter of the block it lands on plus one (the mean counter for a block
// without a valid header), bad blocks are passed over and blocks that fail
// with EIO are marked bad; at Close every PEB of the region after the
// image is erased and given an EC header with the image's sequence
// number, so that UBI attaches the image and finds the rest free. UBI must
// not have the MTD device attached.
//
// Write takes the image in order; each whole eraseblock is written as soon
// as it has arrived. Close writes the rest only once the whole image has
// arrived: after a Write error, or with bytes missing, it writes nothing
// more and fails. A FormatWriter holds nothing that needs releasing.
type FormatWriter struct {
	dev mtd.Device
	opt FormatOptions
	w   *mtd.Writer
	ecs []int64 // erase counters found, by PEB of the region; -1: none

	sized
	peb    int // PEBs of the image prepared
	tmpl   ECHeader
	seqSet bool
	st     FormatStats
}

// NewFormatWriter reads the erase counters of the region opt describes and
// returns a FormatWriter for an image of size bytes. It fails with
// ErrBadImage if size is not whole eraseblocks, and as mtd.NewWriter does
// if the region cannot hold the image.
func NewFormatWriter(dev mtd.Device, size int64, opt FormatOptions) (*FormatWriter, error) {
	info := dev.Info()
	es := info.EraseSize
	if opt.Length == 0 && opt.Offset <= info.Size {
		opt.Length = info.Size - opt.Offset
	}
	if es <= 0 || size <= 0 || size%es != 0 {
		return nil, fmt.Errorf("%w: %d bytes is not a whole number of %d-byte eraseblocks", ErrBadImage, size, es)
	}
	f := &FormatWriter{dev: dev, opt: opt, sized: sized{size: size}}
	var err error
	if f.ecs, f.st.MeanEC, err = ScanECs(dev, opt.Offset, opt.Length); err != nil {
		return nil, err
	}
	for i, ec := range f.ecs {
		if ec < 0 {
			if bad, _ := dev.IsBad(opt.Offset + int64(i)*es); !bad || !info.IsNAND() {
				f.st.Unknown++
			}
		}
	}
	f.w, err = mtd.NewWriter(dev, mtd.Options{
		Offset: opt.Offset, Length: opt.Length, Size: size, MaxBad: opt.MaxBad,
		NoVerify: opt.NoVerify, Rewrite: true, Prepare: f.prepare,
	})
	if err != nil {
		return nil, err
	}
	return f, nil
}

// newEC is the erase counter the PEB at off gets.
func (f *FormatWriter) newEC(off int64) int64 {
	if ec := f.ecs[(off-f.opt.Offset)/f.dev.Info().EraseSize]; ec >= 0 {
		return min(ec+1, MaxEraseCount)
	}
	return f.st.MeanEC
}

// prepare puts the erase counter of the block at off into the image's PEB.
func (f *FormatWriter) prepare(off int64, block []byte) error {
	n := f.peb
	f.peb++
	h, ok := ParseECHeader(block)
	if !ok {
		return fmt.Errorf("%w: eraseblock %d of the image has no valid EC header", ErrBadImage, n)
	}
	if !f.seqSet {
		f.tmpl, f.seqSet = h, true
		f.st.ImageSeq = h.ImageSeq
	} else if h.ImageSeq != f.tmpl.ImageSeq {
		return fmt.Errorf("%w: eraseblock %d has image sequence %#x, the first %#x", ErrBadImage, n, h.ImageSeq, f.tmpl.ImageSeq)
	}
	h.EC = f.newEC(off)
	h.Put(block)
	return nil
}

// Write implements io.Writer. Bytes past the image's size are refused
// (ErrTooLong).
func (f *FormatWriter) Write(p []byte) (int, error) {
	if err := f.admit(p); err != nil {
		return 0, err
	}
	n, err := f.w.Write(p)
	f.n += int64(n)
	f.st.Image = f.w.Stats()
	if err != nil {
		f.err = err
	}
	return n, err
}

// Close writes the image's last eraseblock and formats the rest of the
// region. It fails with ErrBadImage, writing nothing, if fewer bytes than
// the image's size arrived, and with the first error of a Write.
func (f *FormatWriter) Close() error {
	if f.closed {
		return f.err
	}
	f.closed = true
	if f.err != nil {
		return f.err
	}
	if f.n < f.size {
		f.err = fmt.Errorf("%w: the image stream ended after %d of %d bytes", ErrBadImage, f.n, f.size)
		return f.err
	}
	f.err = f.w.Close()
	f.st.Image = f.w.Stats()
	if f.err == nil {
		f.err = formatRest(f.dev, &f.st, f.tmpl, f.newEC, f.st.Image.End, f.opt)
	}
	return f.err
}

// Stats returns what the write did so far.
func (f *FormatWriter) Stats() FormatStats { return f.st }

// FormatImage writes size bytes of r, a UBI image, through a FormatWriter.
func FormatImage(dev mtd.Device, r io.Reader, size int64, opt FormatOptions) (FormatStats, error) {
	f, err := NewFormatWriter(dev, size, opt)
	if err != nil {
		return FormatStats{}, err
	}
	err = copyAndClose(f, r, size)
	return f.Stats(), err
}

// formatRest gives each PEB in [from, region end) a bare EC header. It
// writes only the header's sub-page, as UBI itself does: the VID header
// that UBI writes later may share the first page.
func formatRest(dev mtd.Device, st *FormatStats, tmpl ECHeader, newEC func(int64) int64, from int64, opt FormatOptions) error {
	info := dev.Info()
	es := info.EraseSize
	nand := info.IsNAND()
	n := info.WriteSize
	if v := int64(tmpl.VIDHdrOffset); v >= ECHeaderSize && v < n {
		n = v // the sub-page before the VID header
	}
	n = max(n, ECHeaderSize)
	hdr := make([]byte, n)
	back := make([]byte, n)
	// goneBad marks a block that failed with EIO, as nandwrite does.
	goneBad := func(off int64, err error) error {
		if !nand || !errors.Is(err, syscall.EIO) {
			return fmt.Errorf("ubi: format PEB at %#x: %w", off, err)
		}
		_ = dev.MarkBad(off)
		st.Bad++
		return nil
	}
	for off := from; off+es <= opt.Offset+opt.Length; off += es {
		if nand {
			bad, err := dev.IsBad(off)
			if err != nil {
				return fmt.Errorf("ubi: bad block check at %#x: %w", off, err)
			}
			if bad {
				st.Bad++
				continue
			}
		}
		if err := dev.Erase(off, es); err != nil {
			if err := goneBad(off, err); err != nil {
				return err
			}
			continue
		}
		for i := range hdr {
			hdr[i] = 0xFF
		}
		h := tmpl
		h.EC = newEC(off)
		h.Put(hdr)
		if _, err := dev.WriteAt(hdr, off); err != nil {
			_ = dev.Erase(off, es)
			if err := goneBad(off, err); err != nil {
				return err
			}
			continue
		}
		if !opt.NoVerify {
			if _, err := dev.ReadAt(back, off); err != nil || !bytes.Equal(back, hdr) {
				if err == nil {
					err = fmt.Errorf("read-back differs: %w", syscall.EIO)
				}
				_ = dev.Erase(off, es)
				if err := goneBad(off, err); err != nil {
					return err
				}
				continue
			}
		}
		st.Formatted++
	}
	return nil
}
