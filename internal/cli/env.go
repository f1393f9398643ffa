package cli

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/lifeboat-updater/lifeboat/boards"
	"github.com/lifeboat-updater/lifeboat/bootenv"
	"github.com/lifeboat-updater/lifeboat/install"
	"github.com/lifeboat-updater/lifeboat/partitions"
)

// envEntry is a board profile's bootenv entry (docs/cli.md, "Board
// profiles"). The environment lives in a file or device (path), or on one of
// the profile's storage devices (device), optionally inside a partition of
// it found by name (partition); offset counts from there.
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
}

// EnvOpener opens the bootloader environments a board profile names, for
// env steps and for the rescue's transaction marker and boot counter.
func EnvOpener(p *boards.Profile, r boards.Resolver) install.EnvOpener {
	return func(t install.EnvTarget) (install.EnvStore, error) {
		cfg, err := envConfig(p, r, t)
		if err != nil {
			return nil, err
		}
		return bootenv.Open(cfg)
	}
}

func envConfig(p *boards.Profile, r boards.Resolver, t install.EnvTarget) (bootenv.Config, error) {
	var e envEntry
	if t.Config != nil {
		if err := json.Unmarshal(t.Config, &e); err != nil {
			return bootenv.Config{}, fmt.Errorf("bootenv %q: %w", t.Name, err)
		}
	}
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
			return bootenv.Config{}, fmt.Errorf("bootenv %q: no board profile to find device %q", t.Name, e.Device)
		}
		dev, err := r.Device(p, e.Device)
		if err != nil {
			return bootenv.Config{}, fmt.Errorf("bootenv %q: %w", t.Name, err)
		}
		path = dev
		if e.Partition != "" {
			part, err := findPartition(dev, e.Partition)
			if err != nil {
				return bootenv.Config{}, fmt.Errorf("bootenv %q: %w", t.Name, err)
			}
			base = part.Start
		}
	}
	switch e.Type {
	case bootenv.GRUB:
		if path == "" {
			return bootenv.Config{}, fmt.Errorf("bootenv %q: no path or device", t.Name)
		}
		return bootenv.Config{Type: bootenv.GRUB, Path: path, Offset: base + e.Offset}, nil
	case bootenv.UBoot:
		if e.FWEnvConfig != "" && t.Path == "" {
			return bootenv.Config{Type: bootenv.UBoot, FWEnvConfig: e.FWEnvConfig}, nil
		}
		if path == "" {
			return bootenv.Config{}, fmt.Errorf("bootenv %q: no path, device or fw_env_config", t.Name)
		}
		cfg := bootenv.Config{Type: bootenv.UBoot, Size: e.Size, Copies: []bootenv.Location{{Path: path, Offset: base + e.Offset}}}
		if e.Redundant != 0 {
			cfg.Copies = append(cfg.Copies, bootenv.Location{Path: path, Offset: base + e.Redundant})
		}
		if e.Scheme != "" {
			if err := cfg.Scheme.UnmarshalText([]byte(e.Scheme)); err != nil {
				return bootenv.Config{}, fmt.Errorf("bootenv %q: %w", t.Name, err)
			}
		}
		if cfg.Size == 0 {
			if fi, err := os.Stat(path); err == nil && fi.Mode().IsRegular() && len(cfg.Copies) == 1 {
				cfg.Size = fi.Size() // a uboot.env file is all environment
			}
		}
		return cfg, nil
	}
	return bootenv.Config{}, fmt.Errorf("bootenv %q: type %q, want uboot or grub", t.Name, e.Type)
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
