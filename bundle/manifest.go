package bundle

import (
	"encoding/hex"
	"fmt"
	"math/bits"
	"strings"
)

// FormatVersion is the manifest format this package reads and writes.
const FormatVersion = 1

// DefaultChunkSize is the chunk size used when a bundle does not choose one.
// 1 MiB keeps the index tiny (48 bytes per MiB of image) while giving the
// install pipeline enough chunks to spread over the cores.
const DefaultChunkSize = 1 << 20

// Chunk sizes outside these bounds are refused: below 64 KiB the index grows
// faster than it pays off, above 64 MiB one chunk in flight per core costs too
// much memory on a small rescue system.
const (
	MinChunkSize = 64 << 10
	MaxChunkSize = 64 << 20
)

// Manifest is the signed description of a bundle: what it is for, what it
// holds and what installing it does. It is encoded as JSON.
type Manifest struct {
	Format          int      `json:"format"`
	Product         string   `json:"product"`
	Version         string   `json:"version"`
	SecurityVersion uint64   `json:"security_version"`
	Compatible      []string `json:"compatible"`
	Created         string   `json:"created,omitempty"` // RFC 3339, informational
	Description     string   `json:"description,omitempty"`

	ChunkSize   uint32 `json:"chunk_size"`
	IndexSize   uint64 `json:"index_size"`
	IndexSHA256 string `json:"index_sha256"`
	PayloadSize uint64 `json:"payload_size"`

	// Images are listed in payload order.
	Images []Image `json:"images"`
	// Steps run in order.
	Steps []Step `json:"steps"`

	// UnitData declares the per-unit values a factory station fills in
	// (unitdata.go).
	UnitData []UnitField `json:"unit_data,omitempty"`
}

// Image is one stored image: a byte sequence split into chunks of the
// manifest's ChunkSize. Its chunks are index entries
// [FirstChunk, FirstChunk+Chunks).
type Image struct {
	Name       string `json:"name"`
	Size       uint64 `json:"size"`
	SHA256     string `json:"sha256"` // of the whole uncompressed image
	FirstChunk uint64 `json:"first_chunk"`
	Chunks     uint64 `json:"chunks"`
}

// StepType names what a step does.
type StepType string

// The step types.
const (
	StepPartition StepType = "partition" // write a partition table to Target
	StepImage     StepType = "image"     // write Image to Target at Offset
	StepEnv       StepType = "env"       // set/unset bootloader variables in Target
	StepWipe      StepType = "wipe"      // erase Target
)

// Wipe modes.
const (
	WipeQuick = "quick" // discard everything, then zero the first and last MiB
	WipeFull  = "full"  // zero every byte
)

// Step is one action of an install.
type Step struct {
	Type   StepType `json:"type"`
	Target string   `json:"target"`

	// StepImage
	Image  string `json:"image,omitempty"`
	Offset uint64 `json:"offset,omitempty"` // bytes into the target
	Verify bool   `json:"verify,omitempty"` // read back after writing

	// StepPartition
	Table *Table `json:"table,omitempty"`

	// StepEnv
	Set   map[string]string `json:"set,omitempty"`
	Unset []string          `json:"unset,omitempty"`

	// StepWipe
	Mode string `json:"mode,omitempty"`
}

// Table is a partition table layout. Sizes and offsets are in bytes; a
// partition without Start follows the previous one, aligned to 1 MiB; a Size
// of 0 means "up to the end of the disk" and is allowed on the last entry only.
type Table struct {
	Type       string      `json:"type"`           // "gpt" or "mbr"
	GUID       string      `json:"guid,omitempty"` // GPT disk GUID; random if empty
	Partitions []Partition `json:"partitions"`
}

// Partition is one entry of a Table.
type Partition struct {
	Name       string `json:"name"`           // GPT name; also how steps refer to it
	Type       string `json:"type"`           // alias ("linux", "esp", "bios-boot", "swap", ...), GPT type GUID or MBR type ("0x83")
	GUID       string `json:"guid,omitempty"` // GPT unique partition GUID; random if empty
	Start      uint64 `json:"start,omitempty"`
	Size       uint64 `json:"size,omitempty"`
	Attributes uint64 `json:"attributes,omitempty"` // GPT attribute bits
	Bootable   bool   `json:"bootable,omitempty"`   // MBR active flag; GPT legacy-BIOS-bootable attribute
}

// Image returns the image named name, or nil.
func (m *Manifest) Image(name string) *Image {
	for i := range m.Images {
		if m.Images[i].Name == name {
			return &m.Images[i]
		}
	}
	return nil
}

// CompatibleWith reports whether the bundle may be installed on a board with
// the given name and revision. An entry "name" matches every revision of that
// board; "name:rev" matches one revision.
func (m *Manifest) CompatibleWith(board, revision string) bool {
	for _, c := range m.Compatible {
		n, r, hasRev := strings.Cut(c, ":")
		if n != board {
			continue
		}
		if !hasRev || r == revision {
			return true
		}
	}
	return false
}

// Validate checks the manifest's internal consistency. The Reader calls it
// after the signature has verified and before handing the manifest out, so
// code that gets a Manifest from a Reader never sees an inconsistent one.
func (m *Manifest) Validate() error {
	if m.Format != FormatVersion {
		return fmt.Errorf("%w: manifest format %d, want %d", ErrFormat, m.Format, FormatVersion)
	}
	if m.Product == "" {
		return fmt.Errorf("%w: manifest has no product", ErrFormat)
	}
	if len(m.Compatible) == 0 {
		return fmt.Errorf("%w: manifest names no compatible board", ErrFormat)
	}
	if m.ChunkSize < MinChunkSize || m.ChunkSize > MaxChunkSize || bits.OnesCount32(m.ChunkSize) != 1 {
		return fmt.Errorf("%w: chunk size %d is not a power of two in [%d, %d]", ErrFormat, m.ChunkSize, MinChunkSize, MaxChunkSize)
	}
	if m.IndexSize%IndexEntrySize != 0 {
		return fmt.Errorf("%w: index size %d is not a multiple of %d", ErrFormat, m.IndexSize, IndexEntrySize)
	}
	if b, err := hex.DecodeString(m.IndexSHA256); err != nil || len(b) != 32 {
		return fmt.Errorf("%w: bad index_sha256 %q", ErrFormat, m.IndexSHA256)
	}
	entries := m.IndexSize / IndexEntrySize
	var next uint64
	names := map[string]bool{}
	for _, im := range m.Images {
		if im.Name == "" || names[im.Name] {
			return fmt.Errorf("%w: image name %q empty or repeated", ErrFormat, im.Name)
		}
		names[im.Name] = true
		want := (im.Size + uint64(m.ChunkSize) - 1) / uint64(m.ChunkSize)
		if im.Chunks != want {
			return fmt.Errorf("%w: image %q: %d chunks, want %d for %d bytes", ErrFormat, im.Name, im.Chunks, want, im.Size)
		}
		if im.FirstChunk != next {
			return fmt.Errorf("%w: image %q: first chunk %d, want %d", ErrFormat, im.Name, im.FirstChunk, next)
		}
		next += im.Chunks
		if b, err := hex.DecodeString(im.SHA256); err != nil || len(b) != 32 {
			return fmt.Errorf("%w: image %q: bad sha256 %q", ErrFormat, im.Name, im.SHA256)
		}
	}
	if next != entries {
		return fmt.Errorf("%w: images cover %d chunks, index holds %d", ErrFormat, next, entries)
	}
	for i, s := range m.Steps {
		if err := s.validate(m); err != nil {
			return fmt.Errorf("%w: step %d (%s): %v", ErrFormat, i+1, s.Type, err)
		}
	}
	return m.ValidateUnitData()
}

func (s *Step) validate(m *Manifest) error {
	if s.Target == "" {
		return fmt.Errorf("no target")
	}
	switch s.Type {
	case StepImage:
		if m.Image(s.Image) == nil {
			return fmt.Errorf("image %q is not in the bundle", s.Image)
		}
	case StepPartition:
		if s.Table == nil {
			return fmt.Errorf("no table")
		}
		if s.Table.Type != "gpt" && s.Table.Type != "mbr" {
			return fmt.Errorf("table type %q, want gpt or mbr", s.Table.Type)
		}
		if len(s.Table.Partitions) == 0 {
			return fmt.Errorf("table has no partitions")
		}
		for i, p := range s.Table.Partitions {
			if p.Size == 0 && i != len(s.Table.Partitions)-1 {
				return fmt.Errorf("partition %q: size 0 (rest of disk) is allowed on the last partition only", p.Name)
			}
		}
	case StepEnv:
		for k := range s.Set {
			if k == "" || strings.ContainsAny(k, "=\x00") {
				return fmt.Errorf("bad variable name %q", k)
			}
		}
		for _, k := range s.Unset {
			if k == "" || strings.ContainsAny(k, "=\x00") {
				return fmt.Errorf("bad variable name %q", k)
			}
		}
	case StepWipe:
		if s.Mode != "" && s.Mode != WipeQuick && s.Mode != WipeFull {
			return fmt.Errorf("wipe mode %q, want %q or %q", s.Mode, WipeQuick, WipeFull)
		}
	default:
		return fmt.Errorf("unknown step type")
	}
	return nil
}
