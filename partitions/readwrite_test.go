package partitions

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/lifeboat-updater/lifeboat/bundle"
)

// memDisk is a disk in memory.
type memDisk []byte

func (m memDisk) ReadAt(p []byte, off int64) (int, error) {
	if off >= int64(len(m)) {
		return 0, os.ErrInvalid
	}
	n := copy(p, m[off:])
	if n < len(p) {
		return n, os.ErrInvalid
	}
	return n, nil
}

func (m memDisk) WriteAt(p []byte, off int64) (int, error) {
	if off+int64(len(p)) > int64(len(m)) {
		return 0, os.ErrInvalid
	}
	return copy(m[off:], p), nil
}

// sparseFile creates a file of size bytes that takes no space.
func sparseFile(t *testing.T, size int64) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "disk.img")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	return path
}

func openRW(t *testing.T, path string) *os.File {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

var (
	gptFixture = bundle.Table{Type: "gpt", Partitions: []bundle.Partition{
		{Name: "boot", Type: "esp", Size: 16 << 20, Bootable: true},
		{Name: "rootA", Type: "linux", Size: 24 << 20, GUID: "0a1b2c3d-4e5f-4061-8273-8495a6b7c8d9"},
		{Name: "rootB", Type: "linux", Size: 24 << 20, Attributes: 1 << 63},
		{Name: "data", Type: "linux-home"},
	}}
	mbrFixture = bundle.Table{Type: "mbr", Partitions: []bundle.Partition{
		{Name: "boot", Type: "fat32", Size: 16 << 20, Bootable: true},
		{Name: "rootA", Type: "linux", Size: 24 << 20},
		{Name: "swap", Type: "swap", Size: 8 << 20},
		{Name: "data", Type: "0x83"},
	}}
)

// forRead is how Read sees a written layout: an MBR stores no names.
func forRead(l *Layout) *Layout {
	c := *l
	c.Partitions = append([]Partition(nil), l.Partitions...)
	if c.Type == "mbr" {
		for i := range c.Partitions {
			c.Partitions[i].Name = ""
		}
	}
	return &c
}

func TestWriteRead(t *testing.T) {
	tests := []struct {
		name       string
		table      bundle.Table
		size       int64
		sectorSize int
	}{
		{"gpt", gptFixture, 128 * mib, 512},
		{"gpt 4k sectors", gptFixture, 128 * mib, 4096},
		{"gpt 16 GiB", gptFixture, 16 * gib, 512},
		{"gpt 3 TiB", gptFixture, 3 << 40, 512},
		{"mbr", mbrFixture, 128 * mib, 512},
		{"mbr 4k sectors", mbrFixture, 128 * mib, 4096},
		{"mbr 16 GiB", mbrFixture, 16 * gib, 512},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := openRW(t, sparseFile(t, tt.size))
			l, err := Resolve(&tt.table, tt.size, tt.sectorSize)
			if err != nil {
				t.Fatal(err)
			}
			if err := Write(f, l); err != nil {
				t.Fatalf("Write() = %v", err)
			}
			if l.GUID == "" || (l.Type == "gpt" && l.Partitions[0].GUID == "") {
				t.Errorf("Write() left GUIDs empty: %+v", l)
			}
			got, err := Read(f, tt.size, tt.sectorSize)
			if err != nil {
				t.Fatalf("Read() = %v", err)
			}
			if diff := cmp.Diff(forRead(l), got); diff != "" {
				t.Errorf("Read() after Write() mismatch (-want +got):\n%s", diff)
			}
			if d := Diff(l, got); len(d) != 0 {
				t.Errorf("Diff(written, read) = %q, want none", d)
			}
			if tt.sectorSize == 512 && tt.table.Type == "gpt" {
				sgdiskVerify(t, f.Name())
			}
		})
	}
}

// sgdiskVerify cross-checks a GPT with the reference tool.
func sgdiskVerify(t *testing.T, path string) {
	t.Helper()
	if _, err := exec.LookPath("sgdisk"); err != nil {
		t.Log("sgdisk not installed (Debian package gdisk): GPT not cross-checked")
		return
	}
	out, err := exec.Command("sgdisk", "-v", path).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "No problems found") {
		t.Errorf("sgdisk -v %s = %v:\n%s", path, err, out)
	}
}

func TestReadBlankAndDamaged(t *testing.T) {
	good := func(t *testing.T, table bundle.Table) memDisk {
		d := make(memDisk, 64*mib)
		l, err := Resolve(&table, int64(len(d)), 512)
		if err != nil {
			t.Fatal(err)
		}
		if err := Write(d, l); err != nil {
			t.Fatal(err)
		}
		return d
	}
	small := bundle.Table{Type: "gpt", Partitions: []bundle.Partition{{Name: "a", Type: "linux", Size: 8 << 20}, {Name: "b", Type: "linux"}}}
	smallMBR := bundle.Table{Type: "mbr", Partitions: []bundle.Partition{{Name: "a", Type: "linux", Size: 8 << 20}}}
	last := 64*mib - 512
	tests := []struct {
		name     string
		disk     func(t *testing.T) memDisk
		wantErr  error
		problems []string // a part of each problem wanted
	}{
		{"blank", func(t *testing.T) memDisk { return make(memDisk, 64*mib) }, ErrNoTable, nil},
		{"bare filesystem", func(t *testing.T) memDisk {
			d := make(memDisk, 64*mib)
			copy(d[1024+56:], []byte{0x53, 0xef}) // an ext4 superblock magic, no table
			return d
		}, ErrNoTable, nil},
		{"boot sector, not a table", func(t *testing.T) memDisk {
			d := make(memDisk, 64*mib)
			for i := range 510 {
				d[i] = byte(i*7 + 3)
			}
			d[510], d[511] = 0x55, 0xaa
			return d
		}, ErrBadTable, nil},
		{"protective mbr without gpt", func(t *testing.T) memDisk {
			d := good(t, small)
			clear(d[512:1024])
			clear(d[last:])
			return d
		}, ErrBadTable, nil},
		{"gpt clean", func(t *testing.T) memDisk { return good(t, small) }, nil, nil},
		{"mbr clean", func(t *testing.T) memDisk { return good(t, smallMBR) }, nil, nil},
		{"primary header damaged", func(t *testing.T) memDisk {
			d := good(t, small)
			d[512+40] ^= 1
			return d
		}, nil, []string{"primary GPT is damaged"}},
		{"primary array damaged", func(t *testing.T) memDisk {
			d := good(t, small)
			d[1024+60] ^= 1
			return d
		}, nil, []string{"primary GPT is damaged"}},
		{"start of disk erased", func(t *testing.T) memDisk {
			d := good(t, small)
			clear(d[:mib])
			return d
		}, nil, []string{"primary GPT is damaged", "protective MBR"}},
		{"backup header missing", func(t *testing.T) memDisk {
			d := good(t, small)
			clear(d[last:])
			return d
		}, nil, []string{"backup GPT header is missing"}},
		{"backup array damaged", func(t *testing.T) memDisk {
			d := good(t, small)
			d[last-32*512+60] ^= 1
			return d
		}, nil, []string{"backup GPT partition array is damaged"}},
		{"hybrid mbr", func(t *testing.T) memDisk {
			d := good(t, small)
			d[446+16+4] = 0x83
			return d
		}, nil, []string{"not hold a plain protective MBR"}},
		{"absurd entry count", func(t *testing.T) memDisk {
			d := good(t, small)
			setHeader(d[512:1024], 80, 1<<30)
			return d
		}, ErrBadTable, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := tt.disk(t)
			l, err := Read(d, int64(len(d)), 512)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("Read() = %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			ok := len(l.Problems) == len(tt.problems)
			for i := 0; ok && i < len(tt.problems); i++ {
				ok = strings.Contains(l.Problems[i], tt.problems[i])
			}
			if !ok {
				t.Errorf("Read().Problems = %q, want problems containing %q", l.Problems, tt.problems)
			}
			if len(l.Partitions) == 0 {
				t.Errorf("Read() found no partitions")
			}
		})
	}
}

// setHeader changes a 32-bit field of a GPT header and fixes its CRC, as a
// crafted disk would.
func setHeader(h []byte, off int, v uint32) {
	putLE32(h[off:], v)
	putLE32(h[16:], 0)
	putLE32(h[16:], crc32IEEE(h[:92]))
}

func TestReadGrownDisk(t *testing.T) {
	// A disk image made for 80 MiB written to a 128 MiB disk: the backup
	// GPT sits in the middle. Apply must see it and rewrite.
	d := make(memDisk, 128*mib)
	l, err := Resolve(&gptFixture, 80*mib, 512)
	if err != nil {
		t.Fatal(err)
	}
	if err := Write(d[:80*mib], l); err != nil {
		t.Fatal(err)
	}
	got, err := Read(d, int64(len(d)), 512)
	if err != nil {
		t.Fatalf("Read() = %v", err)
	}
	if len(got.Problems) != 2 || !strings.Contains(got.Problems[0], "not at the end of the disk") || !strings.Contains(got.Problems[1], "protective MBR") {
		t.Errorf("Read().Problems = %q, want the misplaced backup and the short protective MBR", got.Problems)
	}
	want, err := Resolve(&gptFixture, int64(len(d)), 512)
	if err != nil {
		t.Fatal(err)
	}
	if diff := Diff(want, got); len(diff) != 3 {
		t.Errorf("Diff() = %q, want the 2 problems and the size of \"data\"", diff)
	}
}

func TestApplyFile(t *testing.T) {
	path := sparseFile(t, 128*mib)

	check, err := Check(path, &gptFixture)
	if err != nil || check.Wrote || len(check.Differences) != 1 || check.Before != nil {
		t.Fatalf("Check(blank) = %+v, %v; want 1 difference, nothing written", check, err)
	}
	first, err := Apply(path, &gptFixture)
	if err != nil || !first.Wrote {
		t.Fatalf("Apply(blank) = %+v, %v; want written", first, err)
	}
	second, err := Apply(path, &gptFixture)
	if err != nil || second.Wrote || len(second.Differences) != 0 {
		t.Fatalf("Apply(again) = %+v, %v; want nothing written", second, err)
	}
	if diff := cmp.Diff(first.Layout, second.Layout); diff != "" {
		t.Errorf("Apply(again).Layout differs from what the first Apply wrote (-first +second):\n%s", diff)
	}
	sgdiskVerify(t, path)

	// Change one size: the table is rewritten and the unchanged
	// partitions keep their GUIDs; the disk keeps its GUID.
	changed := gptFixture
	changed.Partitions = append([]bundle.Partition(nil), gptFixture.Partitions...)
	changed.Partitions[2].Size = 32 << 20
	third, err := Apply(path, &changed)
	if err != nil || !third.Wrote {
		t.Fatalf("Apply(changed) = %+v, %v; want written", third, err)
	}
	wantDiff := []string{
		`partition 3 "rootB": size 25165824 (24 MiB) on the disk, want 33554432 (32 MiB)`,
		`partition 4 "data": start 68157440 (65 MiB) on the disk, want 76546048 (73 MiB)`,
		`partition 4 "data": size 65011712 (62 MiB) on the disk, want 56623104 (54 MiB)`,
	}
	if diff := cmp.Diff(wantDiff, third.Differences); diff != "" {
		t.Errorf("Apply(changed).Differences mismatch (-want +got):\n%s", diff)
	}
	for i := range 3 {
		if a, b := first.Layout.Partitions[i].GUID, third.Layout.Partitions[i].GUID; a != b {
			t.Errorf("partition %d GUID %s, then %s: want it kept", i+1, a, b)
		}
	}
	if first.Layout.GUID != third.Layout.GUID || first.Layout.Partitions[3].GUID == third.Layout.Partitions[3].GUID {
		t.Errorf("disk GUID %s -> %s, data GUID %s -> %s: want the disk's kept and the moved partition's new",
			first.Layout.GUID, third.Layout.GUID, first.Layout.Partitions[3].GUID, third.Layout.Partitions[3].GUID)
	}

	// GPT -> MBR -> GPT: each Read sees only the table written last.
	for _, table := range []bundle.Table{mbrFixture, gptFixture} {
		res, err := Apply(path, &table)
		if err != nil || !res.Wrote {
			t.Fatalf("Apply(%s) = %+v, %v; want written", table.Type, res, err)
		}
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Read(f, 128*mib, 512)
		f.Close()
		if err != nil || got.Type != table.Type || len(got.Problems) != 0 {
			t.Fatalf("Read() after Apply(%s) = %+v, %v", table.Type, got, err)
		}
		if diff := cmp.Diff(forRead(res.Layout), got); diff != "" {
			t.Errorf("Read() after Apply(%s) mismatch (-want +got):\n%s", table.Type, diff)
		}
	}
	sgdiskVerify(t, path)
}

func TestApplyErrors(t *testing.T) {
	if _, err := Apply(filepath.Join(t.TempDir(), "missing"), &gptFixture); !errors.Is(err, ErrDevice) {
		t.Errorf("Apply(missing file) = %v, want ErrDevice", err)
	}
	if _, err := Apply(t.TempDir(), &gptFixture); !errors.Is(err, ErrDevice) {
		t.Errorf("Apply(directory) = %v, want ErrDevice", err)
	}
	path := sparseFile(t, 32*mib)
	if _, err := Apply(path, &gptFixture); !errors.Is(err, ErrTooSmall) {
		t.Errorf("Apply(32 MiB file) = %v, want ErrTooSmall", err)
	}
	b, err := os.ReadFile(path)
	if err != nil || !bytes.Equal(b, make([]byte, 32*mib)) {
		t.Errorf("Apply(too small) changed the file (%v)", err)
	}
}
