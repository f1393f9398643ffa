package bootenv

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// norFile is NOR flash on a file: erase sets bytes to 0xFF, and a write can
// only clear bits. A write that would set a bit is refused, so a missing
// erase shows up as an error instead of silently wrong data.
type norFile struct {
	f         *os.File
	eraseSize int64
	erases    int
	writes    int
	// failWrite, when set, is called before each write; an error makes
	// the write stop after half of its bytes, like a power cut.
	failWrite func(off int64, n int) error
}

func newNORFile(t *testing.T, size, eraseSize int64) *norFile {
	t.Helper()
	f, err := os.Create(filepath.Join(t.TempDir(), "nor.bin"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	if _, err := f.Write(bytes.Repeat([]byte{0xFF}, int(size))); err != nil {
		t.Fatal(err)
	}
	return &norFile{f: f, eraseSize: eraseSize}
}

func (m *norFile) ReadAt(p []byte, off int64) (int, error) { return m.f.ReadAt(p, off) }
func (m *norFile) EraseSize() int64                        { return m.eraseSize }
func (m *norFile) Sync() error                             { return nil }
func (m *norFile) NOR() bool                               { return true }

func (m *norFile) Erase(off, n int64) error {
	if off%m.eraseSize != 0 || n%m.eraseSize != 0 {
		return fmt.Errorf("erase %#x+%#x not aligned: %w", off, n, syscall.EINVAL)
	}
	m.erases++
	_, err := m.f.WriteAt(bytes.Repeat([]byte{0xFF}, int(n)), off)
	return err
}

func (m *norFile) WriteAt(p []byte, off int64) (int, error) {
	old := make([]byte, len(p))
	if _, err := m.f.ReadAt(old, off); err != nil {
		return 0, err
	}
	for i := range p {
		if p[i]&^old[i] != 0 {
			return 0, fmt.Errorf("write at %#x sets bits of %#02x to %#02x without erase", off+int64(i), old[i], p[i])
		}
	}
	m.writes++
	if m.failWrite != nil {
		if err := m.failWrite(off, len(p)); err != nil {
			m.f.WriteAt(p[:len(p)/2], off)
			return len(p) / 2, err
		}
	}
	return m.f.WriteAt(p, off)
}

// fileOf makes a file of size bytes filled with fill.
func fileOf(t *testing.T, size int, fill byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "env.bin")
	if err := os.WriteFile(p, bytes.Repeat([]byte{fill}, size), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func openFile(t *testing.T, cfg Config) *UBootStore {
	t.Helper()
	cfg.Type = UBoot
	s, err := Open(cfg)
	if err != nil {
		t.Fatalf("Open(%+v) = %v", cfg, err)
	}
	t.Cleanup(func() { s.Close() })
	return s.(*UBootStore)
}

func mustLoad(t *testing.T, s Store) *UBootEnv {
	t.Helper()
	env, err := s.Load()
	if err != nil {
		t.Fatalf("Load() = %v", err)
	}
	return env.(*UBootEnv)
}

// provision writes a fresh env with vars, as a factory does on blank storage.
func provision(t *testing.T, s Store, vars map[string]string) {
	t.Helper()
	env := s.New()
	for k, v := range vars {
		if err := env.Set(k, v); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Save(env); err != nil {
		t.Fatalf("Save(new env) = %v", err)
	}
}

func TestUBootStoreRoundTrip(t *testing.T) {
	const size = 0x1000
	nor := func(t *testing.T) []UBootCopy {
		m := newNORFile(t, 4*size, size)
		return []UBootCopy{{Medium: m, Offset: size}, {Medium: m, Offset: 3 * size}}
	}
	file := func(t *testing.T, n int) []UBootCopy {
		p := fileOf(t, 2*size, 0)
		f, err := os.OpenFile(p, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		m := &fileMedium{f: f}
		return []UBootCopy{{Medium: m}, {Medium: m, Offset: size}}[:n]
	}
	tests := []struct {
		name       string
		copies     func(t *testing.T) []UBootCopy
		wantScheme FlagScheme
	}{
		{"single file", func(t *testing.T) []UBootCopy { return file(t, 1) }, SchemeCounter},
		{"redundant file", func(t *testing.T) []UBootCopy { return file(t, 2) }, SchemeCounter},
		{"redundant NOR", nor, SchemeActive},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := NewUBootStore(size, SchemeAuto, tt.copies(t)...)
			if err != nil {
				t.Fatal(err)
			}
			if s.Scheme() != tt.wantScheme {
				t.Errorf("Scheme() = %v, want %v", s.Scheme(), tt.wantScheme)
			}
			if _, err := s.Load(); !errors.Is(err, ErrBadCRC) {
				t.Fatalf("Load() on blank storage = %v, want ErrBadCRC", err)
			}
			provision(t, s, map[string]string{"a": "1"})
			want := map[string]string{"a": "1"}
			for i := range 5 { // enough saves to use both copies twice
				set := map[string]string{"round": fmt.Sprint(i), "a": fmt.Sprint(i * 10)}
				if err := s.Apply(set, nil); err != nil {
					t.Fatalf("Apply(%v) = %v", set, err)
				}
				want = set
				if diff := cmp.Diff(want, mustLoad(t, s).Vars()); diff != "" {
					t.Fatalf("round %d: Load().Vars() (-want +got):\n%s", i, diff)
				}
			}
			if err := s.Apply(nil, []string{"round"}); err != nil {
				t.Fatal(err)
			}
			if _, ok := mustLoad(t, s).Get("round"); ok {
				t.Errorf(`Get("round") after Apply(unset) = set, want unset`)
			}
		})
	}
}

func TestUBootStoreDamagedCopy(t *testing.T) {
	const size = 0x400
	p := fileOf(t, 2*size, 0)
	s := openFile(t, Config{Copies: []Location{{Path: p}, {Path: p, Offset: size}}, Size: size})
	provision(t, s, map[string]string{"v": "old"})                      // copy 0, flag 1
	if err := s.Apply(map[string]string{"v": "new"}, nil); err != nil { // copy 1, flag 2
		t.Fatal(err)
	}

	// Damage the current copy (1): the older, good copy 0 is read.
	corrupt(t, p, size+10)
	e := mustLoad(t, s)
	if got, _ := e.Get("v"); got != "old" || e.Copy() != 0 {
		t.Errorf("Load() with copy 1 damaged = v=%q from copy %d, want old from 0", got, e.Copy())
	}
	if diff := cmp.Diff([]int{1}, e.Damaged()); diff != "" {
		t.Errorf("Damaged() (-want +got):\n%s", diff)
	}
	// The next write goes to the damaged slot, and both copies are then good.
	if err := s.Apply(map[string]string{"v": "fixed"}, nil); err != nil {
		t.Fatal(err)
	}
	e = mustLoad(t, s)
	if got, _ := e.Get("v"); got != "fixed" || e.Copy() != 1 || len(e.Damaged()) != 0 {
		t.Errorf("after repair: v=%q copy %d damaged %v, want fixed, 1, none", got, e.Copy(), e.Damaged())
	}

	// Both damaged: an error, and Apply changes nothing.
	corrupt(t, p, 10)
	corrupt(t, p, size+10)
	before, _ := os.ReadFile(p)
	if _, err := s.Load(); !errors.Is(err, ErrBadCRC) {
		t.Errorf("Load() with both copies damaged = %v, want ErrBadCRC", err)
	}
	if err := s.Apply(map[string]string{"v": "x"}, nil); !errors.Is(err, ErrBadCRC) {
		t.Errorf("Apply() with both copies damaged = %v, want ErrBadCRC", err)
	}
	if after, _ := os.ReadFile(p); !bytes.Equal(before, after) {
		t.Errorf("Apply() with both copies damaged wrote to the device")
	}
}

func corrupt(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	f.ReadAt(b, off)
	b[0] ^= 0x55
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

func TestUBootStoreCounterWrap(t *testing.T) {
	const size = 0x200
	for _, img := range wrapImages(size) {
		p := fileOf(t, 2*size, 0)
		os.WriteFile(p, img, 0o644)
		s := openFile(t, Config{Copies: []Location{{Path: p}, {Path: p, Offset: size}}, Size: size})
		for i, flag := range []byte{0, 1, 2} {
			e := mustLoad(t, s)
			gen := fmt.Sprint(e.Flag())
			if got, _ := e.Get("gen"); got != gen {
				t.Fatalf("save %d: Load() = gen %q (flag %d), want the newest copy", i, got, e.Flag())
			}
			if err := s.Apply(map[string]string{"gen": fmt.Sprint(flag)}, nil); err != nil {
				t.Fatal(err)
			}
			if e := mustLoad(t, s); e.Flag() != flag {
				t.Errorf("save %d: flag = %d, want %d", i, e.Flag(), flag)
			}
		}
	}
}

// wrapImages returns redundant pairs whose counters are about to wrap, with
// 255 in either copy: the next saves write 0, 1, 2.
func wrapImages(size int) [][]byte {
	var imgs [][]byte
	for _, f0 := range []byte{254, 255} {
		f1 := byte(254 + 255 - int(f0))
		imgs = append(imgs, append(
			ubootImage(size, true, f0, 0, fmt.Sprintf("gen=%d", f0)),
			ubootImage(size, true, f1, 0, fmt.Sprintf("gen=%d", f1))...))
	}
	return imgs
}

func TestUBootStoreTooFull(t *testing.T) {
	p := fileOf(t, 0x100, 0)
	s := openFile(t, Config{Copies: []Location{{Path: p}}, Size: 0x100})
	provision(t, s, map[string]string{"a": "1"})
	before, _ := os.ReadFile(p)
	err := s.Apply(map[string]string{"b": string(bytes.Repeat([]byte("x"), 0x100))}, nil)
	if !errors.Is(err, ErrTooFull) {
		t.Errorf("Apply(big) = %v, want ErrTooFull", err)
	}
	if err := s.Apply(map[string]string{"a=b": "1"}, nil); !errors.Is(err, ErrInvalidName) {
		t.Errorf(`Apply("a=b") = %v, want ErrInvalidName`, err)
	}
	if after, _ := os.ReadFile(p); !bytes.Equal(before, after) {
		t.Errorf("failed Apply() changed the env")
	}
	// Freeing space in the same Apply makes room: order does not matter.
	big := string(bytes.Repeat([]byte("y"), 0x80))
	if err := s.Apply(map[string]string{"b": big, "c": big}, []string{"a"}); !errors.Is(err, ErrTooFull) {
		t.Errorf("Apply(too much) = %v, want ErrTooFull", err)
	}
	if err := s.Apply(map[string]string{"a": big, "b": big[:0x10]}, nil); err != nil {
		t.Errorf("Apply(a grows, b new) = %v", err)
	}
	if err := s.Apply(map[string]string{"a": "1", "b": big}, nil); err != nil {
		t.Errorf("Apply(a shrinks, b grows) = %v, want nil: the result fits", err)
	}
}

func TestUBootStoreNoChangeNoWrite(t *testing.T) {
	m := newNORFile(t, 0x2000, 0x1000)
	s, err := NewUBootStore(0x1000, SchemeAuto, UBootCopy{Medium: m}, UBootCopy{Medium: m, Offset: 0x1000})
	if err != nil {
		t.Fatal(err)
	}
	provision(t, s, map[string]string{"a": "1"})
	writes, erases := m.writes, m.erases
	if err := s.Apply(map[string]string{"a": "1"}, []string{"absent"}); err != nil {
		t.Fatal(err)
	}
	if m.writes != writes || m.erases != erases {
		t.Errorf("Apply(no change) wrote %d times and erased %d times, want none", m.writes-writes, m.erases-erases)
	}
}

// TestUBootStorePowerCut cuts every write of a save in turn: whatever the
// moment, Load returns the whole old or the whole new env.
func TestUBootStorePowerCut(t *testing.T) {
	for _, scheme := range []FlagScheme{SchemeActive, SchemeCounter} {
		for cut := 1; cut <= 2; cut++ {
			t.Run(fmt.Sprintf("%v/write%d", scheme, cut), func(t *testing.T) {
				m := newNORFile(t, 0x2000, 0x1000)
				s, err := NewUBootStore(0x1000, scheme, UBootCopy{Medium: m}, UBootCopy{Medium: m, Offset: 0x1000})
				if err != nil {
					t.Fatal(err)
				}
				provision(t, s, map[string]string{"v": "1"})
				if err := s.Apply(map[string]string{"v": "2"}, nil); err != nil {
					t.Fatal(err)
				}
				n := 0
				m.failWrite = func(int64, int) error {
					if n++; n == cut {
						return errors.New("power cut")
					}
					return nil
				}
				err = s.Apply(map[string]string{"v": "3"}, nil)
				m.failWrite = nil
				got, _ := mustLoad(t, s).Get("v")
				if got != "2" && got != "3" {
					t.Errorf("after a cut at write %d: v = %q, want 2 or 3", cut, got)
				}
				if err == nil && got != "3" {
					t.Errorf("Apply() = nil but v = %q, want 3", got)
				}
			})
		}
	}
}

func TestUBootStoreSectorPreserved(t *testing.T) {
	// A 0x400-byte env at the start of a 0x1000-byte erase block: the rest of
	// the block is read, erased and written back.
	m := newNORFile(t, 0x2000, 0x1000)
	tail := []byte("keep me")
	m.f.WriteAt(tail, 0x1800)
	s, err := NewUBootStore(0x400, SchemeAuto, UBootCopy{Medium: m, Offset: 0x1000})
	if err != nil {
		t.Fatal(err)
	}
	provision(t, s, map[string]string{"a": "1"})
	if err := s.Apply(map[string]string{"a": "2"}, nil); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(tail))
	m.f.ReadAt(got, 0x1800)
	if !bytes.Equal(got, tail) {
		t.Errorf("bytes after the env in its erase block = %q, want %q", got, tail)
	}
}

func TestNewUBootStoreErrors(t *testing.T) {
	m := newNORFile(t, 0x4000, 0x1000)
	tests := []struct {
		name   string
		size   int64
		scheme FlagScheme
		copies []UBootCopy
	}{
		{"no copies", 0x1000, SchemeAuto, nil},
		{"three copies", 0x1000, SchemeAuto, []UBootCopy{{Medium: m}, {Medium: m, Offset: 0x1000}, {Medium: m, Offset: 0x2000}}},
		{"tiny", 4, SchemeAuto, []UBootCopy{{Medium: m}}},
		{"unaligned", 0x1000, SchemeAuto, []UBootCopy{{Medium: m, Offset: 0x200}}},
		{"overlap", 0x1000, SchemeAuto, []UBootCopy{{Medium: m}, {Medium: m, Offset: 0}}},
		{"too few sectors", 0x2000, SchemeAuto, []UBootCopy{{Medium: m, Sectors: 1}}},
		{"bad scheme", 0x1000, FlagScheme(9), []UBootCopy{{Medium: m}}},
		{"nil medium", 0x1000, SchemeAuto, []UBootCopy{{}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := NewUBootStore(tt.size, tt.scheme, tt.copies...); !errors.Is(err, ErrConfig) {
				t.Errorf("NewUBootStore() = %v, want ErrConfig", err)
			}
		})
	}
}

func TestUBootSingleFileReplacedAtomically(t *testing.T) {
	dir := t.TempDir()
	real := filepath.Join(dir, "uboot.env")
	os.WriteFile(real, ubootImage(0x400, false, 0, 0, "a=1"), 0o600)
	link := filepath.Join(dir, "link.env")
	if err := os.Symlink("uboot.env", link); err != nil {
		t.Fatal(err)
	}
	s := openFile(t, Config{Copies: []Location{{Path: link}}, Size: 0x400})
	st0, _ := os.Stat(real)
	if err := s.Apply(map[string]string{"a": "2"}, nil); err != nil {
		t.Fatal(err)
	}
	st1, _ := os.Stat(real)
	if os.SameFile(st0, st1) {
		t.Errorf("uboot.env was rewritten in place, want a new file renamed over it")
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("symlink %s replaced by a file", link)
	}
	if st1.Mode().Perm() != 0o600 {
		t.Errorf("mode = %v, want 0600 kept", st1.Mode().Perm())
	}
	// The store follows the rename: the next save and load still work.
	if err := s.Apply(map[string]string{"a": "3"}, nil); err != nil {
		t.Fatal(err)
	}
	if got, _ := mustLoad(t, s).Get("a"); got != "3" {
		t.Errorf(`Get("a") = %q, want 3`, got)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Errorf("directory holds %d entries, want 2 (no temporary files left)", len(entries))
	}
}

func TestOpenUBoot(t *testing.T) {
	const size = 0x400
	p := fileOf(t, 4*size, 0)
	cfgPath := filepath.Join(t.TempDir(), "fw_env.config")
	os.WriteFile(cfgPath, fmt.Appendf(nil, "# comment\n%s 0x0 0x400\n%s -0x400 400\n", p, p), 0o644)
	s := openFile(t, Config{FWEnvConfig: cfgPath})
	if got := s.copies[1].Offset; got != 3*size {
		t.Errorf("negative offset resolved to %#x, want %#x", got, 3*size)
	}
	provision(t, s, map[string]string{"x": "y"})
	if got, _ := mustLoad(t, s).Get("x"); got != "y" {
		t.Errorf(`Get("x") = %q, want y`, got)
	}

	bad := []Config{
		{Type: "lilo"},
		{Type: UBoot, FWEnvConfig: cfgPath, Size: size},
		{Type: UBoot, Copies: []Location{{Path: filepath.Join(t.TempDir(), "absent")}}, Size: size},
		{Type: GRUB},
		{Type: GRUB, Path: "x", Copies: []Location{{Path: p}}},
	}
	for _, cfg := range bad {
		if s, err := Open(cfg); err == nil {
			s.Close()
			t.Errorf("Open(%+v) = nil error, want one", cfg)
		}
	}
}

func TestUBootStoreCorruptCopy(t *testing.T) {
	const size = 0x100
	unterminated := bytes.Repeat([]byte("x"), size)
	unterminated[4] = 9 // flag: newer than copy 0
	binary.LittleEndian.PutUint32(unterminated, crc32.ChecksumIEEE(unterminated[5:]))
	p := fileOf(t, 2*size, 0)
	os.WriteFile(p, append(ubootImage(size, true, 1, 0, "a=1"), unterminated...), 0o644)
	s := openFile(t, Config{Copies: []Location{{Path: p}, {Path: p, Offset: size}}, Size: size})
	e := mustLoad(t, s)
	if got, _ := e.Get("a"); got != "1" || !slices.Equal(e.Damaged(), []int{1}) {
		t.Errorf("Load() = a=%q damaged %v, want 1 and [1]", got, e.Damaged())
	}
	os.WriteFile(p, append(unterminated, unterminated...), 0o644)
	if _, err := s.Load(); !errors.Is(err, ErrBadCRC) || !errors.Is(err, ErrCorrupt) {
		t.Errorf("Load() of two corrupt copies = %v, want ErrBadCRC and ErrCorrupt", err)
	}
}
