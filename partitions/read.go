package partitions

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"strings"

	"github.com/diskfs/go-diskfs/partition/gpt"
	"github.com/diskfs/go-diskfs/partition/mbr"
)

// Read returns the partition table on r, a disk of diskSize bytes with
// logical sectors of sectorSize bytes. Like the Linux kernel it takes a
// GPT when there is a valid primary GPT header or a protective (0xEE) MBR
// entry, falling back to the backup GPT when the primary is damaged, and
// an MBR otherwise. Defects a rewrite would repair are listed in
// Layout.Problems. Names are empty on an MBR: it stores none.
//
// Read returns ErrNoTable when neither kind of table is there (blank
// storage) and ErrBadTable when one is there but cannot be used.
func Read(r io.ReaderAt, diskSize int64, sectorSize int) (*Layout, error) {
	if err := checkGeometry(diskSize, sectorSize); err != nil {
		return nil, err
	}
	ss := int64(sectorSize)
	sectors := diskSize / ss
	d := &disk{r: r, size: sectors * ss}
	lba0, err := readSector(d, 0, ss)
	if err != nil {
		return nil, err
	}
	lba1, err := readSector(d, 1, ss)
	if err != nil {
		return nil, err
	}
	last, err := readSector(d, sectors-1, ss)
	if err != nil {
		return nil, err
	}
	hasMBR := bytes.Equal(lba0[510:512], []byte{0x55, 0xaa})
	protective := false
	if hasMBR {
		for i := range 4 {
			if lba0[446+16*i+4] == 0xee {
				protective = true
			}
		}
	}
	switch {
	case bytes.HasPrefix(lba1, gptSignature) || protective:
		return readGPT(d, lba0, lba1, last, sectors, ss)
	case hasMBR:
		return readMBR(d, lba0, sectors, ss)
	case bytes.HasPrefix(last, gptSignature):
		// Only a backup GPT: the start of the disk was erased.
		return readGPT(d, lba0, lba1, last, sectors, ss)
	}
	return nil, ErrNoTable
}

func readSector(d *disk, lba, ss int64) ([]byte, error) {
	b := make([]byte, ss)
	if _, err := d.ReadAt(b, lba*ss); err != nil {
		return nil, fmt.Errorf("partitions: reading sector %d: %w", lba, err)
	}
	return b, nil
}

// gptHeader holds the fields of a GPT header this package checks itself.
type gptHeader struct {
	myLBA, altLBA      uint64
	firstLBA, lastLBA  uint64
	arrayLBA           uint64
	entries, entrySize uint32
	arrayCRC           uint32
	valid              bool // signature and header CRC correct
	saneErr            error
}

func parseHeader(b []byte, sectors, ss int64) gptHeader {
	var h gptHeader
	if !bytes.HasPrefix(b, gptSignature) {
		return h
	}
	size := binary.LittleEndian.Uint32(b[12:16])
	if size < 92 || int(size) > len(b) {
		return h
	}
	hdr := bytes.Clone(b[:size])
	want := binary.LittleEndian.Uint32(hdr[16:20])
	clear(hdr[16:20])
	if crc32.ChecksumIEEE(hdr) != want {
		return h
	}
	h.valid = true
	h.myLBA = binary.LittleEndian.Uint64(b[24:32])
	h.altLBA = binary.LittleEndian.Uint64(b[32:40])
	h.firstLBA = binary.LittleEndian.Uint64(b[40:48])
	h.lastLBA = binary.LittleEndian.Uint64(b[48:56])
	h.arrayLBA = binary.LittleEndian.Uint64(b[72:80])
	h.entries = binary.LittleEndian.Uint32(b[80:84])
	h.entrySize = binary.LittleEndian.Uint32(b[84:88])
	h.arrayCRC = binary.LittleEndian.Uint32(b[88:92])
	// go-diskfs allocates what the header says: refuse absurd values
	// before it does, so a crafted disk cannot exhaust memory.
	n := uint64(sectors)
	switch {
	case h.entrySize != gptEntrySize:
		h.saneErr = fmt.Errorf("partition entry size %d, want %d", h.entrySize, gptEntrySize)
	case h.entries == 0 || h.entries > 4096:
		h.saneErr = fmt.Errorf("%d partition entries", h.entries)
	case h.arrayLBA >= n || h.arrayLBA+(uint64(h.entries)*gptEntrySize+uint64(ss)-1)/uint64(ss) > n:
		h.saneErr = fmt.Errorf("partition array at sector %d beyond the disk", h.arrayLBA)
	case h.firstLBA > h.lastLBA || h.lastLBA >= n:
		h.saneErr = fmt.Errorf("usable sectors %d-%d on a disk of %d", h.firstLBA, h.lastLBA, n)
	}
	return h
}

func readGPT(d *disk, lba0, lba1, last []byte, sectors, ss int64) (*Layout, error) {
	primary := parseHeader(lba1, sectors, ss)
	backup := parseHeader(last, sectors, ss)
	if primary.valid && primary.saneErr != nil {
		return nil, fmt.Errorf("%w: primary GPT header: %v", ErrBadTable, primary.saneErr)
	}
	// go-diskfs falls back to the backup when the primary header or array
	// is damaged; it must not get an absurd backup either.
	if !primary.valid || !arrayOK(d, primary, ss) {
		if backup.valid && backup.saneErr != nil {
			return nil, fmt.Errorf("%w: backup GPT header: %v", ErrBadTable, backup.saneErr)
		}
	}
	t, err := gpt.Read(d, int(ss), int(ss))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadTable, err)
	}
	used := primary
	if t.RecoveredFromBackup {
		used = backup
	}
	if !used.valid {
		return nil, fmt.Errorf("%w: the GPT header changed while it was read", ErrBadTable)
	}
	l := &Layout{
		Type:        "gpt",
		SectorSize:  int(ss),
		DiskSize:    sectors * ss,
		GUID:        strings.ToLower(t.GUID),
		FirstUsable: int64(used.firstLBA) * ss,
		EndUsable:   (int64(used.lastLBA) + 1) * ss,
	}
	for _, p := range t.Partitions {
		if p.End < p.Start {
			return nil, fmt.Errorf("%w: GPT entry %d ends (sector %d) before it starts (sector %d)", ErrBadTable, p.Index, p.End, p.Start)
		}
		l.Partitions = append(l.Partitions, Partition{
			Number:     p.Index,
			Name:       p.Name,
			Type:       strings.ToLower(string(p.Type)),
			GUID:       strings.ToLower(p.GUID),
			Start:      int64(p.Start) * ss,
			Size:       int64(p.End-p.Start+1) * ss,
			Attributes: p.Attributes,
			Bootable:   p.Attributes&gptBootable != 0,
		})
	}
	if t.RecoveredFromBackup {
		l.Problems = append(l.Problems, "the primary GPT is damaged (read from the backup)")
	} else if pr := checkBackup(d, primary, backup, sectors, ss); pr != "" {
		l.Problems = append(l.Problems, pr)
	}
	if !isProtectiveMBR(lba0, sectors) {
		l.Problems = append(l.Problems, "sector 0 does not hold a plain protective MBR (missing, or a hybrid MBR)")
	}
	return l, nil
}

// checkBackup says what is wrong with the backup GPT, or "".
func checkBackup(d *disk, primary, backup gptHeader, sectors, ss int64) string {
	lastLBA := uint64(sectors - 1)
	if primary.altLBA != lastLBA {
		return fmt.Sprintf("the backup GPT is at sector %d, not at the end of the disk (sector %d): the table was made for a disk of another size", primary.altLBA, lastLBA)
	}
	if !backup.valid || backup.saneErr != nil || backup.myLBA != lastLBA {
		return "the backup GPT header is missing or damaged"
	}
	if backup.arrayCRC != primary.arrayCRC || backup.entries != primary.entries {
		return "the backup GPT partition array differs from the primary"
	}
	if !arrayOK(d, backup, ss) {
		return "the backup GPT partition array is damaged"
	}
	return ""
}

// arrayOK reports whether the partition array h points to matches its CRC.
func arrayOK(d *disk, h gptHeader, ss int64) bool {
	if !h.valid || h.saneErr != nil {
		return false
	}
	arr := make([]byte, int64(h.entries)*int64(h.entrySize))
	_, err := d.ReadAt(arr, int64(h.arrayLBA)*ss)
	return err == nil && crc32.ChecksumIEEE(arr) == h.arrayCRC
}

func isProtectiveMBR(b []byte, sectors int64) bool {
	if !bytes.Equal(b[510:512], []byte{0x55, 0xaa}) {
		return false
	}
	e := b[446:510]
	if e[4] != 0xee || binary.LittleEndian.Uint32(e[8:12]) != 1 {
		return false
	}
	want := uint32(min(sectors-1, mbrMaxSectors))
	if binary.LittleEndian.Uint32(e[12:16]) != want {
		return false
	}
	for _, c := range e[16:] {
		if c != 0 {
			return false
		}
	}
	return true
}

func readMBR(d *disk, lba0 []byte, sectors, ss int64) (*Layout, error) {
	t, err := mbr.Read(d, int(ss), int(ss))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadTable, err)
	}
	l := &Layout{
		Type:        "mbr",
		SectorSize:  int(ss),
		DiskSize:    sectors * ss,
		FirstUsable: ss,
		EndUsable:   sectors * ss,
	}
	if id := binary.LittleEndian.Uint32(lba0[440:444]); id != 0 {
		l.GUID = fmt.Sprintf("%08x", id)
	}
	for _, p := range t.Partitions {
		if p.Type == mbr.Empty {
			continue
		}
		if p.Type == 0xee {
			return nil, fmt.Errorf("%w: protective MBR without a GPT at %d-byte sectors", ErrBadTable, ss)
		}
		q := Partition{
			Number:   p.Index,
			Type:     mbrTypeString(byte(p.Type)),
			Start:    int64(p.Start) * ss,
			Size:     int64(p.Size) * ss,
			Bootable: p.Bootable,
		}
		switch p.Type {
		case 0x05, 0x0f, 0x85:
			l.Problems = append(l.Problems, fmt.Sprintf("partition %d is an extended partition; logical partitions are not read", q.Number))
		}
		if q.End() > l.DiskSize {
			l.Problems = append(l.Problems, fmt.Sprintf("partition %d ends at %d, beyond the end of the disk (%d)", q.Number, q.End(), l.DiskSize))
		}
		l.Partitions = append(l.Partitions, q)
	}
	return l, nil
}

// overwritable reports whether err means "nothing usable on the disk", for
// which Apply writes a table without asking.
func overwritable(err error) bool {
	return errors.Is(err, ErrNoTable) || errors.Is(err, ErrBadTable)
}
