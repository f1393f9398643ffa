package partitions

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"strconv"
	"strings"

	"github.com/diskfs/go-diskfs/partition/gpt"
	"github.com/diskfs/go-diskfs/partition/mbr"
)

// ReadWriterAt is the disk Write works on: a file, a block device, or
// memory in tests. If it also has a Sync method, Write calls it between
// the steps that must reach the medium in order.
type ReadWriterAt interface {
	io.ReaderAt
	io.WriterAt
}

var gptSignature = []byte("EFI PART")

// Write writes the table l describes to d, which must be l.DiskSize bytes
// long. It writes only the table: a protective MBR and both GPT headers
// and arrays, or the MBR's entries and disk identifier; the boot code in
// the first 440 bytes is left alone. Writing an MBR also erases the
// headers of a GPT found on d, so that nothing reads the old one.
//
// GUIDs left empty in l are set to random ones, in l itself, so that l
// describes the disk afterwards.
func Write(d ReadWriterAt, l *Layout) error {
	if err := checkGeometry(l.DiskSize, l.SectorSize); err != nil {
		return err
	}
	fillRandom(l)
	dev := &disk{r: d, w: d, size: l.DiskSize}
	var err error
	switch l.Type {
	case "gpt":
		err = writeGPT(dev, l)
	case "mbr":
		err = writeMBR(dev, l)
	default:
		return fmt.Errorf("%w: table type %q", ErrInvalid, l.Type)
	}
	if err != nil {
		return err
	}
	return dev.Sync()
}

func writeGPT(dev *disk, l *Layout) error {
	ss := int64(l.SectorSize)
	t := &gpt.Table{
		LogicalSectorSize:  l.SectorSize,
		PhysicalSectorSize: l.SectorSize,
		GUID:               l.GUID,
		ProtectiveMBR:      true,
	}
	for _, p := range l.Partitions {
		t.Partitions = append(t.Partitions, &gpt.Partition{
			Index:      p.Number,
			Start:      uint64(p.Start / ss),
			End:        uint64(p.End()/ss - 1),
			Size:       uint64(p.Size),
			Type:       gpt.Type(strings.ToUpper(p.Type)),
			Name:       p.Name,
			GUID:       p.GUID,
			Attributes: p.Attributes,
		})
	}
	if err := t.Write(dev, l.DiskSize); err != nil {
		return fmt.Errorf("partitions: writing GPT: %w", err)
	}
	// go-diskfs stores the protective entry's size as the last LBA cut to
	// 32 bits; on a disk of more than 2^32 sectors the UEFI specification
	// wants 0xFFFFFFFF.
	if last := l.DiskSize/ss - 1; last > mbrMaxSectors {
		var b [4]byte
		binary.LittleEndian.PutUint32(b[:], mbrMaxSectors)
		if _, err := dev.WriteAt(b[:], 446+12); err != nil {
			return fmt.Errorf("partitions: writing protective MBR: %w", err)
		}
	}
	return nil
}

func writeMBR(dev *disk, l *Layout) error {
	ss := int64(l.SectorSize)
	// Erase a GPT first: a crash after this leaves a disk that compares
	// different and is written again, never a GPT that hides the new MBR.
	for _, lba := range []int64{1, l.DiskSize/ss - 1} {
		b := make([]byte, ss)
		if _, err := dev.ReadAt(b, lba*ss); err != nil {
			return fmt.Errorf("partitions: reading sector %d: %w", lba, err)
		}
		if bytes.HasPrefix(b, gptSignature) {
			if _, err := dev.WriteAt(make([]byte, ss), lba*ss); err != nil {
				return fmt.Errorf("partitions: erasing GPT header at sector %d: %w", lba, err)
			}
		}
	}
	if err := dev.Sync(); err != nil {
		return fmt.Errorf("partitions: sync: %w", err)
	}
	t := &mbr.Table{LogicalSectorSize: l.SectorSize, PhysicalSectorSize: l.SectorSize}
	for _, p := range l.Partitions {
		typ, err := strconv.ParseUint(strings.TrimPrefix(p.Type, "0x"), 16, 8)
		if err != nil {
			return fmt.Errorf("%w: partition %d type %q", ErrBadType, p.Number, p.Type)
		}
		start, end := p.Start/ss, p.End()/ss-1
		mp := &mbr.Partition{
			Index:    p.Number,
			Bootable: p.Bootable,
			Type:     mbr.Type(typ),
			Start:    uint32(start),
			Size:     uint32(p.Size / ss),
		}
		mp.StartCylinder, mp.StartHead, mp.StartSector = chs(start)
		mp.EndCylinder, mp.EndHead, mp.EndSector = chs(end)
		t.Partitions = append(t.Partitions, mp)
	}
	// The disk identifier (bytes 440-443) is not written by go-diskfs; Linux
	// derives the partitions' PARTUUIDs from it.
	id, err := strconv.ParseUint(l.GUID, 16, 32)
	if err != nil {
		return fmt.Errorf("%w: MBR disk identifier %q", ErrBadGUID, l.GUID)
	}
	var sig [6]byte
	binary.LittleEndian.PutUint32(sig[:4], uint32(id))
	if _, err := dev.WriteAt(sig[:], 440); err != nil {
		return fmt.Errorf("partitions: writing MBR disk identifier: %w", err)
	}
	if err := t.Write(dev, l.DiskSize); err != nil {
		return fmt.Errorf("partitions: writing MBR: %w", err)
	}
	return nil
}

// chs encodes an LBA as the legacy cylinder/head/sector triple of a
// 255-head, 63-sector geometry, as fdisk does; beyond it the entry holds
// the 1023/254/63 marker and readers use the LBA fields.
func chs(lba int64) (cyl, head, sector byte) {
	const heads, sectors = 255, 63
	if lba >= 1024*heads*sectors {
		return 0xff, 0xfe, 0xff
	}
	c := lba / (heads * sectors)
	h := (lba / sectors) % heads
	s := lba%sectors + 1
	return byte(c), byte(h), byte(s) | byte((c>>8)&3)<<6
}

// fillRandom gives every unspecified GUID a random value. The values need
// to be unique, not secret: math/rand/v2 is seeded by the runtime and never
// blocks, where crypto/rand can wait for the kernel's entropy pool on a
// board that just booted without a hardware RNG.
func fillRandom(l *Layout) {
	if l.GUID == "" {
		if l.Type == "mbr" {
			l.GUID = fmt.Sprintf("%08x", max(rand.Uint32(), 1))
		} else {
			l.GUID = randomGUID()
		}
	}
	if l.Type != "gpt" {
		return
	}
	for i := range l.Partitions {
		if l.Partitions[i].GUID == "" {
			l.Partitions[i].GUID = randomGUID()
		}
	}
}

func randomGUID() string {
	var b [16]byte
	binary.LittleEndian.PutUint64(b[:8], rand.Uint64())
	binary.LittleEndian.PutUint64(b[8:], rand.Uint64())
	b[6] = b[6]&0x0f | 0x40 // version 4
	b[8] = b[8]&0x3f | 0x80 // RFC 4122 variant
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// disk adapts an io.ReaderAt (and optionally io.WriterAt) of known size to
// the file interfaces go-diskfs wants.
type disk struct {
	r    io.ReaderAt
	w    io.WriterAt
	size int64
	off  int64
}

func (d *disk) ReadAt(p []byte, off int64) (int, error) {
	if off >= d.size {
		return 0, io.EOF
	}
	if rest := d.size - off; int64(len(p)) > rest {
		n, err := d.r.ReadAt(p[:rest], off)
		if err == nil {
			err = io.EOF
		}
		return n, err
	}
	return d.r.ReadAt(p, off)
}

func (d *disk) WriteAt(p []byte, off int64) (int, error) {
	if d.w == nil {
		return 0, errors.ErrUnsupported
	}
	if off < 0 || off+int64(len(p)) > d.size {
		return 0, fmt.Errorf("partitions: write of %d bytes at %d beyond the disk's %d bytes", len(p), off, d.size)
	}
	return d.w.WriteAt(p, off)
}

func (d *disk) Read(p []byte) (int, error) {
	n, err := d.ReadAt(p, d.off)
	d.off += int64(n)
	return n, err
}

func (d *disk) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += d.off
	case io.SeekEnd:
		offset += d.size
	default:
		return 0, fs.ErrInvalid
	}
	if offset < 0 {
		return 0, fs.ErrInvalid
	}
	d.off = offset
	return offset, nil
}

func (d *disk) Stat() (fs.FileInfo, error) { return nil, errors.ErrUnsupported }
func (d *disk) Close() error               { return nil }

// Sync flushes the underlying device if it can be flushed.
func (d *disk) Sync() error {
	if s, ok := d.w.(interface{ Sync() error }); ok {
		return s.Sync()
	}
	return nil
}
