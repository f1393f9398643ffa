package mtd_test

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/lifeboat-updater/lifeboat/handlers/mtd"
	"github.com/lifeboat-updater/lifeboat/handlers/mtd/mtdtest"
)

const (
	es   = 16 << 10 // erase block of the simulated chips
	page = 512
)

// image returns n pseudo-random bytes with no all-0xFF page.
func image(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.UintN(255)) // never 0xFF
	}
	return b
}

// layout returns where the image's bytes should sit on a chip of blocks
// blocks when the given blocks are skipped, starting at block first.
func layout(img []byte, blocks, first int64, skip ...int64) []byte {
	want := bytes.Repeat([]byte{0xFF}, int(blocks*es))
	b := first
	for len(img) > 0 {
		for contains(skip, b) {
			b++
		}
		k := copy(want[b*es:(b+1)*es], img)
		img = img[k:]
		b++
	}
	return want
}

func contains(s []int64, v int64) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func TestWriteNAND(t *testing.T) {
	img := image(1, 3*es+es/2+100) // the last block is partial, not page-aligned
	tests := []struct {
		name      string
		setup     func(f *mtdtest.Flash)
		opt       mtd.Options
		skip      []int64 // blocks the image must go around
		wantStats mtd.Stats
	}{
		{
			name:      "clean",
			wantStats: mtd.Stats{Blocks: 4, Written: 4, BlankPages: 15, End: 4 * es},
		},
		{
			name:      "factory bad blocks",
			setup:     func(f *mtdtest.Flash) { f.Bad[1], f.Bad[2] = true, true },
			skip:      []int64{1, 2},
			wantStats: mtd.Stats{Blocks: 4, Written: 4, BlankPages: 15, BadSkipped: 2, End: 6 * es},
		},
		{
			name:      "erase fails with EIO",
			setup:     func(f *mtdtest.Flash) { f.FailErase[0] = true },
			skip:      []int64{0},
			wantStats: mtd.Stats{Blocks: 4, Written: 4, BlankPages: 15, MarkedBad: 1, End: 5 * es},
		},
		{
			name:      "write fails with EIO",
			setup:     func(f *mtdtest.Flash) { f.FailWrite[3] = true },
			skip:      []int64{3},
			wantStats: mtd.Stats{Blocks: 4, Written: 4, BlankPages: 15, MarkedBad: 1, End: 5 * es},
		},
		{
			name:      "uncorrectable read-back",
			setup:     func(f *mtdtest.Flash) { f.ECCFail[2] = true },
			skip:      []int64{2},
			wantStats: mtd.Stats{Blocks: 4, Written: 4, BlankPages: 15, MarkedBad: 1, End: 5 * es},
		},
		{
			name:      "bad blocks within the budget",
			setup:     func(f *mtdtest.Flash) { f.Bad[0] = true; f.FailErase[2] = true },
			opt:       mtd.Options{MaxBad: 2, Size: int64(3*es + es/2 + 100)},
			skip:      []int64{0, 2},
			wantStats: mtd.Stats{Blocks: 4, Written: 4, BlankPages: 15, BadSkipped: 1, MarkedBad: 1, End: 6 * es},
		},
		{
			name:      "region at an offset",
			setup:     func(f *mtdtest.Flash) { f.Bad[3] = true },
			opt:       mtd.Options{Offset: 2 * es, Length: 6 * es},
			skip:      []int64{0, 1, 3},
			wantStats: mtd.Stats{Blocks: 4, Written: 4, BlankPages: 15, BadSkipped: 1, End: 7 * es},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := mtdtest.NewNAND(8, es, page)
			if tt.setup != nil {
				tt.setup(f)
			}
			got, err := mtd.WriteImage(f, bytes.NewReader(img), tt.opt)
			if err != nil {
				t.Fatalf("WriteImage() = %v", err)
			}
			tt.wantStats.Bytes = int64(len(img))
			if d := cmp.Diff(tt.wantStats, got); d != "" {
				t.Errorf("WriteImage() stats (-want +got):\n%s", d)
			}
			first := tt.opt.Offset / es
			want := layout(img, 8, first, tt.skip...)
			for b := int64(0); b < 8; b++ {
				if f.Bad[b] && contains(tt.skip, b) {
					continue // what a bad block holds does not matter
				}
				if !bytes.Equal(f.Bytes()[b*es:(b+1)*es], want[b*es:(b+1)*es]) {
					t.Errorf("block %d differs from the image's layout", b)
				}
			}
			for _, b := range tt.skip {
				if b >= first && !f.Bad[b] {
					t.Errorf("block %d is not marked bad", b)
				}
			}
		})
	}
}

func TestWriteErrors(t *testing.T) {
	img := image(2, 4*es)
	tests := []struct {
		name       string
		setup      func(f *mtdtest.Flash)
		opt        mtd.Options
		want       error
		wantErases int // erases before the failure: 0 when refused up front
	}{
		{
			name: "unaligned offset",
			opt:  mtd.Options{Offset: es + page},
			want: mtd.ErrUnaligned,
		},
		{
			name: "unaligned length",
			opt:  mtd.Options{Length: 5*es - page},
			want: mtd.ErrUnaligned,
		},
		{
			name:  "read-only",
			setup: func(f *mtdtest.Flash) { f.SetReadOnly(true) },
			want:  mtd.ErrReadOnly,
		},
		{
			name: "region past the device end",
			opt:  mtd.Options{Offset: 4 * es, Length: 8 * es},
			want: mtd.ErrNoSpace,
		},
		{
			name:  "too large once bad blocks are skipped, size known",
			setup: func(f *mtdtest.Flash) { f.Bad[1] = true },
			opt:   mtd.Options{Length: 4 * es, Size: 4 * es},
			want:  mtd.ErrNoSpace,
		},
		{
			name:       "too large once bad blocks are skipped, streamed",
			setup:      func(f *mtdtest.Flash) { f.Bad[1] = true },
			opt:        mtd.Options{Length: 4 * es},
			want:       mtd.ErrNoSpace,
			wantErases: 3,
		},
		{
			name:  "over budget, size known",
			setup: func(f *mtdtest.Flash) { f.Bad[1], f.Bad[2] = true, true },
			opt:   mtd.Options{MaxBad: 1, Size: 4 * es},
			want:  mtd.ErrTooManyBad,
		},
		{
			name:       "over budget, found while writing",
			setup:      func(f *mtdtest.Flash) { f.FailErase[1], f.FailWrite[2] = true, true },
			opt:        mtd.Options{MaxBad: 1},
			want:       mtd.ErrTooManyBad,
			wantErases: 3, // block 0; block 2, and its erase after the failed write
		},
		{
			name:  "no bad block tolerated",
			setup: func(f *mtdtest.Flash) { f.Bad[3] = true },
			opt:   mtd.Options{MaxBad: -1, Size: 4 * es},
			want:  mtd.ErrTooManyBad,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := mtdtest.NewNAND(8, es, page)
			if tt.setup != nil {
				tt.setup(f)
			}
			_, err := mtd.WriteImage(f, bytes.NewReader(img), tt.opt)
			if !errors.Is(err, tt.want) {
				t.Fatalf("WriteImage() = %v, want %v", err, tt.want)
			}
			if got := f.TotalErases(); got != tt.wantErases {
				t.Errorf("erases = %d, want %d", got, tt.wantErases)
			}
			end := tt.opt.Offset + tt.opt.Length
			if tt.opt.Length > 0 && end <= 8*es && !bytes.Equal(f.Bytes()[end:], bytes.Repeat([]byte{0xFF}, int(8*es-end))) {
				t.Errorf("bytes past the region's end %#x were written", end)
			}
		})
	}
}

// TestSkipUnchanged writes the same image twice, then one with a single
// changed block: only what differs is erased and written.
func TestSkipUnchanged(t *testing.T) {
	for _, kind := range []string{"nand", "nor"} {
		t.Run(kind, func(t *testing.T) {
			f := mtdtest.NewNAND(8, es, page)
			if kind == "nor" {
				f = mtdtest.NewNOR(8, es)
			}
			img := image(3, 5*es)
			if _, err := mtd.WriteImage(f, bytes.NewReader(img), mtd.Options{}); err != nil {
				t.Fatal(err)
			}
			erases, programs := f.TotalErases(), f.Programs
			got, err := mtd.WriteImage(f, bytes.NewReader(img), mtd.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if got.Unchanged != 5 || got.Written != 0 {
				t.Errorf("second write: Unchanged, Written = %d, %d, want 5, 0", got.Unchanged, got.Written)
			}
			if f.TotalErases() != erases || f.Programs != programs {
				t.Errorf("second write erased %d and programmed %d times, want 0, 0", f.TotalErases()-erases, f.Programs-programs)
			}
			img[2*es+7] ^= 1
			before := f.Erases[2]
			got, err = mtd.WriteImage(f, bytes.NewReader(img), mtd.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if got.Unchanged != 4 || got.Written != 1 || f.Erases[2] != before+1 || f.TotalErases() != erases+1 {
				t.Errorf("one block changed: Unchanged, Written, new erases of block 2, new erases = %d, %d, %d, %d, want 4, 1, 1, 1",
					got.Unchanged, got.Written, f.Erases[2]-before, f.TotalErases()-erases)
			}
			if !bytes.Equal(f.Bytes()[:5*es], img) {
				t.Error("flash does not hold the changed image")
			}
			got, err = mtd.WriteImage(f, bytes.NewReader(img), mtd.Options{Rewrite: true})
			if err != nil {
				t.Fatal(err)
			}
			if got.Written != 5 || got.Unchanged != 0 {
				t.Errorf("Rewrite: Written, Unchanged = %d, %d, want 5, 0", got.Written, got.Unchanged)
			}
		})
	}
}

// TestNORBlankSkip: NOR blocks that read all 0xFF are programmed without
// an erase; others are erased first.
func TestNORBlankSkip(t *testing.T) {
	f := mtdtest.NewNOR(8, es)
	f.Fill(1*es+100, []byte{0, 1, 2}) // block 1 holds old data
	img := image(4, 3*es)
	got, err := mtd.WriteImage(f, bytes.NewReader(img), mtd.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got.EraseSkipped != 2 || got.Written != 3 {
		t.Errorf("EraseSkipped, Written = %d, %d, want 2, 3", got.EraseSkipped, got.Written)
	}
	if d := cmp.Diff(map[int64]int{1: 1}, f.Erases); d != "" {
		t.Errorf("erases per block (-want +got):\n%s", d)
	}
	if !bytes.Equal(f.Bytes()[:3*es], img) {
		t.Error("flash does not hold the image")
	}
}

// TestNORVerify: on NOR a block that reads back wrong fails the write
// (there is no bad block to mark).
func TestNORVerify(t *testing.T) {
	f := mtdtest.NewNOR(8, es)
	f.FailWrite[1] = true
	_, err := mtd.WriteImage(f, bytes.NewReader(image(5, 3*es)), mtd.Options{})
	if err == nil || errors.Is(err, mtd.ErrTooManyBad) {
		t.Fatalf("WriteImage() = %v, want a write error", err)
	}
	if f.Bad[1] {
		t.Error("a NOR block was marked bad")
	}
}

// TestBlankPages: all-0xFF pages are not programmed on NAND (the sim
// refuses a page programmed twice, so a rewrite would show too).
func TestBlankPages(t *testing.T) {
	f := mtdtest.NewNAND(4, es, page)
	img := image(6, 2*es)
	for i := 3 * page; i < 5*page; i++ { // two blank pages in block 0
		img[i] = 0xFF
	}
	for i := es + es - page; i < 2*es; i++ { // the last page of block 1
		img[i] = 0xFF
	}
	got, err := mtd.WriteImage(f, bytes.NewReader(img), mtd.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got.BlankPages != 3 {
		t.Errorf("BlankPages = %d, want 3", got.BlankPages)
	}
	if want := 2*es/page - 3; f.PagesProgrammed != want {
		t.Errorf("pages programmed = %d, want %d", f.PagesProgrammed, want)
	}
	if f.Programs != 3 {
		t.Errorf("write calls = %d, want 3 (runs of non-blank pages)", f.Programs)
	}
	if !bytes.Equal(f.Bytes()[:2*es], img) {
		t.Error("flash does not hold the image")
	}
}

// TestWriterChunks feeds the image in odd-sized writes and checks Close
// and the error after it.
func TestWriterChunks(t *testing.T) {
	f := mtdtest.NewNAND(8, es, page)
	w, err := mtd.NewWriter(f, mtd.Options{})
	if err != nil {
		t.Fatal(err)
	}
	img := image(7, 2*es+333)
	for p := img; len(p) > 0; {
		k := min(len(p), 1000)
		if n, err := w.Write(p[:k]); n != k || err != nil {
			t.Fatalf("Write(%d bytes) = %d, %v", k, n, err)
		}
		p = p[k:]
	}
	if err := w.Close(); err != nil {
		t.Fatalf("Close() = %v", err)
	}
	if _, err := w.Write([]byte{1}); !errors.Is(err, mtd.ErrClosed) {
		t.Errorf("Write after Close = %v, want %v", err, mtd.ErrClosed)
	}
	if !bytes.Equal(f.Bytes(), layout(img, 8, 0)) {
		t.Error("flash does not hold the image")
	}
}

// TestPrepare: the hook sees each block with the offset it lands on,
// again after a bad block, and what it changes is what is written.
func TestPrepare(t *testing.T) {
	f := mtdtest.NewNAND(8, es, page)
	f.Bad[1] = true
	f.FailErase[2] = true
	var offs []int64
	opt := mtd.Options{Prepare: func(off int64, block []byte) error {
		offs = append(offs, off)
		block[0] = byte(off / es)
		return nil
	}}
	if _, err := mtd.WriteImage(f, bytes.NewReader(image(8, 2*es)), opt); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]int64{0, 2 * es, 3 * es}, offs); d != "" {
		t.Errorf("Prepare offsets (-want +got):\n%s", d)
	}
	if got := []byte{f.Bytes()[0], f.Bytes()[3*es]}; !bytes.Equal(got, []byte{0, 3}) {
		t.Errorf("first bytes of blocks 0 and 3 = %v, want [0 3]", got)
	}
}

// TestScrub: a block that holds the data only thanks to ECC corrections
// is rewritten rather than skipped as unchanged.
func TestScrub(t *testing.T) {
	f := mtdtest.NewNAND(8, es, page)
	img := image(9, 3*es)
	if _, err := mtd.WriteImage(f, bytes.NewReader(img), mtd.Options{}); err != nil {
		t.Fatal(err)
	}
	f.ECCCorrect[1] = true
	got, err := mtd.WriteImage(f, bytes.NewReader(img), mtd.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Unchanged != 2 || got.Scrubbed != 1 || got.Written != 1 || got.Corrected != 1 || f.Erases[1] != 2 {
		t.Errorf("stats %+v, erases of block 1 = %d; want 2 unchanged, block 1 scrubbed (erased again)", got, f.Erases[1])
	}
}
