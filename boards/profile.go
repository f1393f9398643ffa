// Package boards describes the boards Lifeboat runs on: a profile says
// which storage a board has, what the target names of a bundle's steps
// mean on it, where its bootloader environment lives, and what the rescue
// needs to bring it up (modules, console, watchdog, bundle sources).
//
// A profile is JSON; the rescue reads it from /etc/lifeboat/board.json,
// and profiles of the boards the project ships are built in (Builtin).
package boards

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"sort"
	"strings"
)

// DefaultPath is where the rescue image carries its board's profile.
const DefaultPath = "/etc/lifeboat/board.json"

// Errors returned by this package. Compare with errors.Is.
var (
	// ErrInvalid means a profile does not parse or is inconsistent; the
	// message names the field.
	ErrInvalid = errors.New("boards: invalid board profile")

	// ErrUnknownBoard means Builtin has no profile of that name.
	ErrUnknownBoard = errors.New("boards: no built-in profile")

	// ErrUnknownTarget means a name is neither a target nor a storage
	// device of the profile.
	ErrUnknownTarget = errors.New("boards: unknown target")

	// ErrNoDevice means none of a storage device's candidate paths exist
	// and nothing in sysfs matches it.
	ErrNoDevice = errors.New("boards: storage device not present")
)

// Profile is one board's description.
type Profile struct {
	Name     string `json:"name"`
	Revision string `json:"revision,omitempty"`
	// Console is the kernel name of the console the rescue talks on
	// ("ttyS0", "ttyAMA0").
	Console string `json:"console,omitempty"`
	// Storage names the board's storage devices ("disk", "emmc", "sd").
	Storage map[string]Storage `json:"storage"`
	// Targets give the names that bundle steps write to their place on
	// the board. A step's target that is not listed here may still be the
	// name of a partition (see the install package).
	Targets map[string]TargetSpec `json:"targets,omitempty"`
	// UBI gives the volume layout of the UBI devices on raw flash, by
	// the MTD device they live on (its MTD name, as the profile's ubi
	// targets name it). Before a volume is written the device is brought
	// to this layout, changing only what differs.
	UBI map[string]UBIDevice `json:"ubi,omitempty"`
	// BootEnv describes the bootloader environments by name (env steps'
	// targets, the recovery contract's variables).
	BootEnv map[string]BootEnv `json:"bootenv,omitempty"`
	// SecurityVersionFile holds the device's security version, a decimal
	// number; a bundle with a lower one is refused. Missing means 0.
	SecurityVersionFile string    `json:"security_version_file,omitempty"`
	Modules             []string  `json:"modules,omitempty"`
	Sources             []string  `json:"sources,omitempty"`
	Watchdog            *Watchdog `json:"watchdog,omitempty"`
	// Recovery is the bootloader contract of the rescue: transaction
	// marker, boot counter, state partitions, button (recovery.go).
	Recovery *Recovery `json:"recovery,omitempty"`
	// Web configures the rescue's recovery web page: when it is served,
	// and the password that opens it (web.go).
	Web *Web `json:"web,omitempty"`
}

// Watchdog is the hardware watchdog the rescue keeps fed.
type Watchdog struct {
	Device         string `json:"device"`
	TimeoutSeconds int    `json:"timeout_seconds,omitempty"`
}

// Storage says how to find one storage device. The first candidate path
// that exists wins; if none does, the block devices in sysfs are searched
// with Match. A board whose storage shows up as /dev/mmcblk0 on hardware
// and /dev/vda under QEMU lists both, or matches on sysfs attributes.
//
// In JSON it is a path, a list of paths, or an object
// {"paths": [...], "match": {...}}.
type Storage struct {
	Paths []string `json:"paths,omitempty"`
	Match *Match   `json:"match,omitempty"`
}

// Match selects a whole block device (never a partition) by what sysfs
// says about it.
type Match struct {
	// Name is a glob on the kernel name: "mmcblk[0-9]", "vd?".
	Name string `json:"name,omitempty"`
	// Attrs maps a file under /sys/class/block/NAME ("removable",
	// "device/type", "device/model") to a glob its content, without
	// surrounding white space, must match.
	Attrs map[string]string `json:"attrs,omitempty"`
}

// UnmarshalJSON accepts a path, a list of paths, or the object form.
func (s *Storage) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case len(b) > 0 && b[0] == '"':
		var p string
		if err := json.Unmarshal(b, &p); err != nil {
			return err
		}
		*s = Storage{Paths: []string{p}}
		return nil
	case len(b) > 0 && b[0] == '[':
		var ps []string
		if err := json.Unmarshal(b, &ps); err != nil {
			return err
		}
		*s = Storage{Paths: ps}
		return nil
	}
	type plain Storage
	var p plain
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&p); err != nil {
		return err
	}
	*s = Storage(p)
	return nil
}

// TargetSpec is where a target name points. Exactly one form is used:
//
//	{"device": "disk", "partition": "rootfs"}   a partition, by name, of a storage device
//	{"device": "disk", "offset": N, "size": M}  a byte range of a storage device (size 0: to its end)
//	{"device": "disk"}                          a whole storage device
//	{"path": "/dev/mmcblk0boot0"}               a device node or file, whole
//	{"mtd": "rootfs-nand", "max_bad": 8}        a raw flash (MTD) partition, bad blocks passed over
//	{"ubi": {"mtd": "ubi-part", "volume": "rootfs", "spare": "rootfs_b"}}
//	                                            a UBI volume on an MTD partition
//	{"ubi_image": "ubi-part", "max_bad": 8}     a whole ubinized image for an MTD partition
//
// MTD partitions are named as the kernel names them (/proc/mtd), as
// "mtdN", or by their /dev/mtdN path.
type TargetSpec struct {
	Device    string `json:"device,omitempty"`
	Partition string `json:"partition,omitempty"`
	Offset    int64  `json:"offset,omitempty"`
	Size      int64  `json:"size,omitempty"`
	Path      string `json:"path,omitempty"`

	// MTD is a raw flash partition written through the MTD layer: one
	// erase block at a time, bad blocks passed over, blocks that already
	// hold the image left alone.
	MTD string `json:"mtd,omitempty"`
	// UBI is a volume of the UBI device on an MTD partition.
	UBI *UBITarget `json:"ubi,omitempty"`
	// UBIImage is an MTD partition that takes a whole UBI image (made by
	// ubinize), written as ubiformat does: erase counters are kept.
	UBIImage string `json:"ubi_image,omitempty"`
	// MaxBad is the bad-block budget of an mtd or ubi_image target: how
	// many bad blocks the write may pass over before it fails. 0 means no
	// budget but the partition's end; -1 means not one.
	MaxBad int `json:"max_bad,omitempty"`
}

// Kinds of target, as TargetSpec.Kind returns them.
const (
	KindBlock    = "block"     // a block device or file, whole or a part
	KindMTD      = "mtd"       // raw flash
	KindUBI      = "ubi"       // a UBI volume
	KindUBIImage = "ubi_image" // a whole UBI image on raw flash
)

// Kind says what kind of storage the target is.
func (t TargetSpec) Kind() string {
	switch {
	case t.MTD != "":
		return KindMTD
	case t.UBI != nil:
		return KindUBI
	case t.UBIImage != "":
		return KindUBIImage
	}
	return KindBlock
}

// UBITarget is a UBI volume target.
type UBITarget struct {
	// MTD is the MTD partition UBI is attached to (attached by the
	// install if it is not yet).
	MTD string `json:"mtd"`
	// Volume is the volume's name.
	Volume string `json:"volume"`
	// Spare, if set, is a second volume of the same size: the image is
	// written to it and the two names are then swapped in one atomic
	// rename, so that Volume is never half written. Without it the
	// volume is updated in place.
	Spare string `json:"spare,omitempty"`
}

// UBIDevice is the layout of a UBI device.
type UBIDevice struct {
	// Volumes are the volumes the device has after an install: missing
	// ones are created, ones of another size resized, others removed.
	Volumes []UBIVolume `json:"volumes"`
}

// UBIVolume is one volume of a UBI layout.
type UBIVolume struct {
	Name string `json:"name"`
	// ID is the volume ID; missing means UBI chooses.
	ID *int `json:"id,omitempty"`
	// Size is the bytes to reserve; UBI rounds them up to whole LEBs.
	Size int64 `json:"size"`
	// Type is "dynamic" (the default) or "static".
	Type string `json:"type,omitempty"`
}

// Volume returns the layout's volume called name.
func (d UBIDevice) Volume(name string) (UBIVolume, bool) {
	for _, v := range d.Volumes {
		if v.Name == name {
			return v, true
		}
	}
	return UBIVolume{}, false
}

// Load reads and validates the profile at path.
func Load(path string) (*Profile, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("boards: %w", err)
	}
	p, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return p, nil
}

// Parse decodes and validates a profile. Unknown fields are errors, so a
// misspelt key is found when the rescue image is built, not on a device.
func Parse(b []byte) (*Profile, error) {
	var p Profile
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&p); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if d.More() {
		return nil, fmt.Errorf("%w: data after the profile", ErrInvalid)
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return &p, nil
}

// Validate checks that the profile is complete and consistent.
func (p *Profile) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, a...))
	}
	if p.Name == "" {
		return bad("no name")
	}
	if strings.ContainsAny(p.Name+p.Revision, ": \t\n") {
		return bad("name %q or revision %q contains ':' or white space", p.Name, p.Revision)
	}
	for _, n := range sortedKeys(p.Storage) {
		s := p.Storage[n]
		if n == "" {
			return bad("storage device with an empty name")
		}
		if len(s.Paths) == 0 && s.Match == nil {
			return bad("storage %q: no paths and no match", n)
		}
		for _, q := range s.Paths {
			if !strings.HasPrefix(q, "/") {
				return bad("storage %q: path %q is not absolute", n, q)
			}
		}
		if m := s.Match; m != nil {
			if m.Name == "" && len(m.Attrs) == 0 {
				return bad("storage %q: empty match", n)
			}
			for _, g := range append([]string{m.Name}, mapValues(m.Attrs)...) {
				if _, err := path.Match(g, ""); err != nil {
					return bad("storage %q: bad glob %q", n, g)
				}
			}
			for a := range m.Attrs {
				if a == "" || strings.HasPrefix(a, "/") || strings.Contains(a, "..") {
					return bad("storage %q: bad sysfs attribute %q", n, a)
				}
			}
		}
	}
	for _, n := range sortedKeys(p.Targets) {
		t := p.Targets[n]
		if n == "" {
			return bad("target with an empty name")
		}
		if _, ok := p.Storage[n]; ok {
			return bad("%q is both a target and a storage device", n)
		}
		if err := t.validateFlash(n, p); err != nil {
			return err
		}
		if t.Kind() != KindBlock {
			continue
		}
		switch {
		case t.Path != "" && t.Device != "":
			return bad("target %q: both path and device", n)
		case t.Path != "":
			if !strings.HasPrefix(t.Path, "/") {
				return bad("target %q: path %q is not absolute", n, t.Path)
			}
			if t.Partition != "" || t.Offset != 0 || t.Size != 0 {
				return bad("target %q: a path target takes no partition, offset or size", n)
			}
		case t.Device != "":
			if _, ok := p.Storage[t.Device]; !ok {
				return bad("target %q: no storage device %q", n, t.Device)
			}
			if t.Partition != "" && (t.Offset != 0 || t.Size != 0) {
				return bad("target %q: partition and offset/size exclude each other", n)
			}
			if t.Offset < 0 || t.Size < 0 {
				return bad("target %q: negative offset or size", n)
			}
		default:
			return bad("target %q: neither path nor device", n)
		}
	}
	for _, m := range sortedKeys(p.UBI) {
		if m == "" {
			return bad("ubi: empty MTD name")
		}
		names, ids := map[string]bool{}, map[int]bool{}
		for _, v := range p.UBI[m].Volumes {
			switch {
			case v.Name == "" || len(v.Name) > 127:
				return bad("ubi %q: volume name %q (1 to 127 bytes)", m, v.Name)
			case names[v.Name]:
				return bad("ubi %q: two volumes named %q", m, v.Name)
			case v.Size <= 0:
				return bad("ubi %q: volume %q has size %d", m, v.Name, v.Size)
			case v.Type != "" && v.Type != "dynamic" && v.Type != "static":
				return bad("ubi %q: volume %q has type %q, want dynamic or static", m, v.Name, v.Type)
			}
			names[v.Name] = true
			if v.ID != nil {
				if *v.ID < 0 || ids[*v.ID] {
					return bad("ubi %q: volume %q has ID %d (negative, or taken)", m, v.Name, *v.ID)
				}
				ids[*v.ID] = true
			}
		}
	}
	for _, n := range sortedKeys(p.BootEnv) {
		e := p.BootEnv[n]
		if err := e.Validate(); err != nil {
			return bad("bootenv %q: %v", n, err)
		}
		if e.Device != "" {
			if _, ok := p.Storage[e.Device]; !ok {
				return bad("bootenv %q: no storage device %q", n, e.Device)
			}
		}
	}
	if w := p.Watchdog; w != nil && (w.Device == "" || w.TimeoutSeconds < 0) {
		return bad("watchdog needs a device and a timeout of 0 or more seconds")
	}
	if f := p.SecurityVersionFile; f != "" && !strings.HasPrefix(f, "/") {
		return bad("security_version_file %q is not absolute", f)
	}
	if p.Web != nil {
		if err := p.Web.validate(); err != nil {
			return err
		}
	}
	return nil
}

// validateFlash checks the raw flash forms of target n.
func (t TargetSpec) validateFlash(n string, p *Profile) error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: target %q: %s", ErrInvalid, n, fmt.Sprintf(format, a...))
	}
	kinds := 0
	for _, set := range []bool{t.MTD != "", t.UBI != nil, t.UBIImage != ""} {
		if set {
			kinds++
		}
	}
	switch {
	case kinds == 0:
		if t.MaxBad != 0 {
			return bad("max_bad is for mtd and ubi_image targets")
		}
		return nil
	case kinds > 1:
		return bad("more than one of mtd, ubi and ubi_image")
	case t.Device != "" || t.Path != "" || t.Partition != "" || t.Offset != 0 || t.Size != 0:
		return bad("a flash target takes no device, path, partition, offset or size")
	case t.MaxBad < -1:
		return bad("max_bad %d (want -1 or more)", t.MaxBad)
	}
	u := t.UBI
	if u == nil {
		return nil
	}
	switch {
	case t.MaxBad != 0:
		return bad("max_bad is for mtd and ubi_image targets (UBI handles its own bad blocks)")
	case u.MTD == "" || u.Volume == "":
		return bad("ubi needs mtd and volume")
	case u.Spare == u.Volume:
		return bad("ubi spare %q is the volume itself", u.Spare)
	}
	if layout, ok := p.UBI[u.MTD]; ok {
		// A layout removes the volumes it does not name: the target's
		// must be in it, or every install would recreate them.
		for _, v := range []string{u.Volume, u.Spare} {
			if v == "" {
				continue
			}
			if _, ok := layout.Volume(v); !ok {
				return bad("volume %q is not in the ubi layout of %q", v, u.MTD)
			}
		}
	}
	return nil
}

// String names the board as bundles do: "name" or "name:revision".
func (p *Profile) String() string {
	if p.Revision == "" {
		return p.Name
	}
	return p.Name + ":" + p.Revision
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func mapValues(m map[string]string) []string {
	var vs []string
	for _, k := range sortedKeys(m) {
		vs = append(vs, m[k])
	}
	return vs
}
