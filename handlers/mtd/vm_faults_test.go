package mtd_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/lifeboat-updater/lifeboat/handlers/mtd"
	"github.com/lifeboat-updater/lifeboat/internal/vm"
)

// TestVMFlashFaults boots the pinned Debian kernel in QEMU with
// testdata/faultinit as PID 1: images written to mtdram (RAM flash that
// reads like NOR: blank blocks are written without an erase) and to
// nandsim flipping random bits on reads (bitflips=1), which the ECC
// corrects: every write still succeeds, no block is marked bad, and
// blocks that held the image only thanks to the ECC are rewritten
// (Stats.Scrubbed). `go test -short` skips it.
func TestVMFlashFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("boots QEMU; skipped with -short")
	}
	dir := t.TempDir()

	// Images A and B: 24 erase blocks of 128 KiB and a bit. A has a
	// blank block (8) and a blank page; B is A but from block 4 on.
	const es = 128 << 10
	const size = 24*es + 4321
	a := image(7, size)
	copy(a[8*es:9*es], bytes.Repeat([]byte{0xFF}, es))
	copy(a[3*2048:4*2048], bytes.Repeat([]byte{0xFF}, 2048))
	b := bytes.Clone(a)
	copy(b[4*es:], image(8, size-4*es))
	disk := append(append(bytes.Clone(a), b...), make([]byte, 512-(2*size)%512)...)
	imgPath := filepath.Join(dir, "images.img")
	if err := os.WriteFile(imgPath, disk, 0o644); err != nil {
		t.Fatal(err)
	}

	got := map[string]vmResult{}
	var rounds []vmResult
	for _, r := range runGuest(t, "faultinit", "mtdram", size, "mtdfault", 3*time.Minute, vm.Drive{Path: imgPath, ReadOnly: true}) {
		got[r.Step] = r
		if strings.HasPrefix(r.Step, "nand round ") {
			rounds = append(rounds, r)
		}
	}
	for _, step := range []string{"img_size", "open image", "modprobe mtdram", "ram open", "modprobe nandsim", "nand open", "nand ecc"} {
		if r, ok := got[step]; ok {
			t.Fatalf("%s: %s", step, r.Err)
		}
	}
	sumA, sumB := sha256.Sum256(a), sha256.Sum256(b)

	// mtdram: RAM flash, written a byte at a time, no bad blocks.
	if d := cmp.Diff(&mtd.Info{Type: mtd.TypeRAM, Flags: mtd.FlagWriteable | mtd.FlagBitWriteable | mtd.FlagNoErase, Size: 8 << 20, EraseSize: es, WriteSize: 1}, got["ram info"].Info); d != "" {
		t.Errorf("ram info (-want +got):\n%s", d)
	}
	// 4 KiB write units: the blank page of A is inside one with data.
	lastBlank := (es - 4321) / 4096
	for _, c := range []struct {
		step string
		want mtd.Stats
		sum  [32]byte
	}{
		// Blank flash: no block is erased; block 8, all 0xFF, is
		// what blank flash holds already.
		{"ram write A", mtd.Stats{Bytes: size, Blocks: 25, Written: 24, Unchanged: 1, EraseSkipped: 24, BlankPages: lastBlank, End: 25 * es}, sumA},
		{"ram write A again", mtd.Stats{Bytes: size, Blocks: 25, Unchanged: 25, End: 25 * es}, sumA},
		// B: blocks 0-3 are A's; the others are erased, but for
		// block 8, which A left blank.
		{"ram write B", mtd.Stats{Bytes: size, Blocks: 25, Written: 21, Unchanged: 4, EraseSkipped: 1, BlankPages: lastBlank, End: 25 * es}, sumB},
	} {
		r := got[c.step]
		if r.Err != "" || r.Stats == nil {
			t.Errorf("%s: %q", c.step, r.Err)
			continue
		}
		t.Logf("MEASURE mtdram %s (%d bytes): %s", c.step, size, r.Text)
		if d := cmp.Diff(c.want, *r.Stats); d != "" {
			t.Errorf("%s stats (-want +got):\n%s", c.step, d)
		}
		if rb := got[c.step+" readback"]; rb.Err != "" || rb.SHA256 != hex.EncodeToString(c.sum[:]) {
			t.Errorf("%s: read back sha256 %s (%s), want %x", c.step, rb.SHA256, rb.Err, c.sum)
		}
	}

	// nandsim with bit flips: every round succeeds with the image on
	// flash, nothing is marked bad, nothing is uncorrectable.
	if len(rounds) == 0 {
		t.Fatal("no nand round reported")
	}
	var flipRounds int
	for i, r := range rounds {
		if r.Err != "" || r.Stats == nil || r.ECC == nil {
			t.Errorf("%s: %q", r.Step, r.Err)
			continue
		}
		st := *r.Stats
		t.Logf("MEASURE nandsim bitflips=1 %s (%d bytes): %s", r.Step, size, r.Text)
		t.Logf("%s: %+v; ECC corrected %d in %s", r.Step, st, r.ECC.Corrected, r.Text)
		if st.Bytes != size || st.Blocks != 25 || st.Written+st.Unchanged != 25 || st.Bad() != 0 || r.ECC.Failed != 0 || r.ECC.BadBlocks != 0 {
			t.Errorf("%s: stats %+v, ECC %+v: want 25 blocks written or unchanged, none bad, nothing uncorrectable", r.Step, st, *r.ECC)
		}
		// From the second round on the flash holds the image: a block
		// is rewritten only when its read needed the ECC.
		if i > 0 && st.Written != st.Scrubbed {
			t.Errorf("%s: %d blocks written, %d scrubbed; want only the scrubbed ones written", r.Step, st.Written, st.Scrubbed)
		}
		if st.Scrubbed > 0 && r.ECC.Corrected == 0 {
			t.Errorf("%s: %d blocks scrubbed without an ECC correction", r.Step, st.Scrubbed)
		}
		if uint32(st.Corrected) > r.ECC.Corrected {
			t.Errorf("%s: Stats.Corrected %d, more than the ECC's %d", r.Step, st.Corrected, r.ECC.Corrected)
		}
		if r.ECC.Corrected > 0 {
			flipRounds++
		}
	}
	if flipRounds == 0 {
		t.Errorf("nandsim flipped no bit in %d rounds of writes and reads", len(rounds))
	}
	if r := got["nand readback"]; r.Err != "" || r.SHA256 != hex.EncodeToString(sumA[:]) {
		t.Errorf("nand readback: sha256 %s (%s), want %x", r.SHA256, r.Err, sumA)
	}
	if r := got["nand ecc total"]; r.ECC == nil || r.ECC.Failed != 0 {
		t.Errorf("nand ecc total: %+v, %q; want no uncorrectable read", r.ECC, r.Err)
	}
}
