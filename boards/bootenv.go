package boards

import (
	"fmt"
	"path/filepath"
)

// Bootloader environment kinds, as a BootEnv's Type names them.
const (
	EnvUBoot = "uboot"
	EnvGRUB  = "grub"
)

// grubEnvSize is the size of GRUB's environment block (grub-editenv).
const grubEnvSize = 1024

// BootEnv is one of the board's bootloader environments: where it lives
// and how it is laid out. Package boardenv opens it.
//
// The environment lives in a file or device (Path), or on one of the
// profile's storage devices (Device), optionally inside a partition of it
// found by name (Partition); Offset counts from there. With File, the
// device or partition holds a filesystem (FSType, vfat by default) and the
// environment is that file in it (uboot.env on a FAT boot partition): the
// filesystem is mounted while the environment is open, unless it already
// is. A U-Boot environment may instead come from a fw_env.config file
// (FWEnvConfig), which then gives the places and sizes.
type BootEnv struct {
	Type      string `json:"type"` // EnvUBoot or EnvGRUB
	Path      string `json:"path,omitempty"`
	Device    string `json:"device,omitempty"`
	Partition string `json:"partition,omitempty"`
	Offset    int64  `json:"offset,omitempty"`
	// Size is a U-Boot copy's size in bytes, header included; 0 means
	// the whole file (a uboot.env file) or U-Boot's default.
	Size int64 `json:"size,omitempty"`
	// Redundant is the offset of a redundant U-Boot copy; 0 for none.
	Redundant   int64  `json:"redundant_offset,omitempty"`
	FWEnvConfig string `json:"fw_env_config,omitempty"`
	// Scheme is the flag scheme of a redundant U-Boot environment:
	// "auto" (the default), "counter" or "active".
	Scheme string `json:"scheme,omitempty"`
	File   string `json:"file,omitempty"`
	FSType string `json:"fstype,omitempty"`
}

// Validate checks the entry on its own: what can be wrong with it before
// any device is looked at.
func (e BootEnv) Validate() error {
	switch e.Type {
	case EnvUBoot, EnvGRUB:
	default:
		return fmt.Errorf("type %q, want %s or %s", e.Type, EnvUBoot, EnvGRUB)
	}
	if e.Offset < 0 || e.Size < 0 || e.Redundant < 0 {
		return fmt.Errorf("negative offset, size or redundant_offset")
	}
	places := 0
	for _, s := range []string{e.Path, e.Device, e.FWEnvConfig} {
		if s != "" {
			places++
		}
	}
	if places > 1 {
		return fmt.Errorf("path, device and fw_env_config exclude each other")
	}
	if e.Partition != "" && e.Device == "" {
		return fmt.Errorf("partition %q needs a device", e.Partition)
	}
	if e.Type == EnvGRUB && (e.Redundant != 0 || e.FWEnvConfig != "" || e.Scheme != "") {
		return fmt.Errorf("a GRUB environment takes no redundant_offset, fw_env_config or scheme")
	}
	if e.Type == EnvGRUB && e.Size != 0 && e.Size != grubEnvSize {
		return fmt.Errorf("size %d: a GRUB environment block is %d bytes", e.Size, grubEnvSize)
	}
	switch e.Scheme {
	case "", "auto", "counter", "active":
	default:
		return fmt.Errorf("scheme %q, want auto, counter or active", e.Scheme)
	}
	if e.Scheme != "" && e.Scheme != "auto" && e.Redundant == 0 && e.FWEnvConfig == "" {
		return fmt.Errorf("scheme %q is for a redundant environment (no redundant_offset)", e.Scheme)
	}
	if e.File != "" {
		if e.Device == "" || e.Redundant != 0 {
			return fmt.Errorf("file goes with device (and partition) only, one copy")
		}
		if !filepath.IsLocal(e.File) {
			return fmt.Errorf("file %q must be relative, inside the filesystem", e.File)
		}
		if e.Offset != 0 {
			return fmt.Errorf("file %q takes no offset", e.File)
		}
	} else if e.FSType != "" {
		return fmt.Errorf("fstype %q goes with file", e.FSType)
	}
	return nil
}
