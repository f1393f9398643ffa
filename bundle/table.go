package bundle

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf16"

	"github.com/google/uuid"
)

// Partition table limits that hold on every disk, so a table beyond them
// is refused when the bundle is made or opened rather than on the device.
const (
	// MaxGPTPartitions is the entries of the GPT partition array Lifeboat
	// writes (128 entries of 128 bytes).
	MaxGPTPartitions = 128
	// MaxMBRPartitions is the primary entries of an MBR; extended and
	// logical partitions are not supported.
	MaxMBRPartitions = 4
	// gptNameUnits is the UTF-16 code units a GPT partition name holds.
	gptNameUnits = 36
	// minSector is the smallest logical sector: starts and sizes must be
	// whole numbers of it on any disk (a 4 KiB-sector disk asks more, and
	// is checked when the table is placed on it).
	minSector = 512
	// maxSector is the largest logical sector Lifeboat writes tables to.
	maxSector = 4096
	// tableAlignment is where a partition without a start goes: the end
	// of the previous one, rounded up to 1 MiB (docs/bundle-format.md).
	tableAlignment = 1 << 20
	// gptFirstUsable is the first byte a partition may use on a GPT disk
	// with 512-byte sectors: the protective MBR, the header and the
	// 16 KiB entry array come first. Larger sectors only move it later.
	gptFirstUsable = 2*minSector + MaxGPTPartitions*128
	// maxPlace bounds starts and sizes so that no sum of two overflows.
	maxPlace = math.MaxInt64 / 2
)

// gptTypes maps the partition type aliases of the format to GPT partition
// type GUIDs (UEFI specification and the Discoverable Partitions
// Specification).
var gptTypes = map[string]string{
	"linux":              "0fc63daf-8483-4772-8e79-3d69d8477de4",
	"esp":                "c12a7328-f81f-11d2-ba4b-00a0c93ec93b",
	"efi":                "c12a7328-f81f-11d2-ba4b-00a0c93ec93b",
	"bios-boot":          "21686148-6449-6e6f-744e-656564454649",
	"bios_grub":          "21686148-6449-6e6f-744e-656564454649", // parted's name
	"swap":               "0657fd6d-a4ab-43c4-84e5-0933c84b4f4f",
	"linux-home":         "933ac7e1-2eb4-4f13-b844-0e14e2aef915",
	"linux-srv":          "3b8f8425-20e0-4f3b-907f-1a25a76f98e8",
	"linux-var":          "4d21b016-b534-45c2-a9fb-5c16e091fd2d",
	"linux-tmp":          "7ec6f557-3bc5-4aca-b293-16ef5df639d1",
	"linux-lvm":          "e6d6d379-f507-44c2-a23c-238f2a3df928",
	"linux-raid":         "a19d880f-05fc-4d3b-a006-743f0f84911e",
	"linux-luks":         "ca7d7ccb-63ed-4c53-861c-1742536059cc",
	"linux-xbootldr":     "bc13c2ff-59e6-4262-a352-b275fd6f7172",
	"linux-root-x86":     "44479540-f297-41b2-9af7-d131d5f0458a",
	"linux-root-x86-64":  "4f68bce3-e8cd-4db1-96e7-fbcaf984b709",
	"linux-root-arm":     "69dad710-2ce4-4e3c-b16c-21a1d49abed3",
	"linux-root-arm64":   "b921b045-1df0-41c3-af44-4c6f280d3fae",
	"linux-root-riscv64": "72ec70a6-cf74-40e6-bd49-4bda08e8f224",
	"basic-data":         "ebd0a0a2-b9e5-4433-87c0-68b6b72699c7",
	"fat":                "ebd0a0a2-b9e5-4433-87c0-68b6b72699c7",
	"fat32":              "ebd0a0a2-b9e5-4433-87c0-68b6b72699c7",
}

// mbrTypes maps the same aliases to MBR partition type bytes. Linux
// filesystems of any role are 0x83 on an MBR: it has no finer codes.
var mbrTypes = map[string]byte{
	"linux":              0x83,
	"linux-home":         0x83,
	"linux-srv":          0x83,
	"linux-var":          0x83,
	"linux-tmp":          0x83,
	"linux-root-x86":     0x83,
	"linux-root-x86-64":  0x83,
	"linux-root-arm":     0x83,
	"linux-root-arm64":   0x83,
	"linux-root-riscv64": 0x83,
	"esp":                0xef,
	"efi":                0xef,
	"swap":               0x82,
	"linux-lvm":          0x8e,
	"linux-raid":         0xfd,
	"linux-luks":         0xe8,
	"linux-xbootldr":     0xea,
	"basic-data":         0x0c,
	"fat":                0x0c,
	"fat32":              0x0c,
	"fat16":              0x0e,
}

// GPTPartitionType resolves a partition's type in a GPT table (an alias
// such as "linux", case-insensitive, or a type GUID) to a lower-case type
// GUID. The error says what is wrong, without the value.
func GPTPartitionType(s string) (string, error) {
	if g, ok := gptTypes[strings.ToLower(s)]; ok {
		return g, nil
	}
	u, err := uuid.Parse(s)
	if err != nil || len(s) != 36 {
		return "", errors.New("want an alias (linux, esp, bios-boot, swap, linux-home, ...) or a type GUID")
	}
	if u == uuid.Nil {
		return "", errors.New("the nil GUID marks an unused entry")
	}
	return u.String(), nil
}

// MBRPartitionType resolves a partition's type in an MBR table (an alias,
// case-insensitive, or a type byte written "0x83") to its type byte. The
// error says what is wrong, without the value.
func MBRPartitionType(s string) (byte, error) {
	if b, ok := mbrTypes[strings.ToLower(s)]; ok {
		return b, nil
	}
	h, ok := strings.CutPrefix(strings.ToLower(s), "0x")
	v, err := strconv.ParseUint(h, 16, 8)
	if !ok || err != nil || h == "" {
		if _, ok := gptTypes[strings.ToLower(s)]; ok {
			return 0, errors.New("no MBR equivalent")
		}
		return 0, errors.New(`want an alias (linux, esp, swap, fat32, ...) or a type byte like "0x83"`)
	}
	switch v {
	case 0x00:
		return 0, errors.New("type 0 marks an unused entry")
	case 0x05, 0x0f, 0x85:
		return 0, errors.New("extended partitions are not supported")
	case 0xee:
		return 0, errors.New("0xee is the GPT protective entry; use a gpt table")
	}
	return byte(v), nil
}

// PartitionError is a partition of a table that no disk could take.
type PartitionError struct {
	Partition int // 1-based
	Name      string
	Err       error
}

func (e *PartitionError) Error() string {
	return fmt.Sprintf("partition %d %s: %v", e.Partition, Printable(e.Name), e.Err)
}

func (e *PartitionError) Unwrap() error { return e.Err }

// Validate checks what can be checked of the table without a disk: its
// type, the partitions' names, types, GUIDs, that starts and sizes are
// whole 512-byte sectors, that only the last partition takes the rest of
// the disk, and that no two partitions overlap where the format places
// them. What depends on the disk (its size, a larger sector size) is
// checked when the table is placed on it. Errors about one partition are
// a *PartitionError.
func (t *Table) Validate() error {
	max := MaxGPTPartitions
	switch t.Type {
	case "gpt":
		if t.GUID != "" {
			if err := checkGUID(t.GUID); err != nil {
				return fmt.Errorf("disk GUID %s: %w", Printable(t.GUID), err)
			}
		}
	case "mbr":
		max = MaxMBRPartitions
		if t.GUID != "" {
			h := strings.TrimPrefix(strings.ToLower(t.GUID), "0x")
			if v, err := strconv.ParseUint(h, 16, 32); err != nil || len(h) != 8 || v == 0 {
				return fmt.Errorf("MBR disk identifier %s: want 8 hex digits, not all zero", Printable(t.GUID))
			}
		}
	default:
		return fmt.Errorf("table type %s, want gpt or mbr", Printable(t.Type))
	}
	switch n := len(t.Partitions); {
	case n == 0:
		return errors.New("the table has no partitions")
	case n > max:
		return fmt.Errorf("%d partitions, a %s table holds %d", n, t.Type, max)
	}
	names := map[string]int{}
	guids := map[string]int{}
	first := int64(gptFirstUsable)
	if t.Type == "mbr" {
		first = minSector
	}
	type span struct{ start, end int64 }
	var placed []span
	prevEnd := first
	for i, p := range t.Partitions {
		perr := func(format string, a ...any) error {
			return &PartitionError{Partition: i + 1, Name: p.Name, Err: fmt.Errorf(format, a...)}
		}
		if err := checkPartitionName(t.Type, p.Name); err != nil {
			return perr("%v", err)
		}
		if j, dup := names[p.Name]; dup {
			return perr("the name of partition %d too", j)
		}
		names[p.Name] = i + 1
		if t.Type == "gpt" {
			if _, err := GPTPartitionType(p.Type); err != nil {
				return perr("type %s: %v", Printable(p.Type), err)
			}
		} else {
			if _, err := MBRPartitionType(p.Type); err != nil {
				return perr("type %s: %v", Printable(p.Type), err)
			}
			if p.Attributes != 0 {
				return perr("attributes %#x: an MBR has no attribute bits", p.Attributes)
			}
		}
		if p.GUID != "" {
			if t.Type != "gpt" {
				return perr("an MBR has no partition GUIDs")
			}
			if err := checkGUID(p.GUID); err != nil {
				return perr("GUID %s: %v", Printable(p.GUID), err)
			}
			g, _ := uuid.Parse(p.GUID)
			if j, dup := guids[g.String()]; dup {
				return perr("GUID %s is also the GUID of partition %d", g, j)
			}
			guids[g.String()] = i + 1
		}
		if p.Start > maxPlace || p.Size > maxPlace {
			return perr("start %d, size %d: beyond any disk", p.Start, p.Size)
		}
		if p.Start%minSector != 0 {
			return perr("start %d is not a multiple of %d", p.Start, minSector)
		}
		if p.Size%minSector != 0 {
			return perr("size %d is not a multiple of %d", p.Size, minSector)
		}
		start := int64(p.Start)
		if p.Start == 0 {
			start = (prevEnd + tableAlignment - 1) / tableAlignment * tableAlignment
		}
		if start < first {
			return perr("starts at %d, inside the partition table (first usable byte %d)", start, first)
		}
		end := start + int64(p.Size)
		if p.Size == 0 {
			if i != len(t.Partitions)-1 {
				return perr("size 0 (the rest of the disk) is allowed on the last partition only")
			}
			end = start + minSector
		}
		if t.Type == "mbr" && (start/maxSector > math.MaxUint32 || int64(p.Size)/maxSector > math.MaxUint32) {
			return perr("start %d, size %d: beyond what an MBR can address", start, p.Size)
		}
		for j, q := range placed {
			if start < q.end && q.start < end {
				return perr("[%d, %d) overlaps partition %d [%d, %d)", start, end, j+1, q.start, q.end)
			}
		}
		placed = append(placed, span{start, end})
		prevEnd = end
	}
	return nil
}

// find returns the partition called name, or nil.
func (t *Table) find(name string) *Partition {
	for i := range t.Partitions {
		if t.Partitions[i].Name == name {
			return &t.Partitions[i]
		}
	}
	return nil
}

func checkGUID(g string) error {
	u, err := uuid.Parse(g)
	if err != nil {
		return errors.New("not a GUID")
	}
	if u == uuid.Nil {
		return errors.New("the nil GUID")
	}
	return nil
}

func checkPartitionName(tableType, name string) error {
	if name == "" {
		return errors.New("no name")
	}
	if !isPrintable(name) {
		return errors.New("the name holds characters that are not printable")
	}
	if tableType == "gpt" {
		if n := len(utf16.Encode([]rune(name))); n > gptNameUnits {
			return fmt.Errorf("the name is %d UTF-16 units, a GPT holds %d", n, gptNameUnits)
		}
	}
	return nil
}
