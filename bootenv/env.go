package bootenv

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
)

var (
	// ErrBadCRC means no copy of a U-Boot environment has a valid CRC: the
	// storage is blank or corrupt. Nothing is loaded in its place.
	ErrBadCRC = errors.New("bootenv: no copy with a valid CRC")
	// ErrCorrupt means the bytes are not an environment of the expected kind
	// (no GRUB signature, an unterminated U-Boot data area).
	ErrCorrupt = errors.New("bootenv: corrupt environment")
	// ErrTooFull means the variables do not fit the environment's size.
	ErrTooFull = errors.New("bootenv: environment too full")
	// ErrInvalidName means a variable name the format cannot hold.
	ErrInvalidName = errors.New("bootenv: invalid variable name")
	// ErrInvalidValue means a value the format cannot hold (a NUL byte).
	ErrInvalidValue = errors.New("bootenv: invalid variable value")
	// ErrSize means a block or file of the wrong size.
	ErrSize = errors.New("bootenv: wrong size")
	// ErrConfig means a Config or fw_env.config that cannot describe a store.
	ErrConfig = errors.New("bootenv: bad configuration")
	// ErrBadBlock means a NAND bad block inside the environment's range.
	ErrBadBlock = errors.New("bootenv: bad block in environment range")
)

// Env is a bootloader environment held in memory.
type Env interface {
	// Get returns a variable's value and whether it is set.
	Get(name string) (string, bool)
	// Set sets a variable; it fails with ErrInvalidName, ErrInvalidValue or
	// ErrTooFull and then leaves the Env as it was.
	Set(name, value string) error
	// Unset removes a variable; removing an unset variable is not an error.
	Unset(name string) error
	// Vars returns a copy of all variables.
	Vars() map[string]string
}

// Store is where an environment lives.
type Store interface {
	// Load reads the current environment.
	Load() (Env, error)
	// Save writes env atomically where the layout allows it (see the package
	// documentation). env may come from Load, New, or another Env.
	Save(env Env) error
	// Apply loads, unsets then sets the given variables, and saves if anything
	// changed. A refused change (bad name, too full, no valid copy) returns
	// its error before anything is written.
	Apply(set map[string]string, unset []string) error
	// Check is Apply without the save: what Apply would refuse now, Check
	// refuses, and nothing is written. An install checks its env steps so
	// before its first write.
	Check(set map[string]string, unset []string) error
	// New returns an empty Env sized for this store, for blank storage.
	New() Env
	// Close releases the devices the store opened.
	Close() error
}

// apply is Store.Apply for every store.
func apply(s Store, set map[string]string, unset []string) error {
	env, changed, err := change(s, set, unset)
	if err != nil || !changed {
		return err // spare the flash a write that changes nothing
	}
	return s.Save(env)
}

// check is Store.Check for every store: the changes must fit an empty
// environment of the store's kind and size (names and values the format
// can hold, and room), then the one stored now.
func check(s Store, set map[string]string, unset []string) error {
	if _, _, err := changeEnv(s.New(), set, unset); err != nil {
		return err
	}
	_, _, err := change(s, set, unset)
	return err
}

// change loads s and makes the changes in memory.
func change(s Store, set map[string]string, unset []string) (Env, bool, error) {
	env, err := s.Load()
	if err != nil {
		return nil, false, err
	}
	return changeEnv(env, set, unset)
}

// changeEnv makes the changes to env.
func changeEnv(env Env, set map[string]string, unset []string) (Env, bool, error) {
	before := env.Vars()
	for _, name := range unset {
		if err := env.Unset(name); err != nil {
			return nil, false, err
		}
	}
	// Shrinking changes first, then the rest by growing size: every step is
	// then no larger than the result, so a result that fits is never refused
	// for the order the changes came in.
	names := slices.Collect(maps.Keys(set))
	growth := func(n string) int {
		old, _ := env.Get(n)
		return len(set[n]) - len(old)
	}
	slices.SortFunc(names, func(a, b string) int {
		if d := growth(a) - growth(b); d != 0 {
			return d
		}
		return strings.Compare(a, b)
	})
	for _, name := range names {
		if err := env.Set(name, set[name]); err != nil {
			return nil, false, err
		}
	}
	return env, !maps.Equal(before, env.Vars()), nil
}

// OrNew returns s, except that an environment with no valid copy (blank
// storage, or a corrupt one) loads as a new, empty one: a factory install
// creates the environment of a blank board instead of refusing it. A board
// whose factory image never wrote its environment cannot count boots.
func OrNew(s Store) Store { return orNew{s} }

type orNew struct{ Store }

func (s orNew) Load() (Env, error) {
	env, err := s.Store.Load()
	if errors.Is(err, ErrBadCRC) || errors.Is(err, ErrCorrupt) {
		return s.Store.New(), nil
	}
	return env, err
}

func (s orNew) Apply(set map[string]string, unset []string) error { return apply(s, set, unset) }
func (s orNew) Check(set map[string]string, unset []string) error { return check(s, set, unset) }

// vars is an ordered variable list: the order read from storage is kept on
// save so that an unchanged env is written back byte for byte.
type vars struct {
	names []string
	m     map[string]string
}

func (v *vars) get(name string) (string, bool) {
	val, ok := v.m[name]
	return val, ok
}

func (v *vars) set(name, value string) {
	if v.m == nil {
		v.m = make(map[string]string)
	}
	if _, ok := v.m[name]; !ok {
		v.names = append(v.names, name)
	}
	v.m[name] = value
}

func (v *vars) unset(name string) {
	if _, ok := v.m[name]; !ok {
		return
	}
	delete(v.m, name)
	v.names = slices.DeleteFunc(v.names, func(n string) bool { return n == name })
}

func (v *vars) clone() vars {
	return vars{names: slices.Clone(v.names), m: maps.Clone(v.m)}
}

func (v *vars) all() map[string]string {
	m := maps.Clone(v.m)
	if m == nil {
		m = map[string]string{}
	}
	return m
}

// orderedVars returns env's variables in its own order when it keeps one,
// else sorted by name.
func orderedVars(env Env) vars {
	switch e := env.(type) {
	case *UBootEnv:
		return e.v.clone()
	case *GRUBEnv:
		return e.v.clone()
	}
	m := env.Vars()
	return vars{names: slices.Sorted(maps.Keys(m)), m: m}
}

// Type names a bootloader.
type Type string

// The bootloaders a Config can name.
const (
	UBoot Type = "uboot"
	GRUB  Type = "grub"
)

// Config says where an environment lives.
type Config struct {
	Type Type
	// FWEnvConfig is the path of a fw_env.config file (U-Boot). When set, it
	// gives Copies and Size, which must then be left empty.
	FWEnvConfig string
	// Copies are one location for a single U-Boot env, two for a redundant one.
	Copies []Location
	// Size is the size of each U-Boot copy in bytes, header included.
	Size int64
	// Scheme is the flag scheme of a redundant U-Boot env.
	Scheme FlagScheme
	// Path is the grubenv file (GRUB).
	Path string
	// Offset, for GRUB, places the 1024-byte block at Offset of the file
	// or device at Path and rewrites it in place (see NewGRUBStoreAt).
	Offset int64
}

// Location is one copy of a U-Boot environment.
type Location struct {
	// Path is a plain file (uboot.env on a mounted FAT partition), a block
	// device, or an MTD character device (/dev/mtdN).
	Path string
	// Offset is where the copy starts; a negative offset counts from the end
	// of a file or block device, as fw_env.config allows.
	Offset int64
	// SectorSize is the erase size on MTD; 0 means the device's.
	SectorSize int64
	// Sectors is how many erase blocks the copy may span; 0 means as many as
	// its size needs.
	Sectors int64
}

// Open returns the Store cfg describes. Devices are opened now; Close them
// with the Store.
func Open(cfg Config) (Store, error) {
	switch cfg.Type {
	case UBoot:
		return openUBoot(cfg)
	case GRUB:
		if cfg.Path == "" || len(cfg.Copies) > 0 || cfg.FWEnvConfig != "" {
			return nil, fmt.Errorf("%w: a GRUB env needs Path only", ErrConfig)
		}
		if cfg.Offset != 0 {
			return NewGRUBStoreAt(cfg.Path, cfg.Offset), nil
		}
		return NewGRUBStore(cfg.Path), nil
	}
	return nil, fmt.Errorf("%w: unknown type %q", ErrConfig, cfg.Type)
}
