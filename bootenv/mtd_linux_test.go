package bootenv

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

func TestOpenMTDNotMTD(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "mtd0"), make([]byte, 0x1000), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
	tests := []struct {
		name, path string
		op         string // of the *os.PathError
		notExist   bool
	}{
		// A character device but no MTD: MEMGETINFO must fail cleanly,
		// and Open must not mistake it for a file.
		{"char device", os.DevNull, "MEMGETINFO", false},
		{"regular file", filepath.Join(dir, "mtd0"), "MEMGETINFO", false},
		// A relative path is a path, not the MTD name "mtd0" (/dev/mtd0).
		{"relative path", "mtd0", "MEMGETINFO", false},
		{"missing", filepath.Join(dir, "nothing"), "open", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := OpenMTD(tt.path)
			if err == nil {
				m.Close()
			}
			var pe *os.PathError
			if !errors.As(err, &pe) || pe.Op != tt.op {
				t.Errorf("OpenMTD(%s) = %v, want a %s PathError", tt.path, err, tt.op)
			}
			if got := errors.Is(err, fs.ErrNotExist); got != tt.notExist {
				t.Errorf("OpenMTD(%s) = %v; errors.Is(err, fs.ErrNotExist) = %v, want %v", tt.path, err, got, tt.notExist)
			}
		})
	}
	if s, err := Open(Config{Type: UBoot, Copies: []Location{{Path: os.DevNull}}, Size: 0x1000}); err == nil {
		s.Close()
		t.Errorf("Open(%s) = nil error, want MEMGETINFO failure", os.DevNull)
	}
}

type nandFile struct{ *norFile }

func (nandFile) NOR() bool { return false }

func TestActiveSchemeRefusedOnNAND(t *testing.T) {
	m := nandFile{newNORFile(t, 0x2000, 0x1000)}
	_, err := NewUBootStore(0x1000, SchemeActive, UBootCopy{Medium: m}, UBootCopy{Medium: m, Offset: 0x1000})
	if !errors.Is(err, ErrConfig) {
		t.Errorf("NewUBootStore(active on NAND) = %v, want ErrConfig", err)
	}
	s, err := NewUBootStore(0x1000, SchemeAuto, UBootCopy{Medium: m}, UBootCopy{Medium: m, Offset: 0x1000})
	if err != nil || s.Scheme() != SchemeCounter {
		t.Errorf("NewUBootStore(auto on NAND) = %v, %v; want counter scheme", s, err)
	}
}
