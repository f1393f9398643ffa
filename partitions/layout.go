package partitions

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"text/tabwriter"
	"unicode/utf16"

	"github.com/google/uuid"
	"github.com/lifeboat-updater/lifeboat/bundle"
)

// Alignment is where Resolve places partitions that have no explicit
// start: the first at 1 MiB, each following one at the next multiple of
// 1 MiB. 1 MiB is a multiple of every flash erase block and RAID stripe
// in practice, and what sgdisk, fdisk and parted use.
const Alignment = 1 << 20

// GPT geometry as written by this package: a 128-entry array of 128-byte
// entries (16 KiB) after the primary header and before the backup header.
const (
	gptEntries    = 128
	gptEntrySize  = 128
	gptArrayBytes = gptEntries * gptEntrySize
	// gptBootable is attribute bit 2, "legacy BIOS bootable".
	gptBootable = 1 << 2
	// mbrMaxSectors is the largest start or size an MBR entry can hold.
	mbrMaxSectors = math.MaxUint32
	gptNameUnits  = 36
)

// Layout is a partition table placed on a disk of a given size: every
// offset exact, in bytes. Resolve builds the layout a bundle wants; Read
// builds the one a disk holds.
type Layout struct {
	Type       string // "gpt" or "mbr"
	SectorSize int    // logical sector size in bytes
	DiskSize   int64  // in bytes, a whole number of sectors

	// GUID is the GPT disk GUID, or the MBR disk identifier as 8 lower-case
	// hex digits. Empty in a resolved layout means "not specified": any
	// value on the disk is accepted, and a random one is written.
	GUID string

	// FirstUsable and EndUsable bound the bytes partitions may occupy:
	// [FirstUsable, EndUsable). On a GPT they exclude the primary and
	// backup tables.
	FirstUsable int64
	EndUsable   int64

	Partitions []Partition

	// Problems lists defects Read found in the table on the disk that a
	// rewrite repairs: a damaged or misplaced backup GPT (a disk image
	// written to a larger disk), a damaged primary, a missing protective
	// MBR. Diff reports them as differences.
	Problems []string
}

// Partition is one entry of a Layout. Start and Size are in bytes.
type Partition struct {
	Number int    // 1-based entry number: the N of /dev/sdaN
	Name   string // GPT name; on an MBR, known only from a resolved layout
	// Type is the lower-case type GUID on a GPT, the type byte as "0x83" on
	// an MBR.
	Type string
	// GUID is the GPT unique partition GUID, lower case. Empty in a
	// resolved layout means "not specified". Always empty on an MBR.
	GUID       string
	Start      int64
	Size       int64
	Attributes uint64 // GPT attribute bits, Bootable included as bit 2
	Bootable   bool   // MBR active flag; on a GPT, attribute bit 2
}

// End is the offset just past the partition.
func (p Partition) End() int64 { return p.Start + p.Size }

// Find returns the partition called name. The install engine uses its
// Start and Size to write an image at an offset of the whole disk, without
// partition device nodes.
func (l *Layout) Find(name string) (Partition, bool) {
	for _, p := range l.Partitions {
		if p.Name == name {
			return p, true
		}
	}
	return Partition{}, false
}

// usable returns where partitions may go on a disk of the given geometry.
func usable(typ string, sectors int64, ss int) (first, end int64) {
	s := int64(ss)
	if typ == "gpt" {
		arr := int64(gptArrayBytes) / s
		// LBA 0 protective MBR, LBA 1 header, then the array; at the end
		// the backup array and the backup header in the last sector.
		return (2 + arr) * s, (sectors - 1 - arr) * s
	}
	return s, sectors * s
}

func checkGeometry(diskSize int64, sectorSize int) error {
	if sectorSize < 512 || sectorSize > 4096 || sectorSize&(sectorSize-1) != 0 {
		return fmt.Errorf("%w: logical sector size %d, want 512, 1024, 2048 or 4096", ErrGeometry, sectorSize)
	}
	if diskSize < int64(sectorSize)*2 {
		return fmt.Errorf("%w: disk of %d bytes", ErrGeometry, diskSize)
	}
	return nil
}

// Resolve places the partitions of t on a disk of diskSize bytes with
// logical sectors of sectorSize bytes. A partition without Start begins at
// the end of the previous one rounded up to Alignment (the first one at
// Alignment); an explicit Start is kept as given, since some boot ROMs
// dictate odd offsets, and must be a whole number of sectors. A Size of 0
// on the last partition takes the rest of the disk up to the last 1 MiB
// boundary before the backup GPT (or the end of an MBR disk).
// GUIDs left empty stay empty: they are filled when the table is written.
func Resolve(t *bundle.Table, diskSize int64, sectorSize int) (*Layout, error) {
	if t == nil {
		return nil, fmt.Errorf("%w: no table", ErrInvalid)
	}
	if err := checkGeometry(diskSize, sectorSize); err != nil {
		return nil, err
	}
	ss := int64(sectorSize)
	sectors := diskSize / ss
	l := &Layout{Type: t.Type, SectorSize: sectorSize, DiskSize: sectors * ss}
	switch t.Type {
	case "gpt":
		if len(t.Partitions) > gptEntries {
			return nil, fmt.Errorf("%w: %d partitions, a GPT holds %d", ErrTooMany, len(t.Partitions), gptEntries)
		}
		if t.GUID != "" {
			g, err := parseGUID(t.GUID)
			if err != nil {
				return nil, fmt.Errorf("disk GUID: %w", err)
			}
			l.GUID = g
		}
	case "mbr":
		if len(t.Partitions) > 4 {
			return nil, fmt.Errorf("%w: %d partitions, an MBR holds 4 primary partitions", ErrTooMany, len(t.Partitions))
		}
		if t.GUID != "" {
			id, err := parseDiskID(t.GUID)
			if err != nil {
				return nil, err
			}
			l.GUID = id
		}
	default:
		return nil, fmt.Errorf("%w: table type %q, want gpt or mbr", ErrInvalid, t.Type)
	}
	if len(t.Partitions) == 0 {
		return nil, fmt.Errorf("%w: no partitions", ErrInvalid)
	}
	l.FirstUsable, l.EndUsable = usable(t.Type, sectors, sectorSize)
	trailer := l.DiskSize - l.EndUsable

	names := map[string]bool{}
	guids := map[string]string{}
	need := l.EndUsable // the largest end any partition needs
	prevEnd := l.FirstUsable
	for i, bp := range t.Partitions {
		p := Partition{Number: i + 1, Name: bp.Name, Attributes: bp.Attributes, Bootable: bp.Bootable}
		if err := checkName(t.Type, bp.Name); err != nil {
			return nil, err
		}
		if names[bp.Name] {
			return nil, fmt.Errorf("%w %q", ErrDuplicateName, bp.Name)
		}
		names[bp.Name] = true
		if err := resolveType(t.Type, bp, &p); err != nil {
			return nil, fmt.Errorf("partition %d %q: %w", p.Number, p.Name, err)
		}
		if bp.GUID != "" {
			if t.Type != "gpt" {
				return nil, fmt.Errorf("partition %d %q: %w: an MBR has no partition GUIDs (its PARTUUIDs derive from the table's disk identifier)", p.Number, p.Name, ErrBadGUID)
			}
			g, err := parseGUID(bp.GUID)
			if err != nil {
				return nil, fmt.Errorf("partition %d %q: %w", p.Number, p.Name, err)
			}
			if other, dup := guids[g]; dup {
				return nil, fmt.Errorf("partition %d %q: %w: %s is also the GUID of %q", p.Number, p.Name, ErrBadGUID, g, other)
			}
			guids[g] = p.Name
			p.GUID = g
		}

		if bp.Start > math.MaxInt64/2 || bp.Size > math.MaxInt64/2 {
			return nil, fmt.Errorf("%w: partition %d %q wants start %d, size %d; disk has %d bytes", ErrTooSmall, p.Number, p.Name, bp.Start, bp.Size, l.DiskSize)
		}
		if bp.Start != 0 {
			if int64(bp.Start)%ss != 0 {
				return nil, fmt.Errorf("%w: partition %d %q: start %d is not a multiple of %d", ErrAlign, p.Number, p.Name, bp.Start, ss)
			}
			p.Start = int64(bp.Start)
		} else {
			p.Start = alignUp(prevEnd, Alignment)
		}
		if p.Start < l.FirstUsable {
			return nil, fmt.Errorf("%w: partition %d %q starts at %d, inside the partition table (first usable byte %d)", ErrOverlap, p.Number, p.Name, p.Start, l.FirstUsable)
		}
		if bp.Size == 0 {
			if i != len(t.Partitions)-1 {
				return nil, fmt.Errorf("%w: partition %d %q: size 0 (rest of the disk) is allowed on the last partition only", ErrInvalid, p.Number, p.Name)
			}
			// End on a 1 MiB boundary too, as sgdisk recommends (encryption
			// and flash tools like aligned ends); a disk whose usable
			// end is unaligned (every GPT) loses less than 1 MiB.
			p.Size = l.EndUsable/Alignment*Alignment - p.Start
			if p.Size <= 0 {
				p.Size = l.EndUsable - p.Start
			}
			if t.Type == "mbr" {
				p.Size = min(p.Size, mbrMaxSectors*ss)
			}
			if p.Size <= 0 {
				need = max(need, p.Start+ss)
			}
		} else {
			if int64(bp.Size)%ss != 0 {
				return nil, fmt.Errorf("%w: partition %d %q: size %d is not a multiple of %d", ErrAlign, p.Number, p.Name, bp.Size, ss)
			}
			p.Size = int64(bp.Size)
		}
		need = max(need, p.End())
		if t.Type == "mbr" && p.Size > 0 && (p.Start/ss > mbrMaxSectors || p.Size/ss > mbrMaxSectors) {
			return nil, fmt.Errorf("%w: partition %d %q: start %d, size %d with %d-byte sectors", ErrTooLarge, p.Number, p.Name, p.Start, p.Size, ss)
		}
		for _, q := range l.Partitions {
			if p.Start < q.End() && q.Start < p.End() {
				return nil, fmt.Errorf("%w: partition %d %q [%d, %d) and partition %d %q [%d, %d)", ErrOverlap,
					p.Number, p.Name, p.Start, p.End(), q.Number, q.Name, q.Start, q.End())
			}
		}
		if t.Type == "gpt" {
			if p.Bootable {
				p.Attributes |= gptBootable
			}
			p.Bootable = p.Attributes&gptBootable != 0
		}
		prevEnd = p.End()
		l.Partitions = append(l.Partitions, p)
	}
	if need > l.EndUsable {
		return nil, fmt.Errorf("%w: the partitions need a disk of %d bytes (%s), the disk has %d bytes (%s)",
			ErrTooSmall, need+trailer, humanSize(need+trailer), l.DiskSize, humanSize(l.DiskSize))
	}
	return l, nil
}

func resolveType(tableType string, bp bundle.Partition, p *Partition) error {
	if tableType == "gpt" {
		g, err := gptType(bp.Type)
		p.Type = g
		return err
	}
	if bp.Attributes != 0 {
		return fmt.Errorf("%w: attributes 0x%x: an MBR has no attribute bits", ErrInvalid, bp.Attributes)
	}
	b, err := mbrType(bp.Type)
	p.Type = mbrTypeString(b)
	return err
}

func checkName(tableType, name string) error {
	if name == "" {
		return fmt.Errorf("%w: a partition has no name", ErrInvalid)
	}
	if strings.ContainsRune(name, 0) {
		return fmt.Errorf("%w: partition name %q contains NUL", ErrInvalid, name)
	}
	if tableType == "gpt" {
		if n := len(utf16.Encode([]rune(name))); n > gptNameUnits {
			return fmt.Errorf("%w: partition name %q is %d UTF-16 units, a GPT holds %d", ErrInvalid, name, n, gptNameUnits)
		}
	}
	return nil
}

// parseGUID returns g in lower-case canonical form.
func parseGUID(g string) (string, error) {
	u, err := uuid.Parse(g)
	if err != nil {
		return "", fmt.Errorf("%w %q: %v", ErrBadGUID, g, err)
	}
	if u == uuid.Nil {
		return "", fmt.Errorf("%w %q: the nil GUID", ErrBadGUID, g)
	}
	return u.String(), nil
}

// parseDiskID accepts an MBR disk identifier as 8 hex digits, with or
// without 0x, and returns it as 8 lower-case digits.
func parseDiskID(s string) (string, error) {
	h := strings.TrimPrefix(strings.ToLower(s), "0x")
	v, err := strconv.ParseUint(h, 16, 32)
	if err != nil || len(h) != 8 || v == 0 {
		return "", fmt.Errorf("%w: MBR disk identifier %q, want 8 hex digits, not all zero", ErrBadGUID, s)
	}
	return h, nil
}

func alignUp(v, a int64) int64 { return (v + a - 1) / a * a }

// humanSize writes n exactly in the largest binary unit that divides it.
func humanSize(n int64) string {
	for _, u := range []struct {
		s string
		v int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n != 0 && n%u.v == 0 {
			return fmt.Sprintf("%d %s", n/u.v, u.s)
		}
	}
	return fmt.Sprintf("%d B", n)
}

// String describes the layout as a table, for dry runs and logs.
func (l *Layout) String() string {
	var b strings.Builder
	guid := l.GUID
	if guid == "" {
		guid = "(any)"
	}
	label := "disk GUID"
	if l.Type == "mbr" {
		label = "disk identifier"
	}
	fmt.Fprintf(&b, "%s table, disk %s (%d sectors of %d bytes), %s %s\n",
		l.Type, humanSize(l.DiskSize), l.DiskSize/int64(max(l.SectorSize, 1)), l.SectorSize, label, guid)
	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "#\tname\tstart\tend\tsize\ttype\tguid\tflags")
	for _, p := range l.Partitions {
		g := p.GUID
		if g == "" {
			g = "-"
		}
		var flags []string
		if p.Bootable {
			flags = append(flags, "bootable")
		}
		if a := p.Attributes &^ gptBootable; a != 0 {
			flags = append(flags, fmt.Sprintf("attributes=0x%x", a))
		}
		if len(flags) == 0 {
			flags = []string{"-"}
		}
		name := p.Name
		if name == "" {
			name = "-"
		}
		fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", p.Number, name, humanSize(p.Start),
			humanSize(p.End()), humanSize(p.Size), typeName(l.Type, p.Type), g, strings.Join(flags, ","))
	}
	w.Flush()
	for _, pr := range l.Problems {
		fmt.Fprintf(&b, "problem: %s\n", pr)
	}
	return b.String()
}
