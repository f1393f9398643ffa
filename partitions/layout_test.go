package partitions

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/lifeboat-updater/lifeboat/bundle"
)

const (
	kib = int64(1) << 10
	mib = int64(1) << 20
	gib = int64(1) << 30
)

const (
	typeLinux = "0fc63daf-8483-4772-8e79-3d69d8477de4"
	typeESP   = "c12a7328-f81f-11d2-ba4b-00a0c93ec93b"
	typeHome  = "933ac7e1-2eb4-4f13-b844-0e14e2aef915"
	typeSwap  = "0657fd6d-a4ab-43c4-84e5-0933c84b4f4f"
	typeBIOS  = "21686148-6449-6e6f-744e-656564454649"
)

func TestResolve(t *testing.T) {
	// A 100 MiB disk with 512-byte sectors: 204800 sectors; the backup GPT
	// takes the last 33, so partitions end by sector 204767.
	const disk100 = 100 * mib
	gptEnd := int64(204800-33) * 512
	tests := []struct {
		name       string
		table      bundle.Table
		diskSize   int64
		sectorSize int
		want       *Layout
	}{
		{
			name: "gpt follow and rest of disk",
			table: bundle.Table{Type: "gpt", GUID: "5D6E8F0A-1B2C-4D3E-8F40-516273849501", Partitions: []bundle.Partition{
				{Name: "boot", Type: "esp", Size: 16 << 20, Bootable: true},
				{Name: "root", Type: "linux", Size: 30 << 20, GUID: "0A1B2C3D-4E5F-4061-8273-8495A6B7C8D9", Attributes: 1 << 60},
				{Name: "data", Type: "linux-home"},
			}},
			diskSize: disk100, sectorSize: 512,
			want: &Layout{Type: "gpt", SectorSize: 512, DiskSize: disk100, GUID: "5d6e8f0a-1b2c-4d3e-8f40-516273849501",
				FirstUsable: 34 * 512, EndUsable: gptEnd,
				Partitions: []Partition{
					{Number: 1, Name: "boot", Type: typeESP, Start: 1 * mib, Size: 16 * mib, Attributes: 4, Bootable: true},
					{Number: 2, Name: "root", Type: typeLinux, GUID: "0a1b2c3d-4e5f-4061-8273-8495a6b7c8d9", Start: 17 * mib, Size: 30 * mib, Attributes: 1 << 60},
					{Number: 3, Name: "data", Type: typeHome, Start: 47 * mib, Size: 52 * mib}, // ends at 99 MiB: the last MiB boundary before the backup GPT
				}},
		},
		{
			name: "gpt odd sizes realign to the next MiB",
			table: bundle.Table{Type: "gpt", Partitions: []bundle.Partition{
				{Name: "a", Type: "bios-boot", Size: 512},
				{Name: "b", Type: "swap", Size: uint64(mib + 512)},
				{Name: "c", Type: "0FC63DAF-8483-4772-8E79-3D69D8477DE4", Size: uint64(3 * mib)},
			}},
			diskSize: disk100, sectorSize: 512,
			want: &Layout{Type: "gpt", SectorSize: 512, DiskSize: disk100, FirstUsable: 34 * 512, EndUsable: gptEnd,
				Partitions: []Partition{
					{Number: 1, Name: "a", Type: typeBIOS, Start: 1 * mib, Size: 512},
					{Number: 2, Name: "b", Type: typeSwap, Start: 2 * mib, Size: mib + 512},
					{Number: 3, Name: "c", Type: typeLinux, Start: 4 * mib, Size: 3 * mib},
				}},
		},
		{
			name: "explicit start kept, next follows it",
			table: bundle.Table{Type: "gpt", Partitions: []bundle.Partition{
				{Name: "loader", Type: "linux", Start: uint64(32 * kib), Size: uint64(4*mib - 32*kib)},
				{Name: "env", Type: "linux", Start: uint64(8 * mib), Size: uint64(64 * kib)},
				{Name: "root", Type: "linux", Size: uint64(8 * mib)},
			}},
			diskSize: disk100, sectorSize: 512,
			want: &Layout{Type: "gpt", SectorSize: 512, DiskSize: disk100, FirstUsable: 34 * 512, EndUsable: gptEnd,
				Partitions: []Partition{
					{Number: 1, Name: "loader", Type: typeLinux, Start: 32 * kib, Size: 4*mib - 32*kib},
					{Number: 2, Name: "env", Type: typeLinux, Start: 8 * mib, Size: 64 * kib},
					{Number: 3, Name: "root", Type: typeLinux, Start: 9 * mib, Size: 8 * mib},
				}},
		},
		{
			name: "gpt 4096-byte sectors",
			table: bundle.Table{Type: "gpt", Partitions: []bundle.Partition{
				{Name: "root", Type: "linux", Size: uint64(8 * mib)},
				{Name: "data", Type: "linux"},
			}},
			diskSize: 64*mib + 100, sectorSize: 4096, // a partial last sector is not usable
			want: &Layout{Type: "gpt", SectorSize: 4096, DiskSize: 64 * mib, FirstUsable: 6 * 4096, EndUsable: 64*mib - 5*4096,
				Partitions: []Partition{
					{Number: 1, Name: "root", Type: typeLinux, Start: 1 * mib, Size: 8 * mib},
					{Number: 2, Name: "data", Type: typeLinux, Start: 9 * mib, Size: 54 * mib},
				}},
		},
		{
			name: "mbr four primaries to the very end",
			table: bundle.Table{Type: "mbr", GUID: "0xDEADBEEF", Partitions: []bundle.Partition{
				{Name: "boot", Type: "fat32", Size: uint64(32 * mib), Bootable: true},
				{Name: "rootA", Type: "linux", Size: uint64(16 * mib)},
				{Name: "rootB", Type: "0x83", Size: uint64(16 * mib)},
				{Name: "data", Type: "linux-home"},
			}},
			diskSize: disk100, sectorSize: 512,
			want: &Layout{Type: "mbr", SectorSize: 512, DiskSize: disk100, GUID: "deadbeef", FirstUsable: 512, EndUsable: disk100,
				Partitions: []Partition{
					{Number: 1, Name: "boot", Type: "0x0c", Start: 1 * mib, Size: 32 * mib, Bootable: true},
					{Number: 2, Name: "rootA", Type: "0x83", Start: 33 * mib, Size: 16 * mib},
					{Number: 3, Name: "rootB", Type: "0x83", Start: 49 * mib, Size: 16 * mib},
					{Number: 4, Name: "data", Type: "0x83", Start: 65 * mib, Size: 35 * mib},
				}},
		},
		{
			name: "64-bit sizes: 16 GiB disk",
			table: bundle.Table{Type: "gpt", Partitions: []bundle.Partition{
				{Name: "root", Type: "linux", Size: uint64(6 * gib)},
				{Name: "data", Type: "linux"},
			}},
			diskSize: 16 * gib, sectorSize: 512,
			want: &Layout{Type: "gpt", SectorSize: 512, DiskSize: 16 * gib, FirstUsable: 34 * 512, EndUsable: 16*gib - 33*512,
				Partitions: []Partition{
					{Number: 1, Name: "root", Type: typeLinux, Start: 1 * mib, Size: 6 * gib},
					{Number: 2, Name: "data", Type: typeLinux, Start: 6*gib + mib, Size: 10*gib - 2*mib},
				}},
		},
		{
			name: "mbr rest of a 3 TiB disk stops at 2^32 sectors",
			table: bundle.Table{Type: "mbr", Partitions: []bundle.Partition{
				{Name: "data", Type: "linux"},
			}},
			diskSize: 3 << 40, sectorSize: 512,
			want: &Layout{Type: "mbr", SectorSize: 512, DiskSize: 3 << 40, FirstUsable: 512, EndUsable: 3 << 40,
				Partitions: []Partition{
					{Number: 1, Name: "data", Type: "0x83", Start: 1 * mib, Size: (1<<32 - 1) * 512},
				}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Resolve(&tt.table, tt.diskSize, tt.sectorSize)
			if err != nil {
				t.Fatalf("Resolve() error: %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Resolve() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestResolveErrors(t *testing.T) {
	p := func(name, typ string, size int64) bundle.Partition {
		return bundle.Partition{Name: name, Type: typ, Size: uint64(size)}
	}
	gptT := func(ps ...bundle.Partition) bundle.Table { return bundle.Table{Type: "gpt", Partitions: ps} }
	mbrT := func(ps ...bundle.Partition) bundle.Table { return bundle.Table{Type: "mbr", Partitions: ps} }
	tests := []struct {
		name       string
		table      bundle.Table
		diskSize   int64
		sectorSize int
		want       error
		msg        string // a part of the message
	}{
		{"too small", gptT(p("a", "linux", 16*mib)), 10 * mib, 512, ErrTooSmall,
			"need a disk of 17842688 bytes (17842688 B), the disk has 10485760 bytes (10 MiB)"},
		{"too small by the backup gpt", gptT(p("a", "linux", 9*mib)), 10 * mib, 512, ErrTooSmall, "need a disk of 10502656 bytes"},
		{"mbr needs no backup", mbrT(p("a", "linux", 9*mib)), 10 * mib, 512, nil, ""},
		{"rest of disk is empty", gptT(p("a", "linux", 9*mib-33*512), p("b", "linux", 0)), 10 * mib, 512, ErrTooSmall, ""},
		{"overlap explicit", gptT(p("a", "linux", 4*mib), bundle.Partition{Name: "b", Type: "linux", Start: uint64(2 * mib), Size: uint64(mib)}), 100 * mib, 512, ErrOverlap, `"b" [2097152, 3145728) and partition 1 "a"`},
		{"start inside the gpt", gptT(bundle.Partition{Name: "a", Type: "linux", Start: 16 * 512, Size: uint64(mib)}), 100 * mib, 512, ErrOverlap, "inside the partition table"},
		{"start in mbr sector", mbrT(bundle.Partition{Name: "a", Type: "linux", Start: 512, Size: uint64(mib)}), 100 * mib, 512, nil, ""},
		{"unaligned size", gptT(p("a", "linux", 1000)), 100 * mib, 512, ErrAlign, "size 1000"},
		{"unaligned start", gptT(bundle.Partition{Name: "a", Type: "linux", Start: uint64(mib + 512), Size: uint64(mib)}), 100 * mib, 4096, ErrAlign, "start 1049088"},
		{"unknown alias", gptT(p("a", "ext4", mib)), 100 * mib, 512, ErrBadType, `"ext4"`},
		{"mbr byte on gpt", gptT(p("a", "0x83", mib)), 100 * mib, 512, ErrBadType, ""},
		{"nil type guid", gptT(p("a", "00000000-0000-0000-0000-000000000000", mib)), 100 * mib, 512, ErrBadType, ""},
		{"guid on mbr", mbrT(p("a", typeLinux, mib)), 100 * mib, 512, ErrBadType, ""},
		{"bios-boot on mbr", mbrT(p("a", "bios-boot", mib)), 100 * mib, 512, ErrBadType, "no MBR equivalent"},
		{"extended on mbr", mbrT(p("a", "0x05", mib)), 100 * mib, 512, ErrBadType, "extended"},
		{"protective on mbr", mbrT(p("a", "0xee", mib)), 100 * mib, 512, ErrBadType, ""},
		{"mbr byte too big", mbrT(p("a", "0x183", mib)), 100 * mib, 512, ErrBadType, ""},
		{"five on mbr", mbrT(p("a", "linux", mib), p("b", "linux", mib), p("c", "linux", mib), p("d", "linux", mib), p("e", "linux", mib)), 100 * mib, 512, ErrTooMany, "4 primary"},
		{"four on mbr", mbrT(p("a", "linux", mib), p("b", "linux", mib), p("c", "linux", mib), p("d", "linux", mib)), 100 * mib, 512, nil, ""},
		{"bad disk guid", bundle.Table{Type: "gpt", GUID: "not-a-guid", Partitions: []bundle.Partition{p("a", "linux", mib)}}, 100 * mib, 512, ErrBadGUID, "not-a-guid"},
		{"nil disk guid", bundle.Table{Type: "gpt", GUID: "00000000-0000-0000-0000-000000000000", Partitions: []bundle.Partition{p("a", "linux", mib)}}, 100 * mib, 512, ErrBadGUID, ""},
		{"bad partition guid", gptT(bundle.Partition{Name: "a", Type: "linux", Size: uint64(mib), GUID: "1234"}), 100 * mib, 512, ErrBadGUID, ""},
		{"same partition guid twice", gptT(
			bundle.Partition{Name: "a", Type: "linux", Size: uint64(mib), GUID: "0a1b2c3d-4e5f-4061-8273-8495a6b7c8d9"},
			bundle.Partition{Name: "b", Type: "linux", Size: uint64(mib), GUID: "0A1B2C3D-4E5F-4061-8273-8495A6B7C8D9"}), 100 * mib, 512, ErrBadGUID, `also the GUID of "a"`},
		{"partition guid on mbr", mbrT(bundle.Partition{Name: "a", Type: "linux", Size: uint64(mib), GUID: "0a1b2c3d-4e5f-4061-8273-8495a6b7c8d9"}), 100 * mib, 512, ErrBadGUID, ""},
		{"bad mbr disk id", bundle.Table{Type: "mbr", GUID: "12345", Partitions: []bundle.Partition{p("a", "linux", mib)}}, 100 * mib, 512, ErrBadGUID, ""},
		{"duplicate names", gptT(p("a", "linux", mib), p("a", "linux", mib)), 100 * mib, 512, ErrDuplicateName, `"a"`},
		{"no name", gptT(p("", "linux", mib)), 100 * mib, 512, ErrInvalid, ""},
		{"name too long", gptT(p(strings.Repeat("x", 37), "linux", mib)), 100 * mib, 512, ErrInvalid, "37 UTF-16 units"},
		{"rest of disk not last", gptT(p("a", "linux", 0), p("b", "linux", mib)), 100 * mib, 512, ErrInvalid, "last partition only"},
		{"attributes on mbr", mbrT(bundle.Partition{Name: "a", Type: "linux", Size: uint64(mib), Attributes: 1}), 100 * mib, 512, ErrInvalid, ""},
		{"no partitions", gptT(), 100 * mib, 512, ErrInvalid, ""},
		{"unknown table type", bundle.Table{Type: "apm", Partitions: []bundle.Partition{p("a", "linux", mib)}}, 100 * mib, 512, ErrInvalid, ""},
		{"bad sector size", gptT(p("a", "linux", mib)), 100 * mib, 520, ErrGeometry, ""},
		{"empty disk", gptT(p("a", "linux", mib)), 0, 512, ErrGeometry, ""},
		{"mbr start beyond 2 TiB", mbrT(bundle.Partition{Name: "a", Type: "linux", Start: 2 << 40, Size: uint64(mib)}), 3 << 40, 512, ErrTooLarge, ""},
		{"huge size", gptT(bundle.Partition{Name: "a", Type: "linux", Size: 1 << 63}), 100 * mib, 512, ErrTooSmall, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Resolve(&tt.table, tt.diskSize, tt.sectorSize)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("Resolve() = %v, want %v", err, tt.want)
			}
			if err != nil && !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("Resolve() = %q, want it to contain %q", err, tt.msg)
			}
		})
	}
}

func TestFind(t *testing.T) {
	l, err := Resolve(&bundle.Table{Type: "gpt", Partitions: []bundle.Partition{
		{Name: "boot", Type: "esp", Size: uint64(8 * mib)},
		{Name: "root", Type: "linux", Size: uint64(16 * mib)},
	}}, 64*mib, 512)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name        string
		ok          bool
		start, size int64
	}{
		{"boot", true, 1 * mib, 8 * mib},
		{"root", true, 9 * mib, 16 * mib},
		{"data", false, 0, 0},
	}
	for _, tt := range tests {
		p, ok := l.Find(tt.name)
		if ok != tt.ok || p.Start != tt.start || p.Size != tt.size {
			t.Errorf("Find(%q) = %d+%d, %v, want %d+%d, %v", tt.name, p.Start, p.Size, ok, tt.start, tt.size, tt.ok)
		}
	}
}

func TestLayoutString(t *testing.T) {
	l, err := Resolve(&bundle.Table{Type: "gpt", GUID: "5d6e8f0a-1b2c-4d3e-8f40-516273849501", Partitions: []bundle.Partition{
		{Name: "boot", Type: "esp", Size: uint64(8 * mib), Bootable: true},
		{Name: "root", Type: "linux", Size: uint64(16 * mib), GUID: "0a1b2c3d-4e5f-4061-8273-8495a6b7c8d9", Attributes: 1 << 60},
		{Name: "data", Type: "0FC63DAF-8483-4772-8E79-3D69D8477DE5"},
	}}, 64*mib, 512)
	if err != nil {
		t.Fatal(err)
	}
	want := `gpt table, disk 64 MiB (131072 sectors of 512 bytes), disk GUID 5d6e8f0a-1b2c-4d3e-8f40-516273849501
#  name  start   end     size    type                                  guid                                  flags
1  boot  1 MiB   9 MiB   8 MiB   esp                                   -                                     bootable
2  root  9 MiB   25 MiB  16 MiB  linux                                 0a1b2c3d-4e5f-4061-8273-8495a6b7c8d9  attributes=0x1000000000000000
3  data  25 MiB  63 MiB  38 MiB  0fc63daf-8483-4772-8e79-3d69d8477de5  -                                     -
`
	if diff := cmp.Diff(want, l.String()); diff != "" {
		t.Errorf("String() mismatch (-want +got):\n%s", diff)
	}
}
