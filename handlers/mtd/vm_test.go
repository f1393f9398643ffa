package mtd_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/lifeboat-updater/lifeboat/handlers/mtd"
	"github.com/lifeboat-updater/lifeboat/initramfs"
	"github.com/lifeboat-updater/lifeboat/internal/vm"
)

// vmResult is a line testdata/mtdinit prints.
type vmResult struct {
	Step   string        `json:"step"`
	Err    string        `json:"err"`
	Is     string        `json:"is"`
	Stats  *mtd.Stats    `json:"stats"`
	Info   *mtd.Info     `json:"info"`
	SHA256 string        `json:"sha256"`
	Path   string        `json:"path"`
	ECC    *mtd.ECCStats `json:"ecc"`
	Text   string        `json:"text"`
}

// runGuest boots testdata/NAME as PID 1 with nandsim, the MTD module
// flash and the image's size (lifeboat.img_size) on the command line, and
// returns the result lines it prints under prefix.
func runGuest(t *testing.T, name, flash string, size int, prefix string, timeout time.Duration, drives ...vm.Drive) []vmResult {
	t.Helper()
	v := vm.BootGuest(t, vm.GuestOptions{
		Image: initramfs.Options{
			Init:         "./testdata/" + name,
			Modules:      []string{"virtio_pci", "virtio_blk", "nandsim", flash},
			BoardProfile: filepath.Join("testdata", "board.json"),
		},
		Args: fmt.Sprintf("lifeboat.img_size=%d", size),
		VM:   vm.Options{Drives: drives},
	})
	return vm.GuestResults[vmResult](t, v, prefix, timeout)
}

// TestVMFlash boots the pinned Debian kernel in QEMU with
// testdata/mtdinit as PID 1 and writes an image to nandsim (with bad
// blocks, an erase failure and a program failure) and to block2mtd over a
// host file, which the test then compares byte by byte. `go test -short`
// skips it.
func TestVMFlash(t *testing.T) {
	if testing.Short() {
		t.Skip("boots QEMU; skipped with -short")
	}
	dir := t.TempDir()

	// The image: 16 blocks of 128 KiB and 1234 bytes, random but for an
	// all-0xFF page.
	const size = 2<<20 + 1234
	img := image(42, size)
	for i := 5 * 2048; i < 6*2048; i++ {
		img[i] = 0xFF
	}
	imgPath := filepath.Join(dir, "image.img")
	padded := append(bytes.Clone(img), make([]byte, 512-size%512)...)
	if err := os.WriteFile(imgPath, padded, 0o644); err != nil {
		t.Fatal(err)
	}
	// The block2mtd disk: 4 MiB of 0x5A, but blocks 1-4 (64 KiB each)
	// blank, which the write must not erase.
	const nes = 64 << 10
	flash := bytes.Repeat([]byte{0x5A}, 4<<20)
	copy(flash[nes:5*nes], bytes.Repeat([]byte{0xFF}, 4*nes))
	flashPath := filepath.Join(dir, "flash.img")
	if err := os.WriteFile(flashPath, flash, 0o644); err != nil {
		t.Fatal(err)
	}

	got := map[string]vmResult{}
	for _, r := range runGuest(t, "mtdinit", "block2mtd", size, "mtdtest", 4*time.Minute, vm.Drive{Path: imgPath, ReadOnly: true}, vm.Drive{Path: flashPath}) {
		got[r.Step] = r
	}
	for _, step := range []string{"modprobe nandsim", "modprobe block2mtd", "nand open", "nor lookup", "nor open"} {
		if r, ok := got[step]; ok {
			t.Fatalf("%s: %s", step, r.Err)
		}
	}

	const es = 128 << 10
	if d := cmp.Diff(&mtd.Info{Type: mtd.TypeNAND, Flags: mtd.FlagWriteable, Size: 256 << 20, EraseSize: es, WriteSize: 2048, OOBSize: 64}, got["nand info"].Info); d != "" {
		t.Errorf("nand info (-want +got):\n%s", d)
	}
	for step, want := range map[string]error{
		"nand budget":    mtd.ErrTooManyBad,
		"nand too small": mtd.ErrNoSpace,
		"nand read-only": mtd.ErrReadOnly,
		"nor unaligned":  mtd.ErrUnaligned,
	} {
		if r := got[step]; r.Is != want.Error() {
			t.Errorf("%s: error %q, want %v", step, r.Err, want)
		}
	}
	// Data blocks 0-2, 4-6, 8-9, 11, 13-20: 3 and 7 were bad, 10 failed
	// its erase, 12 its program; 10 and 12 are marked bad now.
	wantWrite := mtd.Stats{Bytes: size, Blocks: 17, Written: 17, BlankPages: 1 + 63, BadSkipped: 2, MarkedBad: 2, End: 21 * es}
	if r := got["nand write"]; r.Err != "" || r.Stats == nil {
		t.Errorf("nand write: %q", r.Err)
	} else if d := cmp.Diff(wantWrite, *r.Stats); d != "" {
		t.Errorf("nand write stats (-want +got):\n%s", d)
	}
	sum := sha256.Sum256(img)
	if r := got["nand readback"]; r.Err != "" || r.SHA256 != hex.EncodeToString(sum[:]) {
		t.Errorf("nand readback: sha256 %s, %q, want %x", r.SHA256, r.Err, sum)
	}
	wantRewrite := mtd.Stats{Bytes: size, Blocks: 17, Unchanged: 17, BadSkipped: 4, End: 21 * es}
	if r := got["nand rewrite"]; r.Err != "" || r.Stats == nil {
		t.Errorf("nand rewrite: %q", r.Err)
	} else if d := cmp.Diff(wantRewrite, *r.Stats); d != "" {
		t.Errorf("nand rewrite stats (-want +got):\n%s", d)
	}
	if r := got["nand ecc"]; r.ECC == nil || r.ECC.BadBlocks != 4 {
		t.Errorf("nand ecc: %+v, %q, want 4 bad blocks", r.ECC, r.Err)
	}

	// block2mtd: 33 blocks of 64 KiB from block 1; blocks 1-4 were blank.
	wantNOR := mtd.Stats{Bytes: size, Blocks: 33, Written: 33, EraseSkipped: 4, BlankPages: (nes - 1234) / 4096, End: 34 * nes} // 4 KiB write units on NOR
	if r := got["nor write"]; r.Err != "" || r.Stats == nil {
		t.Errorf("nor write: %q", r.Err)
	} else if d := cmp.Diff(wantNOR, *r.Stats); d != "" {
		t.Errorf("nor write stats (-want +got):\n%s", d)
	}
	if r := got["nor info"]; r.Path != "/dev/mtd1" || r.Info == nil || r.Info.EraseSize != nes {
		t.Errorf("nor info: %+v at %s, want /dev/mtd1 with 64 KiB blocks", r.Info, r.Path)
	}
	after, err := os.ReadFile(flashPath)
	if err != nil {
		t.Fatal(err)
	}
	want := bytes.Clone(flash)
	copy(want[nes:], img)
	copy(want[nes+size:34*nes], bytes.Repeat([]byte{0xFF}, 34*nes-nes-size))
	if !bytes.Equal(after, want) {
		i := 0
		for i < len(want) && after[i] == want[i] {
			i++
		}
		t.Errorf("block2mtd disk differs from the expected bytes first at %#x", i)
	}
}
