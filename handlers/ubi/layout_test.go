package ubi

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const leb = 126976 // a 128 KiB PEB with 2 KiB pages

// fakeUBI is an in-memory Controller that keeps the kernel's rules that
// matter here: LEB accounting, unique names and IDs, renames that replace.
type fakeUBI struct {
	info  DeviceInfo
	vols  map[int]*Volume
	data  map[int][]byte
	calls []string
	fail  map[string]error // by call name
}

func newFake(lebs int, vols ...Volume) *fakeUBI {
	f := &fakeUBI{info: DeviceInfo{LEBSize: leb, TotalLEBs: lebs, FreeLEBs: lebs}, vols: map[int]*Volume{}, data: map[int][]byte{}}
	for _, v := range vols {
		v.LEBSize = leb
		if v.Type == 0 {
			v.Type = Dynamic
		}
		if v.Alignment == 0 {
			v.Alignment = 1
		}
		f.vols[v.ID] = &v
		f.info.FreeLEBs -= v.LEBs
	}
	return f
}

func (f *fakeUBI) call(s string, args ...any) error {
	f.calls = append(f.calls, fmt.Sprintf(s, args...))
	return f.fail[strings.Fields(s)[0]]
}

func (f *fakeUBI) Info() (DeviceInfo, error) { return f.info, nil }

func (f *fakeUBI) Volumes() ([]Volume, error) {
	var vs []Volume
	for _, v := range f.vols {
		vs = append(vs, *v)
	}
	slices.SortFunc(vs, func(a, b Volume) int { return a.ID - b.ID })
	return vs, nil
}

func (f *fakeUBI) byName(name string) *Volume {
	for _, v := range f.vols {
		if v.Name == name {
			return v
		}
	}
	return nil
}

func (f *fakeUBI) MakeVolume(s VolumeSpec) (int, error) {
	if err := f.call("mkvol %q id=%d size=%d %s", s.Name, s.ID, s.Size, s.Type.norm()); err != nil {
		return 0, err
	}
	if f.byName(s.Name) != nil {
		return 0, errors.New("EEXIST name")
	}
	id := s.ID
	if id == AutoID {
		for id = 0; f.vols[id] != nil; id++ {
		}
	} else if f.vols[id] != nil {
		return 0, errors.New("EEXIST id")
	}
	n := lebs(s.Size, leb)
	if n > f.info.FreeLEBs {
		return 0, ErrNoSpace
	}
	f.info.FreeLEBs -= n
	f.vols[id] = &Volume{ID: id, Name: s.Name, Type: s.Type.norm(), LEBs: n, LEBSize: leb, Alignment: 1}
	return id, nil
}

func (f *fakeUBI) RemoveVolume(id int) error {
	if err := f.call("rmvol %d", id); err != nil {
		return err
	}
	v := f.vols[id]
	if v == nil {
		return errors.New("ENODEV")
	}
	f.info.FreeLEBs += v.LEBs
	delete(f.vols, id)
	delete(f.data, id)
	return nil
}

func (f *fakeUBI) ResizeVolume(id int, size int64) error {
	if err := f.call("rsvol %d size=%d", id, size); err != nil {
		return err
	}
	v := f.vols[id]
	n := lebs(size, leb)
	if n-v.LEBs > f.info.FreeLEBs {
		return ErrNoSpace
	}
	f.info.FreeLEBs -= n - v.LEBs
	v.LEBs = n
	return nil
}

func (f *fakeUBI) RenameVolumes(rs []Rename) error {
	if err := f.call("rnvol %v", rs); err != nil {
		return err
	}
	renamed := map[int]bool{}
	for _, r := range rs {
		renamed[r.ID] = true
	}
	for _, r := range rs {
		if v := f.byName(r.Name); v != nil && !renamed[v.ID] {
			f.info.FreeLEBs += v.LEBs
			delete(f.vols, v.ID)
		}
	}
	for _, r := range rs {
		f.vols[r.ID].Name = r.Name
	}
	return nil
}

// StartUpdate marks the volume as being updated, as the kernel does,
// until the last byte arrives.
func (f *fakeUBI) StartUpdate(id int, size int64) (io.WriteCloser, error) {
	if err := f.call("volup %d size=%d", id, size); err != nil {
		return nil, err
	}
	f.vols[id].Corrupted = size > 0
	f.data[id] = nil
	return &fakeUpdate{f: f, id: id, size: size}, nil
}

func (f *fakeUBI) OpenVolume(id int) (VolumeReader, error) {
	return nopCloser{bytes.NewReader(f.data[id])}, nil
}

type nopCloser struct{ *bytes.Reader }

func (nopCloser) Close() error { return nil }

type fakeUpdate struct {
	f    *fakeUBI
	id   int
	size int64
}

// Write takes no more than the update announced, as the kernel does.
func (u *fakeUpdate) Write(p []byte) (int, error) {
	k := min(int64(len(p)), u.size-int64(len(u.f.data[u.id])))
	u.f.data[u.id] = append(u.f.data[u.id], p[:k]...)
	u.f.vols[u.id].Corrupted = int64(len(u.f.data[u.id])) < u.size
	return int(k), nil
}

func (u *fakeUpdate) Close() error { return nil }

func TestDiff(t *testing.T) {
	have := []Volume{
		{ID: 0, Name: "kernel", LEBs: 40, Type: Static},
		{ID: 1, Name: "rootfs", LEBs: 400},
		{ID: 2, Name: "data", LEBs: 100},
		{ID: 3, Name: "old", LEBs: 10},
	}
	tests := []struct {
		name string
		want []VolumeSpec
		ops  []Op
		err  error
	}{
		{
			name: "same layout: nothing",
			want: []VolumeSpec{
				{Name: "kernel", ID: 0, Size: 40 * leb, Type: Static},
				{Name: "rootfs", ID: 1, Size: 400*leb - 100}, // rounds up to the same LEBs
				{Name: "data", ID: 2, Size: 100 * leb},
				{Name: "old", ID: 3, Size: 10 * leb},
			},
		},
		{
			name: "remove, shrink, grow, create",
			want: []VolumeSpec{
				{Name: "kernel", ID: 0, Size: 40 * leb, Type: Static},
				{Name: "rootfs", ID: 1, Size: 300 * leb},
				{Name: "data", ID: 2, Size: 150 * leb},
				{Name: "logs", ID: AutoID, Size: 20 * leb},
			},
			ops: []Op{
				{Kind: OpRemove, ID: 3, Name: "old"},
				{Kind: OpShrink, ID: 1, Name: "rootfs", Size: 300 * leb},
				{Kind: OpGrow, ID: 2, Name: "data", Size: 150 * leb},
				{Kind: OpCreate, ID: AutoID, Name: "logs", Spec: VolumeSpec{Name: "logs", ID: AutoID, Size: 20 * leb, Type: Dynamic}},
			},
		},
		{
			name: "rename by ID keeps the content",
			want: []VolumeSpec{
				{Name: "kernel", ID: 0, Size: 40 * leb, Type: Static},
				{Name: "rootfs", ID: 1, Size: 400 * leb},
				{Name: "data", ID: 2, Size: 100 * leb},
				{Name: "spare", ID: 3, Size: 10 * leb},
			},
			ops: []Op{{Kind: OpRename, ID: 3, Name: "spare"}},
		},
		{
			name: "type change recreates",
			want: []VolumeSpec{
				{Name: "kernel", ID: 0, Size: 40 * leb},
				{Name: "rootfs", ID: 1, Size: 400 * leb},
				{Name: "data", ID: 2, Size: 100 * leb},
			},
			ops: []Op{
				{Kind: OpRemove, ID: 0, Name: "kernel"},
				{Kind: OpRemove, ID: 3, Name: "old"},
				{Kind: OpCreate, ID: 0, Name: "kernel", Spec: VolumeSpec{Name: "kernel", ID: 0, Size: 40 * leb, Type: Dynamic}},
			},
		},
		{
			name: "too big for the free LEBs",
			want: []VolumeSpec{{Name: "rootfs", ID: 1, Size: 1001 * leb}}, // 1000 fit once the rest is removed
			err:  ErrNoSpace,
		},
		{
			name: "duplicate name",
			want: []VolumeSpec{{Name: "a", ID: 1}, {Name: "a", ID: 2}},
			err:  ErrLayout,
		},
		{
			name: "duplicate ID",
			want: []VolumeSpec{{Name: "a", ID: 1}, {Name: "b", ID: 1}},
			err:  ErrLayout,
		},
		{
			name: "ID held by a volume that stays",
			want: []VolumeSpec{{Name: "rootfs", ID: AutoID, Size: 400 * leb}, {Name: "new", ID: 1}},
			err:  ErrLayout,
		},
		{
			name: "name too long",
			want: []VolumeSpec{{Name: strings.Repeat("x", 128), ID: 1}},
			err:  ErrLayout,
		},
	}
	info := DeviceInfo{LEBSize: leb, TotalLEBs: 1000, FreeLEBs: 1000 - 550}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ops, err := Diff(info, have, tt.want)
			if !errors.Is(err, tt.err) {
				t.Fatalf("Diff() = %v, want %v", err, tt.err)
			}
			if d := cmp.Diff(tt.ops, ops); d != "" {
				t.Errorf("Diff() (-want +got):\n%s", d)
			}
		})
	}
}

// TestApplyLayout runs a diff on the fake device, and again: the second
// run changes nothing.
func TestApplyLayout(t *testing.T) {
	f := newFake(1000,
		Volume{ID: 0, Name: "rootfs", LEBs: 400},
		Volume{ID: 1, Name: "tmp", LEBs: 500},
		Volume{ID: 2, Name: "cfg", LEBs: 10},
	)
	f.data[2] = []byte("keep me")
	want := []VolumeSpec{
		{Name: "rootfs", ID: 0, Size: 300 * leb},
		{Name: "config", ID: 2, Size: 10 * leb},
		{Name: "data", ID: 5, Size: 600 * leb},
	}
	ops, err := ApplyLayout(f, want)
	if err != nil {
		t.Fatalf("ApplyLayout() = %v", err)
	}
	wantCalls := []string{
		"rmvol 1",
		`rnvol [{2 config}]`,
		"rsvol 0 size=38092800",
		`mkvol "data" id=5 size=76185600 dynamic`,
	}
	if d := cmp.Diff(wantCalls, f.calls); d != "" {
		t.Errorf("calls (-want +got):\n%s\nops: %v", d, ops)
	}
	if string(f.data[2]) != "keep me" {
		t.Error("the renamed volume lost its content")
	}
	f.calls = nil
	ops, err = ApplyLayout(f, want)
	if err != nil || len(ops) != 0 || len(f.calls) != 0 {
		t.Errorf("second ApplyLayout() = %v, %v with calls %v, want no change", ops, err, f.calls)
	}
}

func TestSwapUpdate(t *testing.T) {
	img := bytes.Repeat([]byte("new rootfs "), 50000) // 550000 bytes: 5 LEBs
	t.Run("spare created, then reused", func(t *testing.T) {
		f := newFake(100, Volume{ID: 0, Name: "rootfs", LEBs: 8})
		f.data[0] = []byte("old")
		if err := SwapUpdate(f, "rootfs", "rootfs-spare", int64(len(img)), bytes.NewReader(img)); err != nil {
			t.Fatalf("SwapUpdate() = %v", err)
		}
		want := []string{
			fmt.Sprintf(`mkvol "rootfs-spare" id=-1 size=%d dynamic`, 8*leb),
			fmt.Sprintf("volup 1 size=%d", len(img)),
			"rnvol [{1 rootfs} {0 rootfs-spare}]",
		}
		if d := cmp.Diff(want, f.calls); d != "" {
			t.Errorf("calls (-want +got):\n%s", d)
		}
		if v := f.byName("rootfs"); v == nil || !bytes.Equal(f.data[v.ID], img) {
			t.Error("rootfs does not hold the new image")
		}
		if v := f.byName("rootfs-spare"); v == nil || string(f.data[v.ID]) != "old" {
			t.Error("rootfs-spare does not hold the old image")
		}
		// The next update writes the spare, now the old volume 0.
		f.calls = nil
		if err := SwapUpdate(f, "rootfs", "rootfs-spare", 3, strings.NewReader("v3!")); err != nil {
			t.Fatalf("second SwapUpdate() = %v", err)
		}
		want = []string{"volup 0 size=3", "rnvol [{0 rootfs} {1 rootfs-spare}]"}
		if d := cmp.Diff(want, f.calls); d != "" {
			t.Errorf("second calls (-want +got):\n%s", d)
		}
	})
	t.Run("short stream leaves active alone", func(t *testing.T) {
		f := newFake(100, Volume{ID: 0, Name: "rootfs", LEBs: 8}, Volume{ID: 1, Name: "rootfs-spare", LEBs: 2})
		f.data[0] = []byte("old")
		err := SwapUpdate(f, "rootfs", "rootfs-spare", int64(len(img)), bytes.NewReader(img[:1000]))
		if !errors.Is(err, ErrShortUpdate) {
			t.Fatalf("SwapUpdate() = %v, want %v", err, ErrShortUpdate)
		}
		want := []string{fmt.Sprintf("rsvol 1 size=%d", len(img)), fmt.Sprintf("volup 1 size=%d", len(img))}
		if d := cmp.Diff(want, f.calls); d != "" {
			t.Errorf("calls (-want +got):\n%s", d)
		}
		if v := f.byName("rootfs"); v.ID != 0 || string(f.data[0]) != "old" {
			t.Error("rootfs changed")
		}
	})
	t.Run("no active volume yet", func(t *testing.T) {
		f := newFake(100)
		if err := SwapUpdate(f, "rootfs", "rootfs-spare", 3, strings.NewReader("new")); err != nil {
			t.Fatalf("SwapUpdate() = %v", err)
		}
		want := []string{`mkvol "rootfs-spare" id=-1 size=3 dynamic`, "volup 0 size=3", "rnvol [{0 rootfs}]"}
		if d := cmp.Diff(want, f.calls); d != "" {
			t.Errorf("calls (-want +got):\n%s", d)
		}
	})
}
