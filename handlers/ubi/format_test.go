package ubi

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/lifeboat-updater/lifeboat/handlers/mtd/mtdtest"
)

const (
	pebSize  = 16 << 10
	pageSize = 512
	imgSeq   = 0x12345678
)

// ubiImage makes n PEBs the way ubinize lays them out: an EC header with
// EC 0, then (past the VID header offset) data.
func ubiImage(n int) []byte {
	r := rand.New(rand.NewPCG(9, 9))
	img := make([]byte, n*pebSize)
	for i := range img {
		img[i] = byte(r.Uint32())
	}
	for p := 0; p < n; p++ {
		ECHeader{Version: Version, VIDHdrOffset: pageSize, DataOffset: 2 * pageSize, ImageSeq: imgSeq}.Put(img[p*pebSize:])
	}
	return img
}

func TestECHeader(t *testing.T) {
	h := ECHeader{Version: 1, EC: 12345, VIDHdrOffset: 512, DataOffset: 2048, ImageSeq: 0xdeadbeef}
	b := make([]byte, ECHeaderSize)
	h.Put(b)
	got, ok := ParseECHeader(b)
	if !ok || got != h {
		t.Errorf("ParseECHeader(Put(%+v)) = %+v, %v", h, got, ok)
	}
	b[9] ^= 1
	if _, ok := ParseECHeader(b); ok {
		t.Error("ParseECHeader accepted a header with a bad CRC")
	}
	if _, ok := ParseECHeader(bytes.Repeat([]byte{0xFF}, 64)); ok {
		t.Error("ParseECHeader accepted an erased block")
	}
}

// TestECHeaderUbinize parses the EC headers of an image made by ubinize
// (mtd-utils): the CRC and the layout agree with the reference tool.
func TestECHeaderUbinize(t *testing.T) {
	if _, err := exec.LookPath("ubinize"); err != nil {
		t.Skipf("ubinize not installed (Debian package mtd-utils): %v", err)
	}
	dir := t.TempDir()
	data := filepath.Join(dir, "data.bin")
	if err := os.WriteFile(data, bytes.Repeat([]byte("lifeboat"), 40000), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "ubi.cfg")
	if err := os.WriteFile(cfg, []byte("[vol]\nmode=ubi\nimage="+data+"\nvol_id=0\nvol_type=dynamic\nvol_name=vol\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "img.ubi")
	if b, err := exec.Command("ubinize", "-o", out, "-m", "2048", "-p", "128KiB", "-s", "512", "-Q", "4242", cfg).CombinedOutput(); err != nil {
		t.Fatalf("ubinize: %v: %s", err, b)
	}
	img, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(img) == 0 || len(img)%(128<<10) != 0 {
		t.Fatalf("ubinize made %d bytes, want whole 128 KiB PEBs", len(img))
	}
	for p := 0; p < len(img)/(128<<10); p++ {
		h, ok := ParseECHeader(img[p*(128<<10):])
		want := ECHeader{Version: 1, VIDHdrOffset: 512, DataOffset: 2048, ImageSeq: 4242}
		if !ok || h != want {
			t.Errorf("PEB %d: ParseECHeader() = %+v, %v, want %+v", p, h, ok, want)
		}
	}
}

// setEC gives block b of f an EC header with the erase counter ec.
func setEC(f *mtdtest.Flash, b int, ec int64) {
	hdr := make([]byte, ECHeaderSize)
	ECHeader{Version: Version, EC: ec, VIDHdrOffset: pageSize, DataOffset: 2 * pageSize, ImageSeq: 1}.Put(hdr)
	f.Fill(int64(b)*pebSize, hdr)
}

func TestFormatImage(t *testing.T) {
	const blocks = 16
	f := mtdtest.NewNAND(blocks, pebSize, pageSize)
	setEC(f, 0, 10)
	setEC(f, 1, 20)
	f.Bad[2] = true
	f.Fill(3*pebSize, []byte("not UBI"))
	f.FailErase[4] = true
	setEC(f, 5, 30)
	setEC(f, 9, 40)
	f.FailWrite[12] = true // fails when its EC header is written
	img := ubiImage(5)

	st, err := FormatImage(f, bytes.NewReader(img), int64(len(img)), FormatOptions{})
	if err != nil {
		t.Fatalf("FormatImage() = %v", err)
	}
	// Mean of 10, 20, 30, 40 is 25. The image goes to 0, 1, 3, 5, 6 (2 is
	// bad, 4 fails); 7-15 are formatted but 12, which goes bad.
	if st.MeanEC != 25 || st.ImageSeq != imgSeq || st.Image.Written != 5 || st.Image.BadSkipped != 1 || st.Image.MarkedBad != 1 ||
		st.Formatted != 8 || st.Bad != 1 || st.Unknown != 11 {
		t.Errorf("FormatImage() stats = %+v", st)
	}
	wantEC := map[int]int64{0: 11, 1: 21, 3: 25, 5: 31, 6: 25, 7: 25, 8: 25, 9: 41, 10: 25, 11: 25, 13: 25, 14: 25, 15: 25}
	gotEC := map[int]int64{}
	data := f.Bytes()
	imgPEB := map[int]int{0: 0, 1: 1, 3: 2, 5: 3, 6: 4}
	for b := 0; b < blocks; b++ {
		peb := data[b*pebSize : (b+1)*pebSize]
		h, ok := ParseECHeader(peb)
		if !ok {
			continue
		}
		gotEC[b] = h.EC
		if h.ImageSeq != imgSeq || h.VIDHdrOffset != pageSize {
			t.Errorf("block %d: header %+v, want image sequence %#x", b, h, imgSeq)
		}
		if i, ok := imgPEB[b]; ok {
			if !bytes.Equal(peb[ECHeaderSize:], img[i*pebSize+ECHeaderSize:(i+1)*pebSize]) {
				t.Errorf("block %d does not hold PEB %d of the image", b, i)
			}
		} else if !bytes.Equal(peb[ECHeaderSize:], bytes.Repeat([]byte{0xFF}, pebSize-ECHeaderSize)) {
			t.Errorf("formatted block %d holds more than an EC header", b)
		}
	}
	if d := cmp.Diff(wantEC, gotEC); d != "" {
		t.Errorf("erase counters (-want +got):\n%s", d)
	}
	if !f.Bad[4] || !f.Bad[12] {
		t.Error("blocks 4 and 12 are not marked bad")
	}

	// A second format finds every counter and adds one.
	if _, err := FormatImage(f, bytes.NewReader(img), int64(len(img)), FormatOptions{}); err != nil {
		t.Fatalf("second FormatImage() = %v", err)
	}
	for b, ec := range wantEC {
		if h, ok := ParseECHeader(data[b*pebSize:]); !ok || h.EC != ec+1 {
			t.Errorf("second format: block %d has EC %d (%v), want %d", b, h.EC, ok, ec+1)
		}
	}
}

func TestFormatImageErrors(t *testing.T) {
	img := ubiImage(3)
	noHeader := bytes.Clone(img)
	noHeader[pebSize+3] ^= 1
	tests := []struct {
		name string
		img  []byte
		want error
	}{
		{"not whole PEBs", img[:len(img)-100], ErrBadImage},
		{"PEB without an EC header", noHeader, ErrBadImage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := mtdtest.NewNAND(8, pebSize, pageSize)
			_, err := FormatImage(f, bytes.NewReader(tt.img), int64(len(tt.img)), FormatOptions{})
			if !errors.Is(err, tt.want) {
				t.Errorf("FormatImage() = %v, want %v", err, tt.want)
			}
		})
	}
}

// TestFormatWriterIncomplete: an image that stops short, or runs long,
// is not completed: Close writes neither its partial last eraseblock nor
// the EC headers of the rest of the region.
func TestFormatWriterIncomplete(t *testing.T) {
	img := ubiImage(3)
	size := int64(len(img))
	tests := []struct {
		name   string
		writes [][]byte
		erases int // the whole eraseblocks written before Close
	}{
		{"stream ends in the second eraseblock", [][]byte{img[:pebSize+100]}, 1},
		{"nothing arrives", nil, 0},
		{"more than the image", [][]byte{img, {1}}, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := mtdtest.NewNAND(8, pebSize, pageSize)
			w, err := NewFormatWriter(f, size, FormatOptions{})
			if err != nil {
				t.Fatal(err)
			}
			var n int64
			for _, p := range tt.writes {
				_, err := w.Write(p)
				if n += int64(len(p)); n > size && !errors.Is(err, ErrTooLong) {
					t.Errorf("Write(up to byte %d of a %d-byte image) = %v, want %v", n, size, err, ErrTooLong)
				}
			}
			want := ErrBadImage
			if n > size {
				want = ErrTooLong
			}
			if err := w.Close(); !errors.Is(err, want) {
				t.Errorf("Close() = %v, want %v", err, want)
			}
			if f.TotalErases() != tt.erases {
				t.Errorf("%d erases, want %d: Close wrote more of an incomplete image", f.TotalErases(), tt.erases)
			}
		})
	}
}
