package install

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/lifeboat-updater/lifeboat/boards"
	"github.com/lifeboat-updater/lifeboat/bundle"
	"github.com/lifeboat-updater/lifeboat/exitcode"
	"github.com/lifeboat-updater/lifeboat/handlers/flash"
	"github.com/lifeboat-updater/lifeboat/handlers/mtd"
	"github.com/lifeboat-updater/lifeboat/handlers/mtd/mtdtest"
	"github.com/lifeboat-updater/lifeboat/handlers/ubi"
	"github.com/lifeboat-updater/lifeboat/handlers/ubi/ubitest"
	"github.com/lifeboat-updater/lifeboat/install/installtest"
)

// Simulated NAND: 128 KiB erase blocks (two 64 KiB chunks each), 2 KiB
// pages.
const (
	nandES   = 128 << 10
	nandPage = 2048
	lebSize  = nandES - 2*nandPage
)

// simFlash is a Flash of simulated MTD devices, by name, and the UBI
// devices attached to them.
type simFlash struct {
	mtds     map[string]*mtdtest.Flash
	attached map[string]*ubitest.Device
	// attach is what AttachUBI attaches, by MTD name.
	attach   map[string]*ubitest.Device
	attaches []string
	detaches []string
}

func newSimFlash() *simFlash {
	return &simFlash{mtds: map[string]*mtdtest.Flash{}, attached: map[string]*ubitest.Device{}, attach: map[string]*ubitest.Device{}}
}

type simMTD struct {
	*mtdtest.Flash
	name string
}

func (simMTD) Close() error { return nil }

type simUBI struct {
	*ubitest.Device
	mtd string
}

func (simUBI) Close() error     { return nil }
func (u simUBI) String() string { return "sim-ubi(" + u.mtd + ")" }

func (s *simFlash) OpenMTD(name string, write bool) (flash.MTD, error) {
	f, ok := s.mtds[name]
	if !ok {
		return nil, fmt.Errorf("%w: %q", mtd.ErrNotFound, name)
	}
	if write && !f.Info().Writable() {
		return nil, fmt.Errorf("%w: %q", mtd.ErrReadOnly, name)
	}
	return simMTD{f, name}, nil
}

func (s *simFlash) AttachedUBI(m flash.MTD) (flash.UBI, error) {
	name := m.(simMTD).name
	if u, ok := s.attached[name]; ok {
		return simUBI{u, name}, nil
	}
	return nil, nil
}

func (s *simFlash) AttachUBI(m flash.MTD) (flash.UBI, error) {
	name := m.(simMTD).name
	u, ok := s.attach[name]
	if !ok {
		return nil, fmt.Errorf("attach %s: EINVAL", name)
	}
	s.attached[name] = u
	s.attaches = append(s.attaches, name)
	return simUBI{u, name}, nil
}

func (s *simFlash) DetachUBI(u flash.UBI) error {
	name := u.(simUBI).mtd
	delete(s.attached, name)
	s.detaches = append(s.detaches, name)
	return nil
}

// nandFlash returns a Flash of one simulated NAND of 16 erase blocks,
// called name, with the blocks bad marked bad.
func nandFlash(name string, bad ...int64) (*simFlash, *mtdtest.Flash) {
	fl := newSimFlash()
	nand := mtdtest.NewNAND(16, nandES, nandPage)
	for _, b := range bad {
		nand.Bad[b] = true
	}
	fl.mtds[name] = nand
	return fl, nand
}

func flashBoard(targets map[string]boards.TargetSpec, layouts map[string]boards.UBIDevice) *boards.Profile {
	return &boards.Profile{Name: installtest.Board, Storage: map[string]boards.Storage{}, Targets: targets, UBI: layouts}
}

// logical reads the good blocks of f in order, as the MTD Writer lays an
// image out.
func logical(f *mtdtest.Flash) []byte {
	var out []byte
	b := f.Bytes()
	for blk := int64(0); blk*nandES < int64(len(b)); blk++ {
		if bad, _ := f.IsBad(blk * nandES); !bad {
			out = append(out, b[blk*nandES:(blk+1)*nandES]...)
		}
	}
	return out
}

func flashInstall(t *testing.T, br *bundle.Reader, p *boards.Profile, fl flash.Flash, cfg Config) (*Result, []Event, error) {
	t.Helper()
	var events []Event
	cfg.Board, cfg.Flash = p, fl
	cfg.Observer = func(e Event) { events = append(events, e) }
	plan, err := NewPlan(br, cfg)
	if err != nil {
		return nil, events, err
	}
	res, err := plan.Execute(context.Background())
	return res, events, err
}

// TestFlashMTD installs an image to simulated NAND with bad blocks
// through the engine, then again (every block unchanged), then checks
// Verify.
func TestFlashMTD(t *testing.T) {
	k := installtest.NewKey(t)
	const size = 21*cs + 1000 // 11 erase blocks, the last one partial
	data := installtest.Data(11, size, cs)
	m := installtest.Manifest(bundle.Step{Type: bundle.StepImage, Target: "rootfs", Image: "rootfs"})
	b := installtest.Bundle(t, k, m, cs, installtest.Image{Name: "rootfs", Data: data})
	p := flashBoard(map[string]boards.TargetSpec{"rootfs": {MTD: "rootfs-nand", MaxBad: 4}}, nil)

	for _, stream := range []bool{false, true} {
		t.Run(fmt.Sprintf("stream=%v", stream), func(t *testing.T) {
			fl := newSimFlash()
			nand := mtdtest.NewNAND(32, nandES, nandPage)
			nand.Bad[1], nand.Bad[4] = true, true
			fl.mtds["rootfs-nand"] = nand

			res, events, err := flashInstall(t, open(t, b, k, stream), p, fl, Config{})
			if err != nil {
				t.Fatal(err)
			}
			got := logical(nand)
			if !bytes.Equal(got[:size], data) {
				t.Fatal("the good blocks do not hold the image (zero chunks must be written as zeros)")
			}
			if !bytes.Equal(got[size:11*nandES], bytes.Repeat([]byte{0xFF}, 11*nandES-size)) {
				t.Error("the last block is not padded with 0xFF")
			}
			if nand.Erases[1] != 0 || nand.Erases[4] != 0 || nand.TotalErases() != 11 {
				t.Errorf("erases %v, want one each of the 11 good blocks used, none of the bad ones", nand.Erases)
			}
			st := res.Steps[0]
			if st.WrittenBytes != size || st.SkippedBytes != 0 || !st.Verified || st.Note != "11 erase blocks written, 0 unchanged, 2 bad passed over, 0 marked bad" {
				t.Errorf("first install: %+v", st)
			}
			plan := events[0].Plan
			if plan == nil || plan.Steps[0].Kind != "mtd" || plan.Steps[0].EraseSize != nandES || plan.Steps[0].Size != 32*nandES {
				t.Errorf("plan event = %+v, want an mtd step of 32 blocks of %d bytes", plan, nandES)
			}

			// Again: every block holds its data already.
			before := nand.TotalErases()
			res, _, err = flashInstall(t, open(t, b, k, stream), p, fl, Config{})
			if err != nil {
				t.Fatal(err)
			}
			if st := res.Steps[0]; st.SkippedBytes != size || st.WrittenBytes != 0 || nand.TotalErases() != before {
				t.Errorf("second install: %+v, %d erases (was %d), want every block unchanged", st, nand.TotalErases(), before)
			}

			// --no-skip rewrites every block.
			res, _, err = flashInstall(t, open(t, b, k, stream), p, fl, Config{NoSkip: true})
			if err != nil {
				t.Fatal(err)
			}
			if nand.TotalErases() != before+11 {
				t.Errorf("install with NoSkip: %d erases, want %d", nand.TotalErases(), before+11)
			}

			// Verify compares the good blocks; then one byte is changed.
			vcfg := Config{Board: p, Flash: fl, ReadOnly: true}
			vp, err := NewPlan(open(t, b, k, false), vcfg)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := vp.Verify(context.Background()); err != nil {
				t.Errorf("Verify() = %v, want a match", err)
			}
			nand.Bytes()[5*nandES+100] ^= 1 // logical block 3: chunks 6 and 7
			vp, _ = NewPlan(open(t, b, k, false), vcfg)
			vr, err := vp.Verify(context.Background())
			if !errors.Is(err, ErrDiffers) || vr.Differs != 1 || vr.Differences[0].Chunk != 6 {
				t.Errorf("Verify() = %+v, %v, want chunk 6 to differ", vr, err)
			}
		})
	}
}

// TestFlashMTDOffset installs an image (zero chunks among its chunks) at
// an offset of raw NAND: it starts in the good block at the offset, passes
// over a bad one, and leaves the blocks before the offset alone.
func TestFlashMTDOffset(t *testing.T) {
	k := installtest.NewKey(t)
	const size = 7*cs + 500 // 4 erase blocks, the last one partial
	data := installtest.Data(17, size, cs)
	m := installtest.Manifest(bundle.Step{Type: bundle.StepImage, Target: "rootfs", Image: "rootfs", Offset: 2 * nandES})
	b := installtest.Bundle(t, k, m, cs, installtest.Image{Name: "rootfs", Data: data})
	p := flashBoard(map[string]boards.TargetSpec{"rootfs": {MTD: "n"}}, nil)
	for _, stream := range []bool{false, true} {
		t.Run(fmt.Sprintf("stream=%v", stream), func(t *testing.T) {
			fl, nand := nandFlash("n", 3)
			if _, _, err := flashInstall(t, open(t, b, k, stream), p, fl, Config{}); err != nil {
				t.Fatal(err)
			}
			got := logical(nand) // blocks 0, 1, 2, 4, ...
			if !bytes.Equal(got[2*nandES:2*nandES+size], data) {
				t.Error("the good blocks from the offset on do not hold the image")
			}
			if nand.Erases[0] != 0 || nand.Erases[1] != 0 || nand.Erases[3] != 0 || nand.TotalErases() != 4 {
				t.Errorf("erases %v, want one each of blocks 2, 4, 5 and 6", nand.Erases)
			}
		})
	}
}

// TestFlashMTDBadChunk: a chunk that fails its check leaves nothing
// written from its erase block on, even the verified chunk before it in
// the same block.
func TestFlashMTDBadChunk(t *testing.T) {
	k := installtest.NewKey(t)
	const size = 12 * cs
	data := installtest.Data(12, size, cs)
	m := installtest.Manifest(bundle.Step{Type: bundle.StepImage, Target: "rootfs", Image: "rootfs"})
	good := installtest.Bundle(t, k, m, cs, installtest.Image{Name: "rootfs", Data: data})
	b := corrupt(t, good, k, "rootfs", 5) // the second half of block 2
	p := flashBoard(map[string]boards.TargetSpec{"rootfs": {MTD: "mtd3"}}, nil)
	for _, stream := range []bool{false, true} {
		t.Run(fmt.Sprintf("stream=%v", stream), func(t *testing.T) {
			fl, nand := nandFlash("mtd3", 0)
			_, _, err := flashInstall(t, open(t, b, k, stream), p, fl, Config{})
			var ce *ChunkError
			if !errors.As(err, &ce) || !errors.Is(err, bundle.ErrChecksum) || ce.Chunk != 5 || ce.Offset != 5*cs {
				t.Fatalf("install = %v, want a ChunkError for chunk 5 at %d wrapping ErrChecksum", err, 5*cs)
			}
			if ExitCode(err) != exitcode.Corrupt {
				t.Errorf("ExitCode(%v) = %d, want %d", err, ExitCode(err), exitcode.Corrupt)
			}
			got := logical(nand)
			if !bytes.Equal(got[:2*nandES], data[:2*nandES]) {
				t.Error("the blocks before the bad chunk's are not written")
			}
			if !bytes.Equal(got[2*nandES:], bytes.Repeat([]byte{0xFF}, len(got)-2*nandES)) {
				t.Error("flash changed from the bad chunk's block on")
			}
			if nand.TotalErases() != 2 {
				t.Errorf("%d erases, want 2", nand.TotalErases())
			}
		})
	}
}

func TestFlashPlanChecks(t *testing.T) {
	k := installtest.NewKey(t)
	data := installtest.Data(13, 6*nandES, cs)
	img := func(offset uint64) []byte {
		m := installtest.Manifest(bundle.Step{Type: bundle.StepImage, Target: "rootfs", Image: "rootfs", Offset: offset})
		return installtest.Bundle(t, k, m, cs, installtest.Image{Name: "rootfs", Data: data})
	}
	wipe := installtest.Bundle(t, k, installtest.Manifest(bundle.Step{Type: bundle.StepWipe, Target: "rootfs"}), cs)
	tests := []struct {
		name   string
		bundle []byte
		spec   boards.TargetSpec
		setup  func(*simFlash, *mtdtest.Flash)
		want   error
		code   int
	}{
		{"fits", img(0), boards.TargetSpec{MTD: "n"}, nil, nil, exitcode.OK},
		{"fits at an offset", img(nandES), boards.TargetSpec{MTD: "n"}, nil, nil, exitcode.OK},
		{"too big", img(3 * nandES), boards.TargetSpec{MTD: "n"}, nil, ErrTargetTooSmall, exitcode.TooSmall},
		{"bad blocks leave too little", img(0), boards.TargetSpec{MTD: "n"}, func(_ *simFlash, f *mtdtest.Flash) { f.Bad[2], f.Bad[5], f.Bad[6] = true, true, true }, ErrTargetTooSmall, exitcode.TooSmall},
		{"over the bad-block budget", img(0), boards.TargetSpec{MTD: "n", MaxBad: 1}, func(_ *simFlash, f *mtdtest.Flash) { f.Bad[2], f.Bad[3] = true, true }, ErrTargetTooSmall, exitcode.TooSmall},
		{"unaligned offset", img(4096), boards.TargetSpec{MTD: "n"}, nil, ErrIncompatible, exitcode.Incompatible},
		{"read-only", img(0), boards.TargetSpec{MTD: "n"}, func(_ *simFlash, f *mtdtest.Flash) { f.SetReadOnly(true) }, ErrTargetIO, exitcode.TargetIO},
		{"missing", img(0), boards.TargetSpec{MTD: "nope"}, nil, ErrTargetMissing, exitcode.NoTarget},
		{"attached to UBI", img(0), boards.TargetSpec{MTD: "n"}, func(s *simFlash, _ *mtdtest.Flash) { s.attached["n"] = ubitest.New(60, lebSize) }, ErrTargetIO, exitcode.TargetIO},
		{"wipe step", wipe, boards.TargetSpec{MTD: "n"}, nil, ErrTargetMissing, exitcode.NoTarget},
		{"UBI image fits", img(0), boards.TargetSpec{UBIImage: "n"}, nil, nil, exitcode.OK},
		{"UBI image too big", img(0), boards.TargetSpec{UBIImage: "small"}, nil, ErrTargetTooSmall, exitcode.TooSmall},
		{"UBI volume too small", img(0), boards.TargetSpec{UBI: &boards.UBITarget{MTD: "n", Volume: "tiny"}}, nil, ErrTargetTooSmall, exitcode.TooSmall},
		{"UBI volume at an offset", img(nandES), boards.TargetSpec{UBI: &boards.UBITarget{MTD: "n", Volume: "rootfs"}}, nil, ErrIncompatible, exitcode.Incompatible},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fl := newSimFlash()
			nand := mtdtest.NewNAND(8, nandES, nandPage)
			fl.mtds["n"] = nand
			fl.mtds["small"] = mtdtest.NewNAND(4, nandES, nandPage)
			if tt.setup != nil {
				tt.setup(fl, nand)
			}
			p := flashBoard(map[string]boards.TargetSpec{"rootfs": tt.spec}, map[string]boards.UBIDevice{
				"n": {Volumes: []boards.UBIVolume{{Name: "tiny", Size: 512 << 10}, {Name: "rootfs", Size: 8 << 20}}},
			})
			_, err := NewPlan(open(t, tt.bundle, k, false), Config{Board: p, Flash: fl})
			if tt.want == nil && err != nil {
				t.Fatalf("NewPlan() = %v, want success", err)
			}
			if !errors.Is(err, tt.want) || ExitCode(err) != tt.code {
				t.Errorf("NewPlan() = %v (exit %d), want %v (exit %d)", err, ExitCode(err), tt.want, tt.code)
			}
			if nand.TotalErases() != 0 || nand.Programs != 0 {
				t.Error("planning wrote to the flash")
			}
		})
	}
}

// ubiLayoutBoard has "rootfs" swapped with its spare "rootfs_b" on the
// UBI device of MTD "ubi-part", and a "data" volume.
func ubiLayoutBoard(spare string) *boards.Profile {
	id := func(n int) *int { return &n }
	vols := []boards.UBIVolume{{Name: "rootfs", ID: id(0), Size: 2 << 20}, {Name: "data", ID: id(2), Size: 1 << 20}}
	if spare != "" {
		vols = append(vols, boards.UBIVolume{Name: spare, ID: id(1), Size: 2 << 20})
	}
	return flashBoard(map[string]boards.TargetSpec{"rootfs": {UBI: &boards.UBITarget{MTD: "ubi-part", Volume: "rootfs", Spare: spare}}},
		map[string]boards.UBIDevice{"ubi-part": {Volumes: vols}})
}

func TestFlashUBIVolume(t *testing.T) {
	k := installtest.NewKey(t)
	const size = 20*cs + 300
	data := installtest.Data(14, size, cs)
	m := installtest.Manifest(bundle.Step{Type: bundle.StepImage, Target: "rootfs", Image: "rootfs"})
	b := installtest.Bundle(t, k, m, cs, installtest.Image{Name: "rootfs", Data: data})
	for _, stream := range []bool{false, true} {
		t.Run(fmt.Sprintf("swap/stream=%v", stream), func(t *testing.T) {
			fl := newSimFlash()
			fl.mtds["ubi-part"] = mtdtest.NewNAND(64, nandES, nandPage)
			dev := ubitest.New(60, lebSize)
			fl.attach["ubi-part"] = dev
			p := ubiLayoutBoard("rootfs_b")

			res, events, err := flashInstall(t, open(t, b, k, stream), p, fl, Config{})
			if err != nil {
				t.Fatal(err)
			}
			if got, _ := dev.Data("rootfs"); !bytes.Equal(got, data) {
				t.Fatal("volume rootfs does not hold the image")
			}
			if d := cmp.Diff([]string{"ubi-part"}, fl.attaches); d != "" {
				t.Errorf("attaches (-want +got):\n%s", d)
			}
			if ps := events[0].Plan.Steps[0]; ps.Kind != "ubi" || ps.Volume != "rootfs" || ps.Spare != "rootfs_b" ||
				!cmp.Equal(ps.Changes, []string{"attach sim-nand(64×131072) to UBI"}) {
				t.Errorf("plan step = %+v", ps)
			}
			wantCalls := []string{
				`mkvol "rootfs" id=0 size=2097152 dynamic`,
				`mkvol "data" id=2 size=1048576 dynamic`,
				`mkvol "rootfs_b" id=1 size=2097152 dynamic`,
				fmt.Sprintf("volup 1 size=%d", size),
				`rnvol [{1 rootfs} {0 rootfs_b}]`,
			}
			if d := cmp.Diff(wantCalls, dev.Calls()); d != "" {
				t.Errorf("UBI calls (-want +got):\n%s", d)
			}
			if st := res.Steps[0]; st.WrittenBytes != size || st.Note != `layout: create dynamic volume 0 "rootfs" of 2097152 bytes, create dynamic volume 2 "data" of 1048576 bytes, create dynamic volume 1 "rootfs_b" of 2097152 bytes; written to "rootfs_b", then swapped with "rootfs"` {
				t.Errorf("step = %+v", st)
			}

			// Again: the layout holds (IDs swapped, names kept), the
			// plan says so, and the names swap back.
			res, events, err = flashInstall(t, open(t, b, k, stream), p, fl, Config{})
			if err != nil {
				t.Fatal(err)
			}
			if ps := events[0].Plan.Steps[0]; len(ps.Changes) != 0 {
				t.Errorf("second plan: changes %q, want none", ps.Changes)
			}
			if got, _ := dev.Data("rootfs"); !bytes.Equal(got, data) {
				t.Fatal("volume rootfs does not hold the image after the second install")
			}
			if calls := dev.Calls(); calls[len(calls)-1] != `rnvol [{0 rootfs} {1 rootfs_b}]` {
				t.Errorf("last call %q, want a swap back", calls[len(calls)-1])
			}

			vp, err := NewPlan(open(t, b, k, false), Config{Board: p, Flash: fl, ReadOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := vp.Verify(context.Background()); err != nil {
				t.Errorf("Verify() = %v, want a match", err)
			}
		})
	}

	t.Run("bad chunk keeps the active volume", func(t *testing.T) {
		fl := newSimFlash()
		fl.mtds["ubi-part"] = mtdtest.NewNAND(64, nandES, nandPage)
		dev := ubitest.New(60, lebSize)
		fl.attached["ubi-part"] = dev
		p := ubiLayoutBoard("rootfs_b")
		if _, _, err := flashInstall(t, open(t, b, k, true), p, fl, Config{}); err != nil {
			t.Fatal(err)
		}
		other := installtest.Data(15, size, cs)
		ob := installtest.Bundle(t, k, m, cs, installtest.Image{Name: "rootfs", Data: other})
		_, _, err := flashInstall(t, open(t, corrupt(t, ob, k, "rootfs", 7), k, true), p, fl, Config{})
		var ce *ChunkError
		if !errors.As(err, &ce) || !errors.Is(err, bundle.ErrChecksum) || ce.Chunk != 7 {
			t.Fatalf("install = %v, want a ChunkError for chunk 7 wrapping ErrChecksum", err)
		}
		if got, _ := dev.Data("rootfs"); !bytes.Equal(got, data) {
			t.Error("volume rootfs changed although the new image failed")
		}
		vols, _ := dev.Volumes()
		for _, v := range vols {
			if v.Name == "rootfs_b" && !v.Corrupted {
				t.Error("the spare volume is not marked corrupted after the failed update")
			}
		}
	})

	t.Run("in place", func(t *testing.T) {
		fl := newSimFlash()
		fl.mtds["ubi-part"] = mtdtest.NewNAND(64, nandES, nandPage)
		dev := ubitest.New(60, lebSize)
		fl.attached["ubi-part"] = dev
		res, _, err := flashInstall(t, open(t, b, k, false), ubiLayoutBoard(""), fl, Config{})
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := dev.Data("rootfs"); !bytes.Equal(got, data) {
			t.Error("volume rootfs does not hold the image")
		}
		if n := res.Steps[0].Note; n != `layout: create dynamic volume 0 "rootfs" of 2097152 bytes, create dynamic volume 2 "data" of 1048576 bytes; volume "rootfs" updated in place` {
			t.Errorf("note %q", n)
		}
	})

	t.Run("no layout and no volume", func(t *testing.T) {
		fl := newSimFlash()
		fl.mtds["ubi-part"] = mtdtest.NewNAND(64, nandES, nandPage)
		fl.attached["ubi-part"] = ubitest.New(60, lebSize)
		p := flashBoard(map[string]boards.TargetSpec{"rootfs": {UBI: &boards.UBITarget{MTD: "ubi-part", Volume: "rootfs"}}}, nil)
		_, _, err := flashInstall(t, open(t, b, k, false), p, fl, Config{})
		if !errors.Is(err, ErrTargetMissing) {
			t.Errorf("install = %v, want ErrTargetMissing", err)
		}
	})
}

// ubiImage makes a UBI image of n eraseblocks as ubinize would lay it
// out as far as FormatImage looks: each starts with an EC header (erase
// counter 0) of one image sequence number.
func ubiImage(n int) []byte {
	img := installtest.Data(16, n*nandES, cs)
	for i := 0; i < n; i++ {
		blk := img[i*nandES : (i+1)*nandES]
		ubi.ECHeader{Version: ubi.Version, VIDHdrOffset: 2048, DataOffset: 4096, ImageSeq: 0x1234}.Put(blk)
	}
	return img
}

func TestFlashUBIImage(t *testing.T) {
	k := installtest.NewKey(t)
	img := ubiImage(6)
	m := installtest.Manifest(bundle.Step{Type: bundle.StepImage, Target: "ubi", Image: "ubi"})
	b := installtest.Bundle(t, k, m, cs, installtest.Image{Name: "ubi", Data: img})
	p := flashBoard(map[string]boards.TargetSpec{"ubi": {UBIImage: "ubi-part", MaxBad: 2}}, nil)

	fl := newSimFlash()
	nand := mtdtest.NewNAND(16, nandES, nandPage)
	nand.Bad[3] = true
	fl.mtds["ubi-part"] = nand
	fl.attached["ubi-part"] = ubitest.New(10, lebSize) // detached first

	var last []int64
	for round := 1; round <= 2; round++ {
		res, _, err := flashInstall(t, open(t, b, k, round == 2), p, fl, Config{})
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		ecs, _, err := ubi.ScanECs(nand, 0, 16*nandES)
		if err != nil {
			t.Fatal(err)
		}
		for i, ec := range ecs {
			want := int64(round - 1)
			if i == 3 {
				want = -1
			}
			if ec != want {
				t.Errorf("round %d: PEB %d has erase counter %d, want %d (counters %v, before %v)", round, i, ec, want, ecs, last)
			}
		}
		last = ecs
		if st := res.Steps[0]; st.WrittenBytes != int64(len(img)) || !st.Verified {
			t.Errorf("round %d: step %+v", round, st)
		}
		// The image's data, past the EC header, is in place.
		got := logical(nand)
		for i := 0; i < 6; i++ {
			if !bytes.Equal(got[i*nandES+ubi.ECHeaderSize:(i+1)*nandES], img[i*nandES+ubi.ECHeaderSize:(i+1)*nandES]) {
				t.Errorf("round %d: eraseblock %d of the image differs", round, i)
			}
		}
	}
	if d := cmp.Diff([]string{"ubi-part"}, fl.detaches); d != "" {
		t.Errorf("detaches (-want +got):\n%s", d)
	}

	// An image that is not whole eraseblocks was made for other flash.
	odd := installtest.Bundle(t, k, m, cs, installtest.Image{Name: "ubi", Data: img[:5*nandES+cs]})
	_, _, err := flashInstall(t, open(t, odd, k, false), p, fl, Config{})
	if !errors.Is(err, ErrIncompatible) {
		t.Errorf("install of a partial UBI image = %v, want ErrIncompatible", err)
	}
}
