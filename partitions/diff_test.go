package partitions

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/lifeboat-updater/lifeboat/bundle"
)

func TestDiff(t *testing.T) {
	resolve := func(table bundle.Table) *Layout {
		t.Helper()
		l, err := Resolve(&table, 128*mib, 512)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	const (
		diskGUID = "5d6e8f0a-1b2c-4d3e-8f40-516273849501"
		guidA    = "0a1b2c3d-4e5f-4061-8273-8495a6b7c8d9"
		guidB    = "1a1b2c3d-4e5f-4061-8273-8495a6b7c8d9"
	)
	// onDisk is a table as Read returns it: every GUID present.
	onDisk := func(edit func(*Layout)) *Layout {
		l := resolve(gptFixture)
		l.GUID = diskGUID
		for i := range l.Partitions {
			l.Partitions[i].GUID = randomGUID()
		}
		l.Partitions[1].GUID = guidA
		if edit != nil {
			edit(l)
		}
		return l
	}
	tests := []struct {
		name string
		want *Layout
		have *Layout
		diff []string
	}{
		{"same, unspecified GUIDs ignored", resolve(gptFixture), onDisk(nil), nil},
		{"disk GUID pinned and equal", func() *Layout {
			l := resolve(gptFixture)
			l.GUID = "5D6E8F0A-1B2C-4D3E-8F40-516273849501"
			return l
		}(), onDisk(nil), nil},
		{"disk GUID pinned and different", func() *Layout {
			l := resolve(gptFixture)
			l.GUID = guidB
			return l
		}(), onDisk(nil), []string{"disk GUID: " + diskGUID + " on the disk, want " + guidB}},
		{"partition GUID pinned and different", resolve(gptFixture), onDisk(func(l *Layout) { l.Partitions[1].GUID = guidB }),
			[]string{`partition 2 "rootA": GUID ` + guidB + " on the disk, want " + guidA}},
		{"name, type, attributes", resolve(gptFixture), onDisk(func(l *Layout) {
			l.Partitions[0].Name = "BOOT"
			l.Partitions[1].Type = typeHome
			l.Partitions[2].Attributes = 0
		}), []string{
			`partition 1 "boot": name "BOOT" on the disk, want "boot"`,
			`partition 2 "rootA": type linux-home on the disk, want linux`,
			`partition 3 "rootB": attributes 0x0 on the disk, want 0x8000000000000000`,
		}},
		{"missing and extra", resolve(gptFixture), onDisk(func(l *Layout) {
			l.Partitions[3].Number = 5
		}), []string{`partition 4 "data": missing on the disk`, `partition 5 "data": on the disk, not wanted`}},
		{"problems come first", resolve(gptFixture), onDisk(func(l *Layout) { l.Problems = []string{"the backup GPT header is missing or damaged"} }),
			[]string{"the backup GPT header is missing or damaged"}},
		{"table type", resolve(gptFixture), func() *Layout {
			l := resolve(mbrFixture)
			l.GUID = "deadbeef"
			return l
		}(), []string{"table type: mbr on the disk, want gpt"}},
		{"no table", resolve(gptFixture), nil, []string{"the disk has none yet"}},
		{"mbr ignores names, compares bootable", resolve(mbrFixture), func() *Layout {
			l := forRead(resolve(mbrFixture))
			l.GUID = "deadbeef"
			l.Partitions[0].Bootable = false
			return l
		}(), []string{`partition 1 "boot": bootable false on the disk, want true`}},
		{"mbr disk identifier pinned", func() *Layout {
			l := resolve(mbrFixture)
			l.GUID = "cafef00d"
			return l
		}(), func() *Layout {
			l := forRead(resolve(mbrFixture))
			l.GUID = ""
			return l
		}(), []string{"disk identifier: (none) on the disk, want cafef00d"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.diff, Diff(tt.want, tt.have)); diff != "" {
				t.Errorf("Diff() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestAdoptKeepsDiskGUIDs(t *testing.T) {
	want, err := Resolve(&gptFixture, 128*mib, 512)
	if err != nil {
		t.Fatal(err)
	}
	have := forRead(want)
	have.GUID = "5d6e8f0a-1b2c-4d3e-8f40-516273849501"
	have.Partitions = append([]Partition(nil), want.Partitions...)
	for i := range have.Partitions {
		if have.Partitions[i].GUID == "" {
			have.Partitions[i].GUID = randomGUID()
		}
	}
	have.Partitions[2].Start += mib // moved: gets a new GUID
	adopt(want, have)
	got := []string{want.GUID}
	for _, p := range want.Partitions {
		got = append(got, p.GUID)
	}
	wantGUIDs := []string{have.GUID, have.Partitions[0].GUID, "0a1b2c3d-4e5f-4061-8273-8495a6b7c8d9", "", have.Partitions[3].GUID}
	if diff := cmp.Diff(wantGUIDs, got); diff != "" {
		t.Errorf("adopt() GUIDs mismatch (-want +got):\n%s", diff)
	}
}
