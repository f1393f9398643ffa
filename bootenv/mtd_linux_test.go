package bootenv

import (
	"errors"
	"os"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The request numbers encode the size of the struct the kernel copies: ours
// must match, or the ioctls would read or write past them.
func TestMTDStructSizes(t *testing.T) {
	size := func(req uint) uintptr { return uintptr(req>>16) & 0x3FFF }
	if got, want := unsafe.Sizeof(mtdInfoUser{}), size(unix.MEMGETINFO); got != want {
		t.Errorf("sizeof(mtdInfoUser) = %d, want %d", got, want)
	}
	if got, want := unsafe.Sizeof(eraseInfoUser64{}), size(unix.MEMERASE64); got != want {
		t.Errorf("sizeof(eraseInfoUser64) = %d, want %d", got, want)
	}
}

func TestOpenMTDNotMTD(t *testing.T) {
	// /dev/null is a character device but no MTD: MEMGETINFO must fail
	// cleanly, and Open must not mistake it for a file.
	_, err := OpenMTD(os.DevNull)
	var pe *os.PathError
	if !errors.As(err, &pe) || pe.Op != "MEMGETINFO" {
		t.Errorf("OpenMTD(%s) = %v, want a MEMGETINFO PathError", os.DevNull, err)
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
