package bootenv

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"strings"
)

// Header sizes of one U-Boot env copy: the CRC, and the flag byte of a
// redundant pair.
const (
	crcSize         = 4
	singleHeader    = crcSize
	redundantHeader = crcSize + 1
	// maxEnvSize bounds allocations from a configuration; real envs are a few
	// hundred KiB at most.
	maxEnvSize = 64 << 20
	// minEnvSize leaves room for the header and an empty data area.
	minEnvSize = redundantHeader + 2
)

// FlagScheme is how a redundant U-Boot pair tells its current copy.
type FlagScheme int

const (
	// SchemeAuto picks SchemeActive when both copies are on NOR flash and
	// SchemeCounter otherwise, as fw_setenv and libubootenv do.
	SchemeAuto FlagScheme = iota
	// SchemeCounter: each save writes the other copy's flag plus one; the
	// higher flag is current, and 0 is newer than 255.
	SchemeCounter
	// SchemeActive: the current copy's flag is 1 (active), the old copy's is
	// set to 0 (obsolete) in place, which NOR flash can do without an erase.
	SchemeActive
)

// Flag byte values of the active scheme.
const (
	flagObsolete = 0
	flagActive   = 1
)

func (s FlagScheme) String() string {
	switch s {
	case SchemeAuto:
		return "auto"
	case SchemeCounter:
		return "counter"
	case SchemeActive:
		return "active"
	}
	return fmt.Sprintf("FlagScheme(%d)", int(s))
}

// UnmarshalText reads "auto", "counter" or "active", so board profiles can
// name a scheme.
func (s *FlagScheme) UnmarshalText(b []byte) error {
	for _, c := range []FlagScheme{SchemeAuto, SchemeCounter, SchemeActive} {
		if string(b) == c.String() {
			*s = c
			return nil
		}
	}
	return fmt.Errorf("%w: unknown flag scheme %q", ErrConfig, b)
}

// newer reports which of two valid copies is current under scheme: 0 or 1.
// The rules are U-Boot's (tools/env/fw_env.c), the reference that the
// bootloader and fw_setenv agree on.
func newer(scheme FlagScheme, f0, f1 byte) int {
	if scheme == SchemeActive {
		switch {
		case f0 == flagActive && f1 == flagObsolete:
			return 0
		case f0 == flagObsolete && f1 == flagActive:
			return 1
		case f0 == f1, f0 == 0xFF:
			return 0
		case f1 == 0xFF:
			return 1
		}
		return 0
	}
	// The counter wraps: 0 follows 255. Comparing as signed bytes or without
	// this case picks the old copy after the wrap (fwup #214).
	switch {
	case f0 == 0xFF && f1 == 0:
		return 1
	case f1 == 0xFF && f0 == 0:
		return 0
	case f0 >= f1:
		return 0
	}
	return 1
}

// UBootEnv is one U-Boot environment copy in memory.
type UBootEnv struct {
	v         vars
	size      int  // bytes of the whole copy, header included
	redundant bool // a flag byte follows the CRC
	flag      byte
	pad       byte
	copy      int
	damaged   []int
}

// NewUBootEnv returns an empty environment for copies of size bytes (header
// included). Its flag is 1, as mkenvimage -r writes.
func NewUBootEnv(size int, redundant bool) (*UBootEnv, error) {
	if size < minEnvSize || size > maxEnvSize {
		return nil, fmt.Errorf("%w: U-Boot env of %d bytes", ErrSize, size)
	}
	return &UBootEnv{size: size, redundant: redundant, flag: flagActive}, nil
}

// DecodeUBoot reads one copy. It returns ErrBadCRC when the CRC does not
// match and ErrCorrupt when the data area is not terminated.
func DecodeUBoot(image []byte, redundant bool) (*UBootEnv, error) {
	e, err := NewUBootEnv(len(image), redundant)
	if err != nil {
		return nil, err
	}
	data := image[e.header():]
	if binary.LittleEndian.Uint32(image) != crc32.ChecksumIEEE(data) {
		return nil, ErrBadCRC
	}
	if redundant {
		e.flag = image[crcSize]
	}
	if data[len(data)-1] == 0xFF {
		e.pad = 0xFF
	}
	for i := 0; ; {
		// An empty entry ends the list. Data that runs to the end without
		// one is refused: U-Boot always writes it, and libubootenv reads
		// past the area without it.
		n := bytes.IndexByte(data[i:], 0)
		if n < 0 {
			return nil, fmt.Errorf("%w: U-Boot env not terminated", ErrCorrupt)
		}
		if n == 0 {
			break
		}
		name, value, ok := strings.Cut(string(data[i:i+n]), "=")
		i += n + 1
		// U-Boot ignores entries with no '=' and deletes "name=" ones;
		// a repeated name takes the later value, as on import.
		if !ok || name == "" {
			continue
		}
		if value == "" {
			e.v.unset(name)
			continue
		}
		e.v.set(name, value)
	}
	return e, nil
}

func (e *UBootEnv) header() int {
	if e.redundant {
		return redundantHeader
	}
	return singleHeader
}

// used is the data area the variables need: each entry and its NUL, and the
// empty entry that ends the list.
func (e *UBootEnv) used() int {
	n := 1
	for _, name := range e.v.names {
		n += len(name) + 1 + len(e.v.m[name]) + 1
	}
	return n
}

// Encode returns the copy's bytes: CRC, flag if redundant, and data area.
func (e *UBootEnv) Encode() ([]byte, error) {
	if e.used() > e.size-e.header() {
		return nil, fmt.Errorf("%w: %d bytes of variables in %d", ErrTooFull, e.used(), e.size-e.header())
	}
	image := make([]byte, e.size)
	data := image[e.header():]
	for i := range data {
		data[i] = e.pad
	}
	p := 0
	for _, name := range e.v.names {
		p += copy(data[p:], name)
		data[p] = '='
		p++
		p += copy(data[p:], e.v.m[name])
		data[p] = 0
		p++
	}
	data[p] = 0
	if e.redundant {
		image[crcSize] = e.flag
	}
	binary.LittleEndian.PutUint32(image, crc32.ChecksumIEEE(data))
	return image, nil
}

// Get returns a variable's value.
func (e *UBootEnv) Get(name string) (string, bool) { return e.v.get(name) }

// Vars returns a copy of all variables.
func (e *UBootEnv) Vars() map[string]string { return e.v.all() }

// Set sets a variable. An empty value unsets it, as U-Boot's setenv does.
func (e *UBootEnv) Set(name, value string) error {
	if err := checkUBootName(name); err != nil {
		return err
	}
	if strings.IndexByte(value, 0) >= 0 {
		return fmt.Errorf("%w: NUL in value of %q", ErrInvalidValue, name)
	}
	if value == "" {
		e.v.unset(name)
		return nil
	}
	old := e.v.clone()
	e.v.set(name, value)
	if e.used() > e.size-e.header() {
		e.v = old
		return fmt.Errorf("%w: setting %q", ErrTooFull, name)
	}
	return nil
}

// Unset removes a variable.
func (e *UBootEnv) Unset(name string) error {
	if err := checkUBootName(name); err != nil {
		return err
	}
	e.v.unset(name)
	return nil
}

// Flag is the copy's flag byte (redundant envs only).
func (e *UBootEnv) Flag() byte { return e.flag }

// Copy is the index of the copy the env was loaded from: 0, or 1 for the
// second copy of a redundant pair.
func (e *UBootEnv) Copy() int { return e.copy }

// Damaged lists the copies whose CRC was bad when the env was loaded; the
// next save writes over the damaged copy of a redundant pair.
func (e *UBootEnv) Damaged() []int { return append([]int(nil), e.damaged...) }

func checkUBootName(name string) error {
	if name == "" || strings.ContainsAny(name, "=\x00") {
		return fmt.Errorf("%w: %q", ErrInvalidName, name)
	}
	return nil
}
