package bootenv

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// Medium is the storage under one or both copies of a U-Boot environment:
// a file or block device (no erase), or an MTD device (erase before write).
type Medium interface {
	io.ReaderAt
	io.WriterAt
	// EraseSize is the erase unit in bytes, or 0 for media written in place.
	EraseSize() int64
	// Erase erases [off, off+n); off and n are multiples of the erase size.
	Erase(off, n int64) error
	// Sync makes completed writes durable.
	Sync() error
}

// norFlash is implemented by media that know whether they are NOR flash,
// which selects the active/obsolete flag scheme.
type norFlash interface{ NOR() bool }

// replacer is implemented by media that can swap their whole content
// atomically (a regular file, through rename).
type replacer interface {
	Replace(image []byte) (bool, error)
}

// UBootCopy places one copy of an environment on a medium.
type UBootCopy struct {
	Medium Medium
	Offset int64
	// SectorSize is the erase unit; 0 means the medium's.
	SectorSize int64
	// Sectors bounds the erase blocks the copy may use; 0: what it needs.
	Sectors int64
}

// UBootStore is a single or redundant U-Boot environment.
type UBootStore struct {
	size    int
	scheme  FlagScheme // SchemeCounter or SchemeActive once resolved
	copies  []UBootCopy
	closers []io.Closer
}

var _ Store = (*UBootStore)(nil)

// NewUBootStore returns a store for copies of size bytes each: one copy for a
// single env, two for a redundant pair. The caller keeps ownership of the
// media.
func NewUBootStore(size int64, scheme FlagScheme, copies ...UBootCopy) (*UBootStore, error) {
	if size < minEnvSize || size > maxEnvSize {
		return nil, fmt.Errorf("%w: U-Boot env of %d bytes", ErrConfig, size)
	}
	if len(copies) != 1 && len(copies) != 2 {
		return nil, fmt.Errorf("%w: %d copies, want 1 or 2", ErrConfig, len(copies))
	}
	allNOR := true
	for i, c := range copies {
		if c.Medium == nil || c.Offset < 0 || c.SectorSize < 0 || c.Sectors < 0 {
			return nil, fmt.Errorf("%w: copy %d: %+v", ErrConfig, i, c)
		}
		if es := c.eraseSize(); es > 0 {
			if c.Offset%es != 0 {
				return nil, fmt.Errorf("%w: copy %d at %#x not on an erase block (%#x)", ErrConfig, i, c.Offset, es)
			}
			if c.Sectors > 0 && roundUp(size, es) > c.Sectors*es {
				return nil, fmt.Errorf("%w: copy %d: %#x bytes do not fit %d sectors of %#x", ErrConfig, i, size, c.Sectors, es)
			}
		}
		nor, ok := c.Medium.(norFlash)
		allNOR = allNOR && ok && nor.NOR()
		if ok && !nor.NOR() && scheme == SchemeActive {
			// NAND pages cannot be rewritten to mark a copy obsolete.
			return nil, fmt.Errorf("%w: copy %d: active/obsolete flags need NOR flash", ErrConfig, i)
		}
	}
	if len(copies) == 2 && copies[0].Medium == copies[1].Medium {
		a, b := copies[0].span(size), copies[1].span(size)
		if copies[0].Offset < copies[1].Offset+b && copies[1].Offset < copies[0].Offset+a {
			return nil, fmt.Errorf("%w: the two copies overlap", ErrConfig)
		}
	}
	switch scheme {
	case SchemeAuto:
		scheme = SchemeCounter
		if allNOR {
			scheme = SchemeActive
		}
	case SchemeCounter, SchemeActive:
	default:
		return nil, fmt.Errorf("%w: flag scheme %v", ErrConfig, scheme)
	}
	return &UBootStore{size: int(size), scheme: scheme, copies: copies}, nil
}

// Scheme is the flag scheme the store uses (never SchemeAuto).
func (s *UBootStore) Scheme() FlagScheme { return s.scheme }

func (s *UBootStore) redundant() bool { return len(s.copies) == 2 }

// New returns an empty environment sized for this store.
func (s *UBootStore) New() Env {
	e, _ := NewUBootEnv(s.size, s.redundant()) // size checked by NewUBootStore
	return e
}

// Load reads the current copy. With a redundant pair, a copy with a bad CRC
// is listed by Damaged and the other is used; ErrBadCRC when none is valid.
func (s *UBootStore) Load() (Env, error) {
	e, err := s.current()
	if err != nil {
		return nil, err
	}
	return e, nil
}

// current reads every copy and returns the current one. When no copy is
// valid, the error wraps ErrBadCRC (and ErrCorrupt when a copy with a good
// CRC held a malformed data area).
func (s *UBootStore) current() (*UBootEnv, error) {
	envs := make([]*UBootEnv, len(s.copies))
	var damaged []int
	var corrupt []error
	for i, c := range s.copies {
		image := make([]byte, s.size)
		if _, err := c.Medium.ReadAt(image, c.Offset); err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
				return nil, fmt.Errorf("bootenv: reading copy %d: %w", i, err)
			}
			damaged = append(damaged, i) // short: never written
			continue
		}
		e, err := DecodeUBoot(image, s.redundant())
		if err != nil {
			if !errors.Is(err, ErrBadCRC) {
				corrupt = append(corrupt, fmt.Errorf("copy %d: %w", i, err))
			}
			damaged = append(damaged, i)
			continue
		}
		e.copy = i
		envs[i] = e
	}
	var cur *UBootEnv
	switch {
	case len(envs) == 1 || envs[1] == nil:
		cur = envs[0]
	case envs[0] == nil:
		cur = envs[1]
	default:
		cur = envs[newer(s.scheme, envs[0].flag, envs[1].flag)]
	}
	if cur == nil {
		if len(corrupt) > 0 {
			return nil, fmt.Errorf("%w: %w", ErrBadCRC, errors.Join(corrupt...))
		}
		return nil, ErrBadCRC
	}
	cur.damaged = damaged
	return cur, nil
}

// Save writes env. With a redundant pair it writes the copy that is not
// current (the damaged one, if any), syncs it, and then retires the old copy
// as the scheme requires. A single env is replaced atomically only when it is
// a whole regular file.
func (s *UBootStore) Save(env Env) error {
	e, _ := NewUBootEnv(s.size, s.redundant())
	src := orderedVars(env)
	for _, name := range src.names {
		value := src.m[name]
		if err := checkUBootName(name); err != nil {
			return err
		}
		if strings.IndexByte(value, 0) >= 0 {
			return fmt.Errorf("%w: NUL in value of %q", ErrInvalidValue, name)
		}
		if value != "" {
			e.v.set(name, value)
		}
	}
	if u, ok := env.(*UBootEnv); ok {
		e.pad = u.pad
	}
	if !s.redundant() {
		image, err := e.Encode()
		if err != nil {
			return err
		}
		return s.write(0, image)
	}
	cur, err := s.current()
	if err != nil && !errors.Is(err, ErrBadCRC) {
		return err // an I/O error; no valid copy is fine, the env is new
	}
	target := 0
	if cur != nil {
		target = 1 - cur.copy
	}
	e.flag = flagActive
	if s.scheme == SchemeCounter && cur != nil {
		e.flag = cur.flag + 1 // wraps 255 -> 0, which newer() reads as newer
	}
	image, err := e.Encode()
	if err != nil {
		return err
	}
	if err := s.write(target, image); err != nil {
		return err
	}
	if s.scheme == SchemeActive && cur != nil {
		// Only after the new copy is durable: until this byte is written both
		// copies are active and copy 0 wins, which is old or new but whole.
		c := s.copies[cur.copy]
		if _, err := c.Medium.WriteAt([]byte{flagObsolete}, c.Offset+crcSize); err != nil {
			return fmt.Errorf("bootenv: marking copy %d obsolete: %w", cur.copy, err)
		}
		if err := c.Medium.Sync(); err != nil {
			return fmt.Errorf("bootenv: marking copy %d obsolete: %w", cur.copy, err)
		}
	}
	return nil
}

// write puts one copy's image on its medium and syncs it, erasing first on
// flash. Partial erase blocks keep the bytes around the env, as fw_setenv
// does.
func (s *UBootStore) write(i int, image []byte) error {
	c := s.copies[i]
	if r, ok := c.Medium.(replacer); ok && !s.redundant() && c.Offset == 0 {
		done, err := r.Replace(image)
		if err != nil {
			return fmt.Errorf("bootenv: writing copy %d: %w", i, err)
		}
		if done {
			return nil
		}
	}
	buf := image
	if es := c.eraseSize(); es > 0 {
		span := roundUp(int64(len(image)), es)
		if span > int64(len(image)) {
			buf = make([]byte, span)
			if _, err := c.Medium.ReadAt(buf, c.Offset); err != nil {
				return fmt.Errorf("bootenv: reading erase block of copy %d: %w", i, err)
			}
			copy(buf, image)
		}
		if err := c.Medium.Erase(c.Offset, span); err != nil {
			return fmt.Errorf("bootenv: erasing copy %d: %w", i, err)
		}
	}
	if _, err := c.Medium.WriteAt(buf, c.Offset); err != nil {
		return fmt.Errorf("bootenv: writing copy %d: %w", i, err)
	}
	if err := c.Medium.Sync(); err != nil {
		return fmt.Errorf("bootenv: syncing copy %d: %w", i, err)
	}
	return nil
}

// Apply loads, changes and saves; see Store.
func (s *UBootStore) Apply(set map[string]string, unset []string) error {
	return apply(s, set, unset)
}

// Check loads and changes in memory; see Store.
func (s *UBootStore) Check(set map[string]string, unset []string) error {
	return check(s, set, unset)
}

// Close closes the devices Open opened.
func (s *UBootStore) Close() error {
	var errs []error
	for _, c := range s.closers {
		errs = append(errs, c.Close())
	}
	s.closers = nil
	return errors.Join(errs...)
}

func (c UBootCopy) eraseSize() int64 {
	if c.SectorSize > 0 && c.Medium.EraseSize() > 0 {
		return c.SectorSize
	}
	return c.Medium.EraseSize()
}

// span is how many bytes of the medium a copy of size bytes occupies.
func (c UBootCopy) span(size int64) int64 {
	if es := c.eraseSize(); es > 0 {
		return roundUp(size, es)
	}
	return size
}

func roundUp(n, unit int64) int64 { return (n + unit - 1) / unit * unit }

// openUBoot opens the devices of a U-Boot Config.
func openUBoot(cfg Config) (_ *UBootStore, err error) {
	if cfg.FWEnvConfig != "" {
		if len(cfg.Copies) > 0 || cfg.Size != 0 {
			return nil, fmt.Errorf("%w: FWEnvConfig and Copies/Size both given", ErrConfig)
		}
		f, err := os.Open(cfg.FWEnvConfig)
		if err != nil {
			return nil, err
		}
		fc, err := ParseFWEnvConfig(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", cfg.FWEnvConfig, err)
		}
		cfg.Copies, cfg.Size = fc.Copies, fc.Size
	}
	var closers []io.Closer
	defer func() {
		if err != nil {
			for _, c := range closers {
				c.Close()
			}
		}
	}()
	media := map[string]Medium{} // one medium per path, so overlap is seen
	copies := make([]UBootCopy, len(cfg.Copies))
	for i, loc := range cfg.Copies {
		m, ok := media[loc.Path]
		if !ok {
			m, err = openMedium(loc.Path)
			if err != nil {
				return nil, err
			}
			media[loc.Path] = m
			closers = append(closers, m.(io.Closer))
		}
		off := loc.Offset
		if off < 0 {
			f, ok := m.(*fileMedium)
			if !ok {
				return nil, fmt.Errorf("%w: negative offset on %s", ErrConfig, loc.Path)
			}
			end, err := f.f.Seek(0, io.SeekEnd)
			if err != nil {
				return nil, err
			}
			off += end
		}
		copies[i] = UBootCopy{Medium: m, Offset: off, SectorSize: loc.SectorSize, Sectors: loc.Sectors}
	}
	s, err := NewUBootStore(cfg.Size, cfg.Scheme, copies...)
	if err != nil {
		return nil, err
	}
	s.closers = closers
	return s, nil
}

// openMedium opens path read-write, or read-only when that is all it allows
// (Load still works; Save reports the write error).
func openMedium(path string) (Medium, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if st.Mode()&os.ModeCharDevice != 0 {
		return OpenMTD(path)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		if f, err = os.Open(path); err != nil {
			return nil, err
		}
	}
	return &fileMedium{f: f}, nil
}
