package partitions

import (
	"fmt"
	"strings"
)

// Diff lists, for a person, how the table on the disk (have, from Read;
// nil for a disk without a table) differs from the wanted one (want, from
// Resolve). An empty list means the disk already holds the wanted layout
// and nothing needs writing. GUIDs that want leaves empty match any value,
// so a bundle that does not pin them does not cause a rewrite on every
// install; names are compared on GPT only, as an MBR stores none.
func Diff(want, have *Layout) []string {
	if have == nil {
		return []string{"the disk has none yet"}
	}
	d := append([]string(nil), have.Problems...)
	if want.Type != have.Type {
		return append(d, fmt.Sprintf("table type: %s on the disk, want %s", have.Type, want.Type))
	}
	if want.SectorSize != have.SectorSize || want.DiskSize != have.DiskSize {
		return append(d, fmt.Sprintf("geometry: table read as %d bytes in %d-byte sectors, want %d bytes in %d-byte sectors",
			have.DiskSize, have.SectorSize, want.DiskSize, want.SectorSize))
	}
	label := "disk GUID"
	if want.Type == "mbr" {
		label = "disk identifier"
	}
	if want.GUID != "" && !strings.EqualFold(want.GUID, have.GUID) {
		d = append(d, fmt.Sprintf("%s: %s on the disk, want %s", label, orNone(have.GUID), want.GUID))
	}
	onDisk := map[int]Partition{}
	for _, p := range have.Partitions {
		onDisk[p.Number] = p
	}
	wanted := map[int]bool{}
	for _, w := range want.Partitions {
		wanted[w.Number] = true
		id := fmt.Sprintf("partition %d %q", w.Number, w.Name)
		h, ok := onDisk[w.Number]
		if !ok {
			d = append(d, id+": missing on the disk")
			continue
		}
		field := func(what, disk, want string) {
			d = append(d, fmt.Sprintf("%s: %s %s on the disk, want %s", id, what, disk, want))
		}
		if want.Type == "gpt" && h.Name != w.Name {
			field("name", fmt.Sprintf("%q", h.Name), fmt.Sprintf("%q", w.Name))
		}
		if !strings.EqualFold(h.Type, w.Type) {
			field("type", typeName(want.Type, h.Type), typeName(want.Type, w.Type))
		}
		if w.GUID != "" && !strings.EqualFold(h.GUID, w.GUID) {
			field("GUID", orNone(h.GUID), w.GUID)
		}
		if h.Start != w.Start {
			field("start", exact(h.Start), exact(w.Start))
		}
		if h.Size != w.Size {
			field("size", exact(h.Size), exact(w.Size))
		}
		if want.Type == "gpt" && h.Attributes != w.Attributes {
			field("attributes", fmt.Sprintf("0x%x", h.Attributes), fmt.Sprintf("0x%x", w.Attributes))
		}
		if want.Type == "mbr" && h.Bootable != w.Bootable {
			field("bootable", fmt.Sprint(h.Bootable), fmt.Sprint(w.Bootable))
		}
	}
	for _, h := range have.Partitions {
		if !wanted[h.Number] {
			name := ""
			if h.Name != "" {
				name = fmt.Sprintf(" %q", h.Name)
			}
			d = append(d, fmt.Sprintf("partition %d%s: on the disk, not wanted", h.Number, name))
		}
	}
	return d
}

// exact writes a byte count, and its size in binary units when one
// divides it.
func exact(n int64) string {
	if h := humanSize(n); !strings.HasSuffix(h, " B") {
		return fmt.Sprintf("%d (%s)", n, h)
	}
	return fmt.Sprint(n)
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// adopt fills the GUIDs want leaves empty with those on the disk, where
// the disk's table is of the same kind and the partition has the same
// number and start: the disk keeps its identity when a table is rewritten
// or left alone.
func adopt(want, have *Layout) {
	if have == nil || have.Type != want.Type || have.SectorSize != want.SectorSize {
		return
	}
	if want.GUID == "" {
		want.GUID = have.GUID
	}
	used := map[string]bool{}
	for _, w := range want.Partitions {
		used[strings.ToLower(w.GUID)] = true
	}
	for i := range want.Partitions {
		w := &want.Partitions[i]
		if w.GUID != "" {
			continue
		}
		for _, h := range have.Partitions {
			if h.Number == w.Number && h.Start == w.Start && h.GUID != "" && !used[h.GUID] {
				w.GUID = h.GUID
				used[h.GUID] = true
			}
		}
	}
}
