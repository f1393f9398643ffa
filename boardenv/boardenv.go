// Package boardenv opens a board's bootloader environments: it turns a
// board profile's bootenv entry (boards.BootEnv) into an open
// bootenv.Store, finding the storage device, the partition by name, and,
// for an environment file inside a filesystem (uboot.env on a FAT boot
// partition), mounting that filesystem while the store is open.
//
// The install engine's env steps, the rescue's transaction marker and boot
// counter, and `lifeboat env` all open environments through Open.
package boardenv

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/lifeboat-updater/lifeboat/boards"
	"github.com/lifeboat-updater/lifeboat/bootenv"
	"github.com/lifeboat-updater/lifeboat/partitions"
)

// ErrNoEntry means the board profile has no bootenv entry of the name
// asked for, and no path was given instead.
var ErrNoEntry = errors.New("boardenv: no such bootloader environment in the board profile")

// Target says which environment to open.
type Target struct {
	// Name is the profile's bootenv entry.
	Name string
	// Path, when set (the command line's --target NAME=PATH), is the
	// file or device holding the environment instead of the entry's
	// place.
	Path string
	// Create makes an environment with no valid copy (a blank board)
	// load as a new, empty one (bootenv.OrNew).
	Create bool
}

// Open opens the bootloader environment t names. With t.Path set the
// environment is that file or device, laid out as the profile's entry of
// that name says (its type, size and scheme; without an entry, a GRUB
// block if the file has the size of one, else U-Boot). Otherwise it is
// where the profile's entry says, on the board's storage as r finds it.
//
// Closing the store closes the devices it opened and, for a file inside a
// filesystem, syncs that filesystem and unmounts it if Open mounted it.
func Open(p *boards.Profile, r boards.Resolver, t Target) (bootenv.Store, error) {
	s, err := open(p, r, t.Name, t.Path)
	if err != nil || !t.Create {
		return s, err
	}
	return bootenv.OrNew(s), nil
}

func open(p *boards.Profile, r boards.Resolver, name, path string) (bootenv.Store, error) {
	var e boards.BootEnv
	ok := false
	if p != nil {
		e, ok = p.BootEnv[name]
	}
	if !ok && path == "" {
		return nil, fmt.Errorf("%w: %q", ErrNoEntry, name)
	}
	if ok {
		if err := e.Validate(); err != nil {
			return nil, fmt.Errorf("bootenv %q: %w: %w", name, bootenv.ErrConfig, err)
		}
	}
	cfg, fsys, err := config(p, r, name, e, path)
	if err != nil {
		if fsys != nil {
			err = errors.Join(err, fsys.Close())
		}
		return nil, err
	}
	s, err := bootenv.Open(cfg)
	if fsys == nil {
		return s, err
	}
	if err != nil {
		return nil, errors.Join(err, fsys.Close())
	}
	return &fileStore{Store: s, fsys: fsys}, nil
}

// fileStore is a store on a file in a filesystem Lifeboat found or
// mounted; closing it syncs that filesystem and unmounts what was mounted
// for it.
type fileStore struct {
	bootenv.Store
	fsys io.Closer
}

func (s *fileStore) Close() error {
	return errors.Join(s.Store.Close(), s.fsys.Close())
}

// config turns entry e (or the path given instead) into the bootenv
// package's configuration. When the entry names a file in a filesystem,
// the filesystem is mounted (or found mounted) and returned too; the
// caller closes it after the store.
func config(p *boards.Profile, r boards.Resolver, name string, e boards.BootEnv, path string) (bootenv.Config, io.Closer, error) {
	var fsys io.Closer
	place, base := e.Path, int64(0)
	if path == "" && r.Host && (e.Path != "" || e.FWEnvConfig != "") {
		return bootenv.Config{}, nil, fmt.Errorf("bootenv %q: %w: %s is the board's own; on a host, Lifeboat never uses the profile's devices: give --target %s=PATH, or --on-device on the board itself", name, boards.ErrNoDevice, e.Path+e.FWEnvConfig, name)
	}
	if path != "" {
		// A file or device holding the environment; its type comes from
		// the profile, else from the file's size.
		place, base, e.Offset, e.Redundant, e.FWEnvConfig = path, 0, 0, 0, ""
		if e.Type == "" {
			e.Type = guessType(path)
		}
	} else if e.Device != "" {
		dev, err := r.Device(p, e.Device)
		if err != nil {
			return bootenv.Config{}, nil, fmt.Errorf("bootenv %q: %w", name, err)
		}
		place = dev
		number := 0
		if e.Partition != "" {
			l, err := partitions.ReadDevice(dev)
			if err != nil {
				return bootenv.Config{}, nil, fmt.Errorf("bootenv %q: %w", name, err)
			}
			part, ok := l.Find(e.Partition)
			if !ok {
				return bootenv.Config{}, nil, fmt.Errorf("bootenv %q: %w: no partition %q on %s", name, os.ErrNotExist, e.Partition, dev)
			}
			base, number = part.Start, part.Number
		}
		if e.File != "" {
			fstype := e.FSType
			if fstype == "" {
				fstype = "vfat"
			}
			m, err := openFilesystem(r, dev, number, fstype)
			if err != nil {
				return bootenv.Config{}, nil, fmt.Errorf("bootenv %q: %w", name, err)
			}
			fsys, place, base = m, filepath.Join(m.Dir(), e.File), 0
		}
	}
	switch e.Type {
	case boards.EnvGRUB:
		if place == "" {
			return bootenv.Config{}, fsys, fmt.Errorf("bootenv %q: %w: no path or device", name, bootenv.ErrConfig)
		}
		return bootenv.Config{Type: bootenv.GRUB, Path: place, Offset: base + e.Offset}, fsys, nil
	case boards.EnvUBoot:
		if e.FWEnvConfig != "" {
			return bootenv.Config{Type: bootenv.UBoot, FWEnvConfig: e.FWEnvConfig}, fsys, nil
		}
		if place == "" {
			return bootenv.Config{}, fsys, fmt.Errorf("bootenv %q: %w: no path, device or fw_env_config", name, bootenv.ErrConfig)
		}
		cfg := bootenv.Config{Type: bootenv.UBoot, Size: e.Size, Copies: []bootenv.Location{{Path: place, Offset: base + e.Offset}}}
		if e.Redundant != 0 {
			cfg.Copies = append(cfg.Copies, bootenv.Location{Path: place, Offset: base + e.Redundant})
		}
		if e.Scheme != "" {
			if err := cfg.Scheme.UnmarshalText([]byte(e.Scheme)); err != nil {
				return bootenv.Config{}, fsys, fmt.Errorf("bootenv %q: %w", name, err)
			}
		}
		if cfg.Size == 0 {
			if fi, err := os.Stat(place); err == nil && fi.Mode().IsRegular() && len(cfg.Copies) == 1 {
				cfg.Size = fi.Size() // a uboot.env file is all environment
			}
		}
		return cfg, fsys, nil
	}
	return bootenv.Config{}, fsys, fmt.Errorf("bootenv %q: %w: type %q, want uboot or grub", name, bootenv.ErrConfig, e.Type)
}

// guessType names the environment kind of a file given on the command line.
func guessType(path string) string {
	if fi, err := os.Stat(path); err == nil && fi.Size() == bootenv.GRUBEnvSize {
		return boards.EnvGRUB
	}
	return boards.EnvUBoot
}
