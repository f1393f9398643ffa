package bootenv

import (
	"bytes"
	"fmt"
	"os"
	"strings"
)

// GRUBEnvSize is the size of a grubenv block, fixed by grub-editenv.
const GRUBEnvSize = 1024

const grubSignature = "# GRUB Environment Block\n"

// GRUBEnv is a GRUB environment block in memory.
type GRUBEnv struct {
	v        vars
	comments []string // '#' lines other than the padding, kept on save
}

// NewGRUBEnv returns an empty block.
func NewGRUBEnv() *GRUBEnv { return &GRUBEnv{} }

// DecodeGRUB reads a grubenv block. It must be GRUBEnvSize bytes and start
// with the signature. Lines are parsed as GRUB's envblk.c does, so a name runs
// to the first '=' and a backslash escapes the next byte; a block GRUB would
// stop reading part way (a missing '=' or a value running off the end) is
// ErrCorrupt here, so that no variable is silently lost on the next save.
func DecodeGRUB(b []byte) (*GRUBEnv, error) {
	if len(b) != GRUBEnvSize {
		return nil, fmt.Errorf("%w: grubenv of %d bytes, want %d", ErrSize, len(b), GRUBEnvSize)
	}
	if !bytes.HasPrefix(b, []byte(grubSignature)) {
		return nil, fmt.Errorf("%w: no GRUB environment signature", ErrCorrupt)
	}
	e := NewGRUBEnv()
	for p := len(grubSignature); p < len(b); {
		if b[p] == '#' {
			end := lineEnd(b, p)
			if end < len(b) { // the padding is the only '#' run with no newline
				e.comments = append(e.comments, string(b[p:end]))
			}
			p = end + 1
			continue
		}
		eq := bytes.IndexByte(b[p:], '=')
		if eq < 0 {
			return nil, fmt.Errorf("%w: grubenv entry without '=' at %d", ErrCorrupt, p)
		}
		name := cString(b[p : p+eq])
		start := p + eq + 1
		end := lineEnd(b, start)
		if end >= len(b) {
			return nil, fmt.Errorf("%w: grubenv value runs off the block at %d", ErrCorrupt, start)
		}
		var val strings.Builder
		for i := start; i < end; i++ {
			if b[i] == '\\' {
				i++
			}
			val.WriteByte(b[i])
		}
		// GRUB hands names and values on as C strings: a NUL ends them.
		if name != "" {
			e.v.set(name, cString([]byte(val.String())))
		}
		p = end + 1
	}
	return e, nil
}

// lineEnd returns the index of the newline ending the line at p, skipping
// escaped bytes, or a value >= len(b) when there is none.
func lineEnd(b []byte, p int) int {
	for p < len(b) {
		switch b[p] {
		case '\\':
			p += 2
		case '\n':
			return p
		default:
			p++
		}
	}
	return p
}

func cString(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

func grubEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, "\n", "\\\n").Replace(s)
}

// used is the bytes the block's content needs before the '#' padding.
func (e *GRUBEnv) used() int {
	n := len(grubSignature)
	for _, c := range e.comments {
		n += len(c) + 1
	}
	for _, name := range e.v.names {
		n += len(name) + 1 + len(grubEscape(e.v.m[name])) + 1
	}
	return n
}

// Encode returns the GRUBEnvSize-byte block, padded with '#'.
func (e *GRUBEnv) Encode() ([]byte, error) {
	if e.used() > GRUBEnvSize {
		return nil, fmt.Errorf("%w: %d bytes in a %d-byte grubenv", ErrTooFull, e.used(), GRUBEnvSize)
	}
	b := bytes.NewBufferString(grubSignature)
	for _, c := range e.comments {
		b.WriteString(c + "\n")
	}
	for _, name := range e.v.names {
		b.WriteString(name + "=" + grubEscape(e.v.m[name]) + "\n")
	}
	b.Write(bytes.Repeat([]byte{'#'}, GRUBEnvSize-b.Len()))
	return b.Bytes(), nil
}

// Get returns a variable's value.
func (e *GRUBEnv) Get(name string) (string, bool) { return e.v.get(name) }

// Vars returns a copy of all variables.
func (e *GRUBEnv) Vars() map[string]string { return e.v.all() }

// Set sets a variable; an empty value is kept, as grub-editenv keeps it.
func (e *GRUBEnv) Set(name, value string) error {
	if err := checkGRUBName(name); err != nil {
		return err
	}
	if strings.IndexByte(value, 0) >= 0 {
		return fmt.Errorf("%w: NUL in value of %q", ErrInvalidValue, name)
	}
	old := e.v.clone()
	e.v.set(name, value)
	if e.used() > GRUBEnvSize {
		e.v = old
		return fmt.Errorf("%w: setting %q", ErrTooFull, name)
	}
	return nil
}

// Unset removes a variable.
func (e *GRUBEnv) Unset(name string) error {
	if err := checkGRUBName(name); err != nil {
		return err
	}
	e.v.unset(name)
	return nil
}

// checkGRUBName refuses names the block cannot hold: '=' or a newline would
// split the line, a NUL ends it, and a leading '#' makes it a comment.
func checkGRUBName(name string) error {
	if name == "" || strings.ContainsAny(name, "=\n\x00") || name[0] == '#' {
		return fmt.Errorf("%w: %q", ErrInvalidName, name)
	}
	return nil
}

// GRUBStore is a grubenv file, or a grubenv block at an offset of a
// device (the block of a grubenv file inside an unmounted filesystem).
type GRUBStore struct {
	path    string
	offset  int64
	inPlace bool
}

var _ Store = (*GRUBStore)(nil)

// NewGRUBStore returns the store for the grubenv file at path.
func NewGRUBStore(path string) *GRUBStore { return &GRUBStore{path: path} }

// NewGRUBStoreAt returns the store for the GRUBEnvSize-byte block at
// offset of the file or device at path. The block is rewritten in place:
// that is how GRUB's own save_env works, and a filesystem that holds the
// grubenv file never sees its block move. A write of 1 KiB is not atomic on
// every medium; a board that must survive a power cut during it keeps the
// boot counter in a redundant U-Boot env instead.
func NewGRUBStoreAt(path string, offset int64) *GRUBStore {
	return &GRUBStore{path: path, offset: offset, inPlace: true}
}

// Load reads the file; a file that is not GRUBEnvSize bytes is ErrSize.
func (s *GRUBStore) Load() (Env, error) {
	var b []byte
	var err error
	if s.inPlace {
		b, err = readAt(s.path, s.offset, GRUBEnvSize)
	} else {
		b, err = os.ReadFile(s.path)
	}
	if err != nil {
		return nil, err
	}
	e, err := DecodeGRUB(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.path, err)
	}
	return e, nil
}

// Save replaces the file atomically (temporary file, fsync, rename).
func (s *GRUBStore) Save(env Env) error {
	e := NewGRUBEnv()
	if g, ok := env.(*GRUBEnv); ok {
		e.comments = g.comments
	}
	src := orderedVars(env)
	for _, name := range src.names {
		if err := e.Set(name, src.m[name]); err != nil {
			return err
		}
	}
	b, err := e.Encode()
	if err != nil {
		return err
	}
	if s.inPlace {
		return writeAt(s.path, s.offset, b)
	}
	perm := os.FileMode(0o644)
	if st, err := os.Stat(s.path); err == nil {
		perm = st.Mode().Perm()
	}
	_, err = replaceFile(s.path, b, perm)
	return err
}

// Apply loads, changes and saves; see Store.
func (s *GRUBStore) Apply(set map[string]string, unset []string) error {
	return apply(s, set, unset)
}

// New returns an empty block.
func (s *GRUBStore) New() Env { return NewGRUBEnv() }

// Close does nothing: the file is opened per operation.
func (s *GRUBStore) Close() error { return nil }

func readAt(path string, off int64, n int) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b := make([]byte, n)
	if _, err := f.ReadAt(b, off); err != nil {
		return nil, fmt.Errorf("%s at %d: %w", path, off, err)
	}
	return b, nil
}

func writeAt(path string, off int64, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if _, err := f.WriteAt(b, off); err != nil {
		f.Close()
		return fmt.Errorf("%s at %d: %w", path, off, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
