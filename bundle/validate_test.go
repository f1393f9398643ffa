package bundle

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// validManifest is a manifest as the Writer would close it: two images,
// a table, steps of every type.
func validManifest() Manifest {
	return Manifest{
		Format: FormatVersion, Product: "demo", Version: "1.0", Compatible: []string{"board", "board:2"},
		Created: "2024-01-02T03:04:05Z", Description: "two lines\nand a\ttab",
		ChunkSize: MinChunkSize, IndexSize: 5 * IndexEntrySize, IndexSHA256: strings.Repeat("0a", 32),
		Images: []Image{
			{Name: "boot", Size: 2*MinChunkSize + 1, SHA256: strings.Repeat("01", 32), FirstChunk: 0, Chunks: 3},
			{Name: "rootfs", Size: 2 * MinChunkSize, SHA256: strings.Repeat("02", 32), FirstChunk: 3, Chunks: 2},
		},
		Steps: []Step{
			{Type: StepPartition, Target: "disk", Table: &Table{Type: "gpt", Partitions: []Partition{
				{Name: "boot", Type: "esp", Size: 1 << 20},
				{Name: "rootfs", Type: "linux", Start: 2 << 20, Size: 4 << 20},
				{Name: "data", Type: "0fc63daf-8483-4772-8e79-3d69d8477de4"},
			}}},
			{Type: StepImage, Image: "boot", Target: "boot", Verify: true},
			{Type: StepImage, Image: "rootfs", Target: "rootfs", Offset: 4096},
			{Type: StepEnv, Target: "bootenv", Set: map[string]string{"bootcmd": "run a\nrun b", "empty": ""}, Unset: []string{"upgrade_available"}},
			{Type: StepWipe, Target: "data", Mode: WipeFull},
		},
	}
}

func TestValidateGood(t *testing.T) {
	m := validManifest()
	if err := m.Validate(); err != nil {
		t.Fatalf("Validate() = %v", err)
	}
	mbr := validManifest()
	mbr.Steps[0].Table = &Table{Type: "mbr", GUID: "0xdeadbeef", Partitions: []Partition{
		{Name: "boot", Type: "fat32", Size: 1 << 20, Bootable: true}, {Name: "rootfs", Type: "0x83"}}}
	if err := mbr.Validate(); err != nil {
		t.Fatalf("Validate(mbr) = %v", err)
	}
}

// TestValidateSteps lists steps no device could carry out: each must be
// refused by Validate, which the Writer runs when a bundle is made and
// the Reader when one is opened, naming the step and, where there is one,
// the partition or variable.
func TestValidateSteps(t *testing.T) {
	type where struct {
		Step, Partition int
		Var             string
	}
	parts := func(m *Manifest) []Partition { return m.Steps[0].Table.Partitions }
	for _, tc := range []struct {
		name  string
		edit  func(m *Manifest)
		where where
		text  string
	}{
		{"unknown step type", func(m *Manifest) { m.Steps[4].Type = "format" }, where{Step: 5}, `unknown step type format`},
		{"no target", func(m *Manifest) { m.Steps[4].Target = "" }, where{Step: 5}, "no target"},
		{"target with ESC", func(m *Manifest) { m.Steps[4].Target = "data\x1b[2K" }, where{Step: 5}, "not printable"},
		{"image field on a wipe", func(m *Manifest) { m.Steps[4].Offset = 5 }, where{Step: 5}, "do not apply"},
		{"table on an env step", func(m *Manifest) { m.Steps[3].Table = &Table{} }, where{Step: 4}, "do not apply"},
		{"bad wipe mode", func(m *Manifest) { m.Steps[4].Mode = "shred" }, where{Step: 5}, "wipe mode"},
		{"missing image", func(m *Manifest) { m.Steps[1].Image = "nope" }, where{Step: 2}, "not in the bundle"},
		{"image written twice", func(m *Manifest) { m.Steps[2].Image = "boot"; m.Steps[2].Offset = 0 }, where{Step: 3}, "written by step 2 too"},
		{"image larger than its partition", func(m *Manifest) { m.Steps[1].Offset = 1<<20 - 100 }, where{Step: 2}, "does not fit partition boot"},
		{"env: empty name", func(m *Manifest) { m.Steps[3].Set[""] = "x" }, where{Step: 4, Var: ""}, "empty name"},
		{"env: = in a name", func(m *Manifest) { m.Steps[3].Set["a=b"] = "x" }, where{Step: 4, Var: "a=b"}, "'='"},
		{"env: newline in a name", func(m *Manifest) { m.Steps[3].Set["a\nb"] = "x" }, where{Step: 4, Var: "a\nb"}, "line break"},
		{"env: NUL in a name", func(m *Manifest) { m.Steps[3].Unset = []string{"a\x00"} }, where{Step: 4, Var: "a\x00"}, "NUL"},
		{"env: NUL in a value", func(m *Manifest) { m.Steps[3].Set["x"] = "a\x00b" }, where{Step: 4, Var: "x"}, "NUL"},
		{"env: comment name", func(m *Manifest) { m.Steps[3].Set["#x"] = "1" }, where{Step: 4, Var: "#x"}, "comment"},
		{"env: set and unset", func(m *Manifest) { m.Steps[3].Unset = []string{"bootcmd"} }, where{Step: 4, Var: "bootcmd"}, "both set and unset"},
		{"table: no table", func(m *Manifest) { m.Steps[0].Table = nil }, where{Step: 1}, "no table"},
		{"table: type", func(m *Manifest) { m.Steps[0].Table.Type = "apm" }, where{Step: 1}, "table type apm"},
		{"table: no partitions", func(m *Manifest) { m.Steps[0].Table.Partitions = nil }, where{Step: 1}, "no partitions"},
		{"table: bad disk GUID", func(m *Manifest) { m.Steps[0].Table.GUID = "nope" }, where{Step: 1}, "disk GUID"},
		{"table: too many", func(m *Manifest) {
			m.Steps[0].Table.Type = "mbr"
			m.Steps[0].Table.Partitions = append(parts(m), Partition{Name: "a", Type: "linux", Size: 1 << 20}, Partition{Name: "b", Type: "linux"})
		}, where{Step: 1}, "holds 4"},
		{"partition: unknown type", func(m *Manifest) { parts(m)[1].Type = "linux-rootfs" }, where{Step: 1, Partition: 2}, "type linux-rootfs"},
		{"partition: GPT alias with no MBR code", func(m *Manifest) {
			m.Steps[0].Table.Type = "mbr"
			parts(m)[2].Type = "0fc63daf-8483-4772-8e79-3d69d8477de4"
		}, where{Step: 1, Partition: 3}, "type"},
		{"partition: duplicate name", func(m *Manifest) { parts(m)[2].Name = "boot" }, where{Step: 1, Partition: 3}, "name of partition 1"},
		{"partition: no name", func(m *Manifest) { parts(m)[2].Name = "" }, where{Step: 1, Partition: 3}, "no name"},
		{"partition: name too long", func(m *Manifest) { parts(m)[2].Name = strings.Repeat("x", 37) }, where{Step: 1, Partition: 3}, "UTF-16"},
		{"partition: unaligned start", func(m *Manifest) { parts(m)[1].Start = 2<<20 + 1 }, where{Step: 1, Partition: 2}, "multiple of 512"},
		{"partition: unaligned size", func(m *Manifest) { parts(m)[0].Size = 1000 }, where{Step: 1, Partition: 1}, "multiple of 512"},
		{"partition: overlap", func(m *Manifest) { parts(m)[1].Start = 1 << 20 }, where{Step: 1, Partition: 2}, "overlaps partition 1"},
		{"partition: inside the table", func(m *Manifest) { parts(m)[0].Start = 512 }, where{Step: 1, Partition: 1}, "inside the partition table"},
		{"partition: rest of disk not last", func(m *Manifest) { parts(m)[0].Size = 0 }, where{Step: 1, Partition: 1}, "last partition only"},
		{"partition: duplicate GUID", func(m *Manifest) {
			parts(m)[0].GUID = "3e1a0e6c-7a6a-4c38-9a53-2c6d0d3e4f01"
			parts(m)[1].GUID = "3E1A0E6C-7A6A-4C38-9A53-2C6D0D3E4F01"
		}, where{Step: 1, Partition: 2}, "also the GUID of partition 1"},
		{"partition: nil GUID", func(m *Manifest) { parts(m)[0].GUID = "00000000-0000-0000-0000-000000000000" }, where{Step: 1, Partition: 1}, "nil GUID"},
		{"partition: MBR attributes", func(m *Manifest) {
			m.Steps[0].Table.Type = "mbr"
			parts(m)[2].Type = "linux"
			parts(m)[0].Attributes = 4
		}, where{Step: 1, Partition: 1}, "attribute"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := validManifest()
			tc.edit(&m)
			err := m.Validate()
			if !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), tc.text) {
				t.Fatalf("Validate() = %v, want ErrFormat mentioning %q", err, tc.text)
			}
			var got where
			var se *StepError
			if errors.As(err, &se) {
				got.Step = se.Step
			}
			var pe *PartitionError
			if errors.As(err, &pe) {
				got.Partition = pe.Partition
			}
			var ve *EnvVarError
			if errors.As(err, &ve) {
				got.Var = ve.Name
			}
			if diff := cmp.Diff(tc.where, got); diff != "" {
				t.Errorf("Validate() = %v: where (-want +got):\n%s", err, diff)
			}
			if strings.ContainsAny(err.Error(), "\x1b\x00\n") {
				t.Errorf("Validate() = %q: holds control characters", err)
			}
		})
	}
}

func TestValidateHead(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(m *Manifest)
		text string
	}{
		{"format", func(m *Manifest) { m.Format = 2 }, "manifest format 2"},
		{"no product", func(m *Manifest) { m.Product = "" }, "no product"},
		{"product with a CR", func(m *Manifest) { m.Product = "demo\rverified" }, "not printable"},
		{"version with bidi", func(m *Manifest) { m.Version = "1.0\u202e" }, "not printable"},
		{"no board", func(m *Manifest) { m.Compatible = nil }, "no compatible board"},
		{"empty board", func(m *Manifest) { m.Compatible = []string{":2"} }, "compatible board"},
		{"created", func(m *Manifest) { m.Created = "yesterday" }, "RFC 3339"},
		{"description with ESC", func(m *Manifest) { m.Description = "a\x1b[31m" }, "not printable"},
		{"chunk size", func(m *Manifest) { m.ChunkSize = 3 << 16 }, "chunk size"},
		{"index hash upper case", func(m *Manifest) { m.IndexSHA256 = strings.Repeat("0A", 32) }, "index_sha256"},
		{"image hash short", func(m *Manifest) { m.Images[0].SHA256 = "00" }, "sha256"},
		{"image name repeated", func(m *Manifest) { m.Images[1].Name = "boot" }, "repeated"},
		{"image name empty", func(m *Manifest) { m.Images[1].Name = "" }, "image name"},
		{"image chunks", func(m *Manifest) { m.Images[0].Chunks = 2 }, "2 chunks, want 3"},
		{"image first chunk", func(m *Manifest) { m.Images[1].FirstChunk = 4 }, "first chunk 4"},
		{"index larger than the images", func(m *Manifest) { m.IndexSize += IndexEntrySize }, "cover 5 chunks, index holds 6"},
		{"image unused", func(m *Manifest) { m.Steps = m.Steps[:2] }, "written by no step"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := validManifest()
			tc.edit(&m)
			if err := m.Validate(); !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), tc.text) {
				t.Errorf("Validate() = %v, want ErrFormat mentioning %q", err, tc.text)
			}
		})
	}
}
