package boards

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// Place is where a target name of a profile points on the running board.
type Place struct {
	Name   string // the target name
	Device string // storage device name; "" for a path target
	Path   string // device node or file
	// Partition names a partition of the table on Path; the install
	// engine finds its offset and size. Empty for none.
	Partition string
	// Offset and Size are a byte range of Path when Partition is empty.
	// Size 0 means up to the end of Path.
	Offset, Size int64
	// Flash is the target's spec when it is raw flash (its Kind is not
	// KindBlock); Path is then empty: MTD devices are found by the
	// install, by name.
	Flash *TargetSpec
}

func (p Place) String() string {
	switch {
	case p.Flash != nil:
		switch p.Flash.Kind() {
		case KindMTD:
			return fmt.Sprintf("MTD %q", p.Flash.MTD)
		case KindUBI:
			return fmt.Sprintf("UBI volume %q on MTD %q", p.Flash.UBI.Volume, p.Flash.UBI.MTD)
		}
		return fmt.Sprintf("UBI image on MTD %q", p.Flash.UBIImage)
	case p.Partition != "":
		return fmt.Sprintf("partition %q of %s", p.Partition, p.Path)
	case p.Offset != 0 || p.Size != 0:
		return fmt.Sprintf("%s at %d (%d bytes)", p.Path, p.Offset, p.Size)
	}
	return p.Path
}

// Resolver finds storage devices on the running system. The zero value
// looks in /sys and /dev, as the rescue on the board does; tests point it
// at a fake tree.
type Resolver struct {
	SysRoot string // default "/sys"
	DevRoot string // default "/dev"
	// Given are storage devices and targets given by name (the command
	// line's --target NAME=PATH): they win over the profile.
	Given map[string]string
	// Host says the resolver runs on a host that writes a board's
	// storage (an image file, an SD card in a reader, a loop device), not
	// on the board: it never picks a device, path or flash from the
	// profile, only Given ones. The profile's /dev/vda or /dev/mtd1 on a
	// host are the host's own.
	Host bool
}

func (r Resolver) sys() string {
	if r.SysRoot == "" {
		return "/sys"
	}
	return r.SysRoot
}

func (r Resolver) dev() string {
	if r.DevRoot == "" {
		return "/dev"
	}
	return r.DevRoot
}

// Resolve looks name up among p's targets and then its storage devices
// (a storage name is a target for the whole device, as a partition step
// uses it). It returns an error wrapping ErrUnknownTarget if the profile
// has no such name, ErrNoDevice if the device it needs is not present.
func (p *Profile) Resolve(name string) (Place, error) { return Resolver{}.Resolve(p, name) }

// Device returns the path of p's storage device name.
func (p *Profile) Device(name string) (string, error) { return Resolver{}.Device(p, name) }

// Resolve is Profile.Resolve with r's view of the system.
func (r Resolver) Resolve(p *Profile, name string) (Place, error) {
	if t, ok := p.Targets[name]; ok {
		if r.Host && (t.Kind() != KindBlock || t.Path != "") {
			return Place{}, fmt.Errorf("%w: target %q is %s on the board; %s", ErrNoDevice, name, Place{Name: name, Path: t.Path, Flash: flashOf(t)}, r.hostHint(name))
		}
		if t.Kind() != KindBlock {
			return Place{Name: name, Flash: &t}, nil
		}
		if t.Path != "" {
			return Place{Name: name, Path: t.Path}, nil
		}
		dev, err := r.Device(p, t.Device)
		if err != nil {
			return Place{}, fmt.Errorf("target %q: %w", name, err)
		}
		return Place{Name: name, Device: t.Device, Path: dev, Partition: t.Partition, Offset: t.Offset, Size: t.Size}, nil
	}
	if _, ok := p.Storage[name]; ok {
		dev, err := r.Device(p, name)
		if err != nil {
			return Place{}, err
		}
		return Place{Name: name, Device: name, Path: dev}, nil
	}
	return Place{}, fmt.Errorf("%w %q in board profile %s", ErrUnknownTarget, name, p.Name)
}

// Device returns the path of p's storage device name: the first candidate
// path that exists, else the first block device (by kernel name) that its
// sysfs match selects.
func (r Resolver) Device(p *Profile, name string) (string, error) {
	s, ok := p.Storage[name]
	if !ok {
		return "", fmt.Errorf("%w: no storage device %q in board profile %s", ErrUnknownTarget, name, p.Name)
	}
	if g, ok := r.Given[name]; ok {
		return g, nil
	}
	if r.Host {
		return "", fmt.Errorf("%w: storage device %q of board %s: %s", ErrNoDevice, name, p.Name, r.hostHint(name))
	}
	for _, c := range s.Paths {
		if _, err := os.Stat(c); err == nil {
			return c, nil
		}
	}
	if s.Match != nil {
		dev, err := r.match(s.Match)
		if err != nil {
			return "", fmt.Errorf("storage %q: %w", name, err)
		}
		if dev != "" {
			return dev, nil
		}
	}
	tried := strings.Join(s.Paths, ", ")
	if s.Match != nil {
		if tried != "" {
			tried += ", "
		}
		tried += "sysfs match"
	}
	return "", fmt.Errorf("%w: %q (tried %s)", ErrNoDevice, name, tried)
}

// hostHint says what a host needs to be given instead of the profile's
// place for name.
func (r Resolver) hostHint(name string) string {
	return fmt.Sprintf("on a host, Lifeboat never uses the profile's devices: name it (install: --target %s=PATH; env: --storage %s=PATH), or give --on-device on the board itself", name, name)
}

func flashOf(t TargetSpec) *TargetSpec {
	if t.Kind() == KindBlock {
		return nil
	}
	return &t
}

func (r Resolver) match(m *Match) (string, error) {
	dir := filepath.Join(r.sys(), "class", "block")
	ents, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", nil
		}
		return "", err
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	sort.Strings(names)
next:
	for _, n := range names {
		if m.Name != "" {
			if ok, _ := path.Match(m.Name, n); !ok {
				continue
			}
		}
		// Partitions have a "partition" attribute; only whole devices
		// are storage.
		if _, err := os.Stat(filepath.Join(dir, n, "partition")); err == nil {
			continue
		}
		for _, a := range sortedKeys(m.Attrs) {
			b, err := os.ReadFile(filepath.Join(dir, n, a))
			if err != nil {
				continue next
			}
			if ok, _ := path.Match(m.Attrs[a], strings.TrimSpace(string(b))); !ok {
				continue next
			}
		}
		return filepath.Join(r.dev(), n), nil
	}
	return "", nil
}
