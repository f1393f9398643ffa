package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/lifeboat-updater/lifeboat/boards"
	"github.com/lifeboat-updater/lifeboat/bootenv"
	"github.com/lifeboat-updater/lifeboat/install"
	"github.com/lifeboat-updater/lifeboat/partitions"
)

// envEntry is a board profile's bootenv entry (docs/cli.md, "Board
// profiles"). The environment lives in a file or device (path), or on one of
// the profile's storage devices (device), optionally inside a partition of
// it found by name (partition); offset counts from there. With file, the
// device or partition holds a filesystem (fstype, vfat by default) and the
// environment is that file in it (uboot.env on a FAT boot partition): the
// filesystem is mounted while the store is open, unless it already is.
type envEntry struct {
	Type        bootenv.Type `json:"type"`
	Path        string       `json:"path"`
	Device      string       `json:"device"`
	Partition   string       `json:"partition"`
	Offset      int64        `json:"offset"`
	Size        int64        `json:"size"`
	Redundant   int64        `json:"redundant_offset"` // U-Boot: offset of the second copy, 0 for none
	FWEnvConfig string       `json:"fw_env_config"`
	Scheme      string       `json:"scheme"` // U-Boot: auto, counter or active
	File        string       `json:"file"`   // a file in the filesystem of device/partition
	FSType      string       `json:"fstype"` // that filesystem's type; empty means vfat
}

// EnvOpener opens the bootloader environments a board profile names, for
// env steps and for the rescue's transaction marker and boot counter.
func EnvOpener(p *boards.Profile, r boards.Resolver) install.EnvOpener {
	return func(t install.EnvTarget) (install.EnvStore, error) {
		cfg, fsys, err := envConfig(p, r, t)
		if err != nil {
			return nil, err
		}
		s, err := bootenv.Open(cfg)
		if fsys == nil {
			return s, err
		}
		if err != nil {
			return nil, errors.Join(err, fsys.Close())
		}
		return &fileEnvStore{Store: s, fsys: fsys}, nil
	}
}

// fileEnvStore is a store on a file in a filesystem Lifeboat found or
// mounted; closing it syncs that filesystem and unmounts what was mounted
// for it.
type fileEnvStore struct {
	bootenv.Store
	fsys io.Closer
}

func (s *fileEnvStore) Close() error {
	return errors.Join(s.Store.Close(), s.fsys.Close())
}

// envConfig reads a bootenv entry. When the entry names a file in a
// filesystem, the filesystem is mounted (or found mounted) and returned
// too; the caller closes it after the store.
func envConfig(p *boards.Profile, r boards.Resolver, t install.EnvTarget) (cfg bootenv.Config, fsys io.Closer, err error) {
	var e envEntry
	if t.Config != nil {
		if err := json.Unmarshal(t.Config, &e); err != nil {
			return bootenv.Config{}, nil, fmt.Errorf("bootenv %q: %w", t.Name, err)
		}
	}
	if e.File != "" && t.Path == "" {
		if e.Device == "" || e.Path != "" || e.FWEnvConfig != "" || e.Redundant != 0 {
			return bootenv.Config{}, nil, fmt.Errorf("bootenv %q: %w: file goes with device (and partition) only, one copy", t.Name, bootenv.ErrConfig)
		}
		if e.Type != bootenv.UBoot && e.Type != bootenv.GRUB {
			return bootenv.Config{}, nil, fmt.Errorf("bootenv %q: type %q, want uboot or grub", t.Name, e.Type)
		}
		if !filepath.IsLocal(e.File) {
			return bootenv.Config{}, nil, fmt.Errorf("bootenv %q: %w: file %q must be relative, inside the filesystem", t.Name, bootenv.ErrConfig, e.File)
		}
	}
	defer func() {
		if err != nil && fsys != nil {
			err = errors.Join(err, fsys.Close())
			fsys = nil
		}
	}()
	cfg, fsys, err = envConfigEntry(p, r, t, e)
	return cfg, fsys, err
}

func envConfigEntry(p *boards.Profile, r boards.Resolver, t install.EnvTarget, e envEntry) (bootenv.Config, io.Closer, error) {
	var fsys io.Closer
	path, base := e.Path, int64(0)
	if t.Path != "" {
		// --target NAME=PATH: a file holding the environment; its type
		// comes from the profile, else from the name's usual meaning.
		path, base, e.Offset, e.Redundant = t.Path, 0, 0, 0
		if e.Type == "" {
			e.Type = guessType(t.Path)
		}
	} else if e.Device != "" {
		if p == nil {
			return bootenv.Config{}, fsys, fmt.Errorf("bootenv %q: no board profile to find device %q", t.Name, e.Device)
		}
		dev, err := r.Device(p, e.Device)
		if err != nil {
			return bootenv.Config{}, fsys, fmt.Errorf("bootenv %q: %w", t.Name, err)
		}
		path = dev
		number := 0
		if e.Partition != "" {
			part, err := findPartition(dev, e.Partition)
			if err != nil {
				return bootenv.Config{}, fsys, fmt.Errorf("bootenv %q: %w", t.Name, err)
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
				return bootenv.Config{}, nil, fmt.Errorf("bootenv %q: %w", t.Name, err)
			}
			fsys, path, base = m, filepath.Join(m.Dir(), e.File), 0
		}
	}
	switch e.Type {
	case bootenv.GRUB:
		if path == "" {
			return bootenv.Config{}, fsys, fmt.Errorf("bootenv %q: no path or device", t.Name)
		}
		return bootenv.Config{Type: bootenv.GRUB, Path: path, Offset: base + e.Offset}, fsys, nil
	case bootenv.UBoot:
		if e.FWEnvConfig != "" && t.Path == "" {
			return bootenv.Config{Type: bootenv.UBoot, FWEnvConfig: e.FWEnvConfig}, fsys, nil
		}
		if path == "" {
			return bootenv.Config{}, fsys, fmt.Errorf("bootenv %q: no path, device or fw_env_config", t.Name)
		}
		cfg := bootenv.Config{Type: bootenv.UBoot, Size: e.Size, Copies: []bootenv.Location{{Path: path, Offset: base + e.Offset}}}
		if e.Redundant != 0 {
			cfg.Copies = append(cfg.Copies, bootenv.Location{Path: path, Offset: base + e.Redundant})
		}
		if e.Scheme != "" {
			if err := cfg.Scheme.UnmarshalText([]byte(e.Scheme)); err != nil {
				return bootenv.Config{}, fsys, fmt.Errorf("bootenv %q: %w", t.Name, err)
			}
		}
		if cfg.Size == 0 {
			if fi, err := os.Stat(path); err == nil && fi.Mode().IsRegular() && len(cfg.Copies) == 1 {
				cfg.Size = fi.Size() // a uboot.env file is all environment
			}
		}
		return cfg, fsys, nil
	}
	return bootenv.Config{}, fsys, fmt.Errorf("bootenv %q: type %q, want uboot or grub", t.Name, e.Type)
}

// guessType names the environment kind of a file given on the command line.
func guessType(path string) bootenv.Type {
	if fi, err := os.Stat(path); err == nil && fi.Size() == bootenv.GRUBEnvSize {
		return bootenv.GRUB
	}
	return bootenv.UBoot
}

func findPartition(dev, name string) (partitions.Partition, error) {
	f, err := os.Open(dev)
	if err != nil {
		return partitions.Partition{}, err
	}
	defer f.Close()
	size, err := f.Seek(0, 2)
	if err != nil {
		return partitions.Partition{}, err
	}
	l, err := partitions.Read(f, size, 512)
	if err != nil {
		return partitions.Partition{}, fmt.Errorf("%s: %w", dev, err)
	}
	part, ok := l.Find(name)
	if !ok {
		return partitions.Partition{}, fmt.Errorf("%w: no partition %q on %s", install.ErrTargetMissing, name, dev)
	}
	return part, nil
}
