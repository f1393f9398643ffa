package ubi

import (
	"fmt"
	"slices"
)

// OpKind is what an Op does.
type OpKind int

// Kinds of Op, in the order Diff puts them: removals and shrinks free
// eraseblocks before growths and creations need them.
const (
	OpRemove OpKind = iota
	OpRename
	OpShrink
	OpGrow
	OpCreate
)

var opNames = [...]string{"remove", "rename", "shrink", "grow", "create"}

func (k OpKind) String() string { return opNames[k] }

// Op is one change to a UBI device's volumes.
type Op struct {
	Kind OpKind
	ID   int        // the volume changed (not for OpCreate with AutoID)
	Name string     // its name (the new one for OpRename)
	Size int64      // bytes, for OpShrink, OpGrow
	Spec VolumeSpec // for OpCreate
}

func (o Op) String() string {
	switch o.Kind {
	case OpRemove:
		return fmt.Sprintf("remove volume %d %q", o.ID, o.Name)
	case OpRename:
		return fmt.Sprintf("rename volume %d to %q", o.ID, o.Name)
	case OpShrink, OpGrow:
		return fmt.Sprintf("%s volume %d %q to %d bytes", o.Kind, o.ID, o.Name, o.Size)
	case OpCreate:
		id := "auto"
		if o.Spec.ID != AutoID {
			id = fmt.Sprint(o.Spec.ID)
		}
		return fmt.Sprintf("create %s volume %s %q of %d bytes", o.Spec.Type.norm(), id, o.Spec.Name, o.Spec.Size)
	}
	return fmt.Sprintf("op(%d)", int(o.Kind))
}

func usable(lebSize int64, align int) int64 {
	if align <= 1 {
		return lebSize
	}
	return lebSize - lebSize%int64(align)
}

// Diff returns the changes that bring the volumes have of the device info
// describes to the layout want, and nothing that is already right: a
// volume with the wanted name, type and size in LEBs is left alone with
// its content. Volumes the layout does not name are removed. It fails with
// ErrLayout or ErrNoSpace before anything is changed.
func Diff(info DeviceInfo, have []Volume, want []VolumeSpec) ([]Op, error) {
	names := map[string]bool{}
	ids := map[int]bool{}
	for _, w := range want {
		switch {
		case w.Name == "" || len(w.Name) > MaxVolumeName:
			return nil, fmt.Errorf("%w: volume name %q (1 to %d bytes)", ErrLayout, w.Name, MaxVolumeName)
		case names[w.Name]:
			return nil, fmt.Errorf("%w: two volumes named %q", ErrLayout, w.Name)
		case w.ID != AutoID && ids[w.ID]:
			return nil, fmt.Errorf("%w: two volumes with ID %d", ErrLayout, w.ID)
		case w.ID < AutoID:
			return nil, fmt.Errorf("%w: volume %q has ID %d", ErrLayout, w.Name, w.ID)
		}
		names[w.Name] = true
		if w.ID != AutoID {
			ids[w.ID] = true
		}
	}
	byName := map[string]Volume{}
	byID := map[int]Volume{}
	for _, v := range have {
		byName[v.Name] = v
		byID[v.ID] = v
	}

	var removes, renames, shrinks, grows, creates []Op
	kept := map[int]bool{}
	free := info.FreeLEBs
	for _, w := range want {
		v, ok := byName[w.Name]
		if !ok && w.ID != AutoID {
			if old, found := byID[w.ID]; found && !names[old.Name] {
				v, ok = old, true
				renames = append(renames, Op{Kind: OpRename, ID: v.ID, Name: w.Name})
			}
		}
		if ok && v.Type.norm() == w.Type.norm() && max(v.Alignment, 1) == max(w.Alignment, 1) {
			kept[v.ID] = true
			need := lebs(w.Size, usable(info.LEBSize, w.Alignment))
			switch {
			case need < v.LEBs:
				shrinks = append(shrinks, Op{Kind: OpShrink, ID: v.ID, Name: w.Name, Size: w.Size})
				free += v.LEBs - need
			case need > v.LEBs:
				grows = append(grows, Op{Kind: OpGrow, ID: v.ID, Name: w.Name, Size: w.Size})
				free -= need - v.LEBs
			}
			continue
		}
		if ok && len(renames) > 0 && renames[len(renames)-1].ID == v.ID {
			renames = renames[:len(renames)-1] // recreated instead
		}
		spec := w
		spec.Type = w.Type.norm()
		creates = append(creates, Op{Kind: OpCreate, ID: w.ID, Name: w.Name, Spec: spec})
		free -= lebs(w.Size, usable(info.LEBSize, w.Alignment))
	}
	for _, v := range have {
		if !kept[v.ID] {
			removes = append(removes, Op{Kind: OpRemove, ID: v.ID, Name: v.Name})
			free += v.LEBs
		}
	}
	for _, c := range creates {
		if c.ID != AutoID && kept[c.ID] {
			return nil, fmt.Errorf("%w: volume %q wants ID %d, which volume %q keeps", ErrLayout, c.Name, c.ID, byID[c.ID].Name)
		}
	}
	if free < 0 {
		return nil, fmt.Errorf("%w: the layout needs %d more eraseblocks than %s has", ErrNoSpace, -free, devName(info))
	}
	return slices.Concat(removes, renames, shrinks, grows, creates), nil
}

func devName(info DeviceInfo) string { return fmt.Sprintf("ubi%d", info.Num) }

// Apply makes the changes ops list, in order; the renames go in one
// atomic call.
func Apply(c Controller, ops []Op) error {
	var renames []Rename
	for _, o := range ops {
		if o.Kind == OpRename {
			renames = append(renames, Rename{ID: o.ID, Name: o.Name})
		}
	}
	renamed := false
	for _, o := range ops {
		var err error
		switch o.Kind {
		case OpRemove:
			err = c.RemoveVolume(o.ID)
		case OpRename:
			if !renamed {
				err = renameAll(c, renames)
				renamed = true
			}
		case OpShrink, OpGrow:
			err = c.ResizeVolume(o.ID, o.Size)
		case OpCreate:
			_, err = c.MakeVolume(o.Spec)
		}
		if err != nil {
			return fmt.Errorf("ubi: %v: %w", o, err)
		}
	}
	return nil
}

func renameAll(c Controller, r []Rename) error {
	if len(r) > MaxRenames {
		return fmt.Errorf("%w: %d renames, at most %d at once", ErrLayout, len(r), MaxRenames)
	}
	return c.RenameVolumes(r)
}

// ApplyLayout brings c's volumes to want (see Diff) and returns what it
// changed.
func ApplyLayout(c Controller, want []VolumeSpec) ([]Op, error) {
	info, err := c.Info()
	if err != nil {
		return nil, err
	}
	have, err := c.Volumes()
	if err != nil {
		return nil, err
	}
	ops, err := Diff(info, have, want)
	if err != nil {
		return nil, err
	}
	return ops, Apply(c, ops)
}

// FindVolume returns the volume called name.
func FindVolume(c Controller, name string) (Volume, error) {
	vols, err := c.Volumes()
	if err != nil {
		return Volume{}, err
	}
	for _, v := range vols {
		if v.Name == name {
			return v, nil
		}
	}
	return Volume{}, fmt.Errorf("%w: no volume named %q", ErrNotFound, name)
}
