package bundle

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"strings"
	"time"
	"unicode"
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
	// Create starts an empty environment where the device has none
	// with a valid copy (a blank board), instead of refusing the step.
	Create bool `json:"create,omitempty"`

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

// StepError is a step that no device could carry out: it names the step
// and wraps ErrFormat and the reason, which may be a *PartitionError or
// an *EnvVarError.
type StepError struct {
	Step   int // 1-based
	Type   StepType
	Target string
	Err    error
}

func (e *StepError) Error() string {
	return fmt.Sprintf("%v: step %d (%s %s): %v", ErrFormat, e.Step, Printable(string(e.Type)), Printable(e.Target), e.Err)
}

// Unwrap returns ErrFormat and the reason.
func (e *StepError) Unwrap() []error { return []error{ErrFormat, e.Err} }

// EnvVarError is a variable of an env step that a bootloader environment
// cannot hold.
type EnvVarError struct {
	Name string
	Err  error
}

func (e *EnvVarError) Error() string {
	return fmt.Sprintf("variable %s: %v", Printable(e.Name), e.Err)
}

func (e *EnvVarError) Unwrap() error { return e.Err }

// Validate checks the manifest's internal consistency and that every step
// could be carried out by some device: everything that can be known
// without the device. The Reader calls it after the signature has
// verified and before handing the manifest out, so code that gets a
// Manifest from a Reader never sees an inconsistent one, and a bundle made
// by another tool is held to the same rules as one made by the Writer.
// Arithmetic on sizes is checked for overflow: every size, offset and
// their sums fit an int64.
func (m *Manifest) Validate() error {
	if err := m.validateHead(); err != nil {
		return err
	}
	if err := m.validateImages(); err != nil {
		return err
	}
	written := map[string]int{}
	for i := range m.Steps {
		s := &m.Steps[i]
		if err := s.validate(m, i); err != nil {
			return &StepError{Step: i + 1, Type: s.Type, Target: s.Target, Err: err}
		}
		if s.Type == StepImage {
			if j, ok := written[s.Image]; ok {
				return &StepError{Step: i + 1, Type: s.Type, Target: s.Target,
					Err: fmt.Errorf("image %s is written by step %d too; an image is written by one step (the stream order is the step order)", Printable(s.Image), j)}
			}
			written[s.Image] = i + 1
		}
	}
	for _, im := range m.Images {
		if _, ok := written[im.Name]; !ok {
			return &FieldError{Field: "images", Image: im.Name, Err: errors.New("written by no step")}
		}
	}
	return nil
}

// FieldError is a field of a manifest whose value no reader accepts. It
// wraps ErrFormat and the reason.
type FieldError struct {
	Field string // its JSON name: "product", "compatible", "images"...
	Image string // for a field of an image, the image's name
	Err   error
}

func (e *FieldError) Error() string {
	if e.Image != "" {
		return fmt.Sprintf("%v: image %s: %v", ErrFormat, Printable(e.Image), e.Err)
	}
	return fmt.Sprintf("%v: %v", ErrFormat, e.Err)
}

// Unwrap returns ErrFormat and the reason.
func (e *FieldError) Unwrap() []error { return []error{ErrFormat, e.Err} }

func fieldErr(field, format string, a ...any) error {
	return &FieldError{Field: field, Err: fmt.Errorf(format, a...)}
}

func (m *Manifest) validateHead() error {
	if m.Format != FormatVersion {
		return fieldErr("format", "manifest format %d, want %d", m.Format, FormatVersion)
	}
	if m.Product == "" {
		return fieldErr("product", "manifest has no product")
	}
	if !isPrintable(m.Product) {
		return fieldErr("product", "product %s holds characters that are not printable", Printable(m.Product))
	}
	if !isPrintable(m.Version) {
		return fieldErr("version", "version %s holds characters that are not printable", Printable(m.Version))
	}
	if len(m.Compatible) == 0 {
		return fieldErr("compatible", "manifest names no compatible board")
	}
	for _, c := range m.Compatible {
		if n, _, _ := strings.Cut(c, ":"); n == "" || !isPrintable(c) {
			return fieldErr("compatible", "compatible board %s: want name or name:revision, printable", Printable(c))
		}
	}
	if m.Created != "" {
		if _, err := time.Parse(time.RFC3339, m.Created); err != nil {
			return fieldErr("created", "created %s is not an RFC 3339 time", Printable(m.Created))
		}
	}
	for _, r := range m.Description {
		if r != '\n' && r != '\t' && !unicode.IsPrint(r) {
			return fieldErr("description", "description holds %U, which is not printable", r)
		}
	}
	if m.ChunkSize < MinChunkSize || m.ChunkSize > MaxChunkSize || bits.OnesCount32(m.ChunkSize) != 1 {
		return fieldErr("chunk_size", "chunk size %d is not a power of two in [%d, %d]", m.ChunkSize, MinChunkSize, MaxChunkSize)
	}
	if m.IndexSize%IndexEntrySize != 0 || m.IndexSize > MaxIndexSize {
		return fieldErr("index_size", "index size %d: want a multiple of %d, at most %d (%d chunks)", m.IndexSize, IndexEntrySize, MaxIndexSize, MaxChunks)
	}
	if !isHash(m.IndexSHA256) {
		return fieldErr("index_sha256", "index_sha256 %s is not 64 lower-case hex digits", Printable(m.IndexSHA256))
	}
	if m.PayloadSize > MaxPayloadSize {
		return fieldErr("payload_size", "payload size %d, at most %d", m.PayloadSize, uint64(MaxPayloadSize))
	}
	return nil
}

func (m *Manifest) validateImages() error {
	entries := m.IndexSize / IndexEntrySize
	cs := uint64(m.ChunkSize)
	var next uint64
	names := map[string]bool{}
	for _, im := range m.Images {
		ierr := func(format string, a ...any) error {
			return &FieldError{Field: "images", Image: im.Name, Err: fmt.Errorf(format, a...)}
		}
		if im.Name == "" || !isPrintable(im.Name) {
			return ierr("image name %s: want a printable name", Printable(im.Name))
		}
		if names[im.Name] {
			return ierr("image name repeated")
		}
		names[im.Name] = true
		if im.Size > math.MaxInt64 {
			return ierr("size %d beyond any device", im.Size)
		}
		// Without the overflow that (size + cs - 1) / cs has near 2^64.
		want := im.Size / cs
		if im.Size%cs != 0 {
			want++
		}
		if im.Chunks != want {
			return ierr("%d chunks, want %d for %d bytes", im.Chunks, want, im.Size)
		}
		if im.FirstChunk != next {
			return ierr("first chunk %d, want %d", im.FirstChunk, next)
		}
		if im.Chunks > entries-next {
			return ierr("chunks %d to %d, the index holds %d", next, next+im.Chunks, entries)
		}
		next += im.Chunks
		if !isHash(im.SHA256) {
			return ierr("sha256 %s is not 64 lower-case hex digits", Printable(im.SHA256))
		}
	}
	if next != entries {
		return fieldErr("index_size", "images cover %d chunks, index holds %d", next, entries)
	}
	return nil
}

// isHash reports whether s is a SHA-256 as the format writes it: 64
// lower-case hex digits.
func isHash(s string) bool {
	if len(s) != 2*sha256.Size {
		return false
	}
	for _, c := range []byte(s) {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// validate checks step i of m.
func (s *Step) validate(m *Manifest, i int) error {
	if s.Target == "" {
		return errors.New("no target")
	}
	if !isPrintable(s.Target) {
		return errors.New("the target name holds characters that are not printable")
	}
	// Fields of another step type mean the step is not what its author
	// thinks it is.
	var extra []string
	if s.Type != StepImage && (s.Image != "" || s.Offset != 0 || s.Verify) {
		extra = append(extra, "image, offset, verify")
	}
	if s.Type != StepPartition && s.Table != nil {
		extra = append(extra, "table")
	}
	if s.Type != StepEnv && (s.Set != nil || s.Unset != nil) {
		extra = append(extra, "set, unset")
	}
	if s.Type != StepWipe && s.Mode != "" {
		extra = append(extra, "mode")
	}
	if len(extra) > 0 && s.Type.known() {
		return fmt.Errorf("fields %s do not apply to a %s step", strings.Join(extra, "; "), s.Type)
	}
	switch s.Type {
	case StepImage:
		im := m.Image(s.Image)
		if im == nil {
			return fmt.Errorf("image %s is not in the bundle", Printable(s.Image))
		}
		if s.Offset > math.MaxInt64-im.Size {
			return fmt.Errorf("image %s of %d bytes at offset %d: beyond any device", Printable(s.Image), im.Size, s.Offset)
		}
		// A partition of a table an earlier step writes, of a fixed
		// size: the image must fit it on every disk.
		for j := i - 1; j >= 0; j-- {
			ps := &m.Steps[j]
			if ps.Type != StepPartition || ps.Table == nil {
				continue
			}
			if p := ps.Table.find(s.Target); p != nil {
				if p.Size != 0 && s.Offset+im.Size > p.Size {
					return fmt.Errorf("image %s of %d bytes at offset %d does not fit partition %s of %d bytes (step %d)",
						Printable(s.Image), im.Size, s.Offset, Printable(p.Name), p.Size, j+1)
				}
				break
			}
		}
	case StepPartition:
		if s.Table == nil {
			return errors.New("no table")
		}
		return s.Table.Validate()
	case StepEnv:
		set := map[string]bool{}
		for k, v := range s.Set {
			if err := checkEnvName(k); err != nil {
				return &EnvVarError{Name: k, Err: err}
			}
			if strings.IndexByte(v, 0) >= 0 {
				return &EnvVarError{Name: k, Err: errors.New("the value holds a NUL byte, which ends it in every environment")}
			}
			set[k] = true
		}
		unset := map[string]bool{}
		for _, k := range s.Unset {
			if err := checkEnvName(k); err != nil {
				return &EnvVarError{Name: k, Err: err}
			}
			if set[k] {
				return &EnvVarError{Name: k, Err: errors.New("both set and unset")}
			}
			if unset[k] {
				return &EnvVarError{Name: k, Err: errors.New("unset twice")}
			}
			unset[k] = true
		}
	case StepWipe:
		if s.Mode != "" && s.Mode != WipeQuick && s.Mode != WipeFull {
			return fmt.Errorf("wipe mode %s, want %q or %q", Printable(s.Mode), WipeQuick, WipeFull)
		}
	default:
		return fmt.Errorf("unknown step type %s (want image, partition, env or wipe)", Printable(string(s.Type)))
	}
	return nil
}

func (t StepType) known() bool {
	switch t {
	case StepImage, StepPartition, StepEnv, StepWipe:
		return true
	}
	return false
}

// checkEnvName refuses a variable name that some bootloader environment
// cannot hold, since a bundle does not know which kind its target is:
// '=' ends a name in both U-Boot's and GRUB's, a NUL ends it, a newline
// ends a GRUB line, and a leading '#' makes a GRUB line a comment.
// Values may hold anything but NUL: GRUB's block escapes a newline in a
// value with a backslash, as grub-editenv does, and U-Boot's is
// NUL-separated.
func checkEnvName(k string) error {
	switch {
	case k == "":
		return errors.New("empty name")
	case strings.IndexByte(k, 0) >= 0:
		return errors.New("the name holds a NUL byte")
	case strings.ContainsAny(k, "\n\r"):
		return errors.New("the name holds a line break")
	case strings.IndexByte(k, '=') >= 0:
		return errors.New("the name holds '='")
	case k[0] == '#':
		return errors.New("the name starts with '#', a comment in a GRUB environment")
	case !isPrintable(k):
		return errors.New("the name holds characters that are not printable")
	}
	return nil
}
