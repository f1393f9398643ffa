package install_test

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lifeboat-updater/lifeboat/bundle"
	"github.com/lifeboat-updater/lifeboat/exitcode"
	"github.com/lifeboat-updater/lifeboat/initramfs"
	"github.com/lifeboat-updater/lifeboat/install/installtest"
	"github.com/lifeboat-updater/lifeboat/internal/vm"
)

type vmResult struct {
	Step   string   `json:"step"`
	Err    string   `json:"err"`
	Code   int      `json:"code"`
	Text   string   `json:"text"`
	SHA256 string   `json:"sha256"`
	Notes  []string `json:"notes"`
	ECs    []int64  `json:"ecs"`
	After  string   `json:"after"`
	// Corrupted is the mark of the UBI volume "data".
	Corrupted *bool `json:"corrupted"`
}

// vmBoard is the board profile of the VM test: nandsim's three
// partitions as a raw target (by its MTD name), a UBI volume with a spare
// (by "mtdN"), a UBI volume updated in place, and a whole UBI image (by
// path). "ghost" names a volume that the UBI device on mtd2 does not
// have, and no layout makes.
const vmBoard = `{
  "name": "test-board",
  "modules": ["zstd", "ubi", "ubifs"],
  "targets": {
    "boot":   {"mtd": "NAND simulator partition 0", "max_bad": 2},
    "rootfs": {"ubi": {"mtd": "mtd1", "volume": "rootfs", "spare": "rootfs_b"}},
    "data":   {"ubi": {"mtd": "mtd1", "volume": "data"}},
    "ghost":  {"ubi": {"mtd": "mtd2", "volume": "nosuch"}},
    "ubi":    {"ubi_image": "/dev/mtd2", "max_bad": 4}
  },
  "ubi": {
    "mtd1": {"volumes": [
      {"name": "rootfs",   "id": 0, "size": 6291456},
      {"name": "rootfs_b", "id": 1, "size": 6291456},
      {"name": "data",     "id": 2, "size": 1048576}
    ]}
  }
}`

// TestVMFlashInstall boots the pinned Debian kernel in QEMU with
// testdata/flashinit as PID 1, which runs `lifeboat install` twice on a
// signed bundle that writes a raw image to nandsim's first partition, a
// host-made UBIFS into a UBI volume (swapped with a spare) on the second,
// and a ubinized image to the third, each with a bad block. Then it
// installs a bundle whose target is a UBI volume that does not exist
// (refused, nothing written), and cuts the stream of a bundle that updates
// a UBI volume in place halfway through the volume's image: UBI marks the
// volume, and a second install makes it whole. `go test -short` skips it.
func TestVMFlashInstall(t *testing.T) {
	if testing.Short() {
		t.Skip("boots QEMU; skipped with -short")
	}
	for _, tool := range []string{"mkfs.ubifs", "ubinize"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (Debian package mtd-utils): %v", tool, err)
		}
	}
	dir := t.TempDir()

	// The images: raw (12 erase blocks and a bit, zero chunks among
	// them), a UBIFS for the volume, and the same UBIFS ubinized.
	const cs = bundle.MinChunkSize
	raw := installtest.Data(21, 24*cs+777, cs)
	rawSum := sha256.Sum256(raw)
	root := filepath.Join(dir, "root")
	os.MkdirAll(root, 0o755)
	hello := "hello from a UBIFS the engine installed\n"
	if err := os.WriteFile(filepath.Join(root, "hello.txt"), []byte(hello), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "filler.bin"), installtest.Data(22, 300<<10, cs), 0o644); err != nil {
		t.Fatal(err)
	}
	ubifs := filepath.Join(dir, "rootfs.ubifs")
	mustRun(t, "mkfs.ubifs", "-m", "2048", "-e", "129024", "-c", "100", "-x", "zstd", "-r", root, "-o", ubifs)
	cfg := filepath.Join(dir, "ubinize.cfg")
	os.WriteFile(cfg, []byte("[rootfs]\nmode=ubi\nimage="+ubifs+"\nvol_id=0\nvol_type=dynamic\nvol_name=rootfs\nvol_flags=autoresize\n"), 0o644)
	ubiImg := filepath.Join(dir, "rootfs.ubi")
	mustRun(t, "ubinize", "-o", ubiImg, "-m", "2048", "-p", "128KiB", "-s", "512", cfg)
	ubifsData, _ := os.ReadFile(ubifs)
	ubiData, _ := os.ReadFile(ubiImg)

	key := installtest.NewKey(t)
	m := installtest.Manifest(
		bundle.Step{Type: bundle.StepImage, Target: "boot", Image: "boot"},
		bundle.Step{Type: bundle.StepImage, Target: "rootfs", Image: "rootfs"},
		bundle.Step{Type: bundle.StepImage, Target: "ubi", Image: "ubi"},
	)
	b := installtest.Bundle(t, key, m, cs,
		installtest.Image{Name: "boot", Data: raw},
		installtest.Image{Name: "rootfs", Data: ubifsData},
		installtest.Image{Name: "ubi", Data: ubiData})
	// The bundle that names a volume no one has, and the one that
	// updates "data" in place; its stream is cut in the middle of the
	// image's payload.
	ghostBundle := installtest.Bundle(t, key, installtest.Manifest(bundle.Step{Type: bundle.StepImage, Target: "ghost", Image: "ghost"}), cs,
		installtest.Image{Name: "ghost", Data: installtest.Data(23, cs, cs)})
	data := image(24, 700<<10)
	dataSum := sha256.Sum256(data)
	dataBundle := installtest.Bundle(t, key, installtest.Manifest(bundle.Step{Type: bundle.StepImage, Target: "data", Image: "data"}), cs,
		installtest.Image{Name: "data", Data: data})
	cut := len(dataBundle) - len(data)/2
	badBoard := strings.Replace(vmBoard, `{"mtd": "mtd2", "volume": "nosuch"}`, `{"mtd": "mtd1", "volume": "nosuch"}`, 1)
	extra := map[string][]byte{"bundle-ghost": ghostBundle, "bundle-data": dataBundle, "board-bad.json": []byte(badBoard)}
	files := []initramfs.File{{Src: filepath.Join(dir, "flash.bundle"), Dst: "bundle"}}
	for name, b := range extra {
		dst := name
		if strings.HasSuffix(name, ".json") {
			dst = "etc/lifeboat/" + name
		}
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		files = append(files, initramfs.File{Src: p, Dst: dst})
	}

	bundlePath := filepath.Join(dir, "flash.bundle")
	boardPath := filepath.Join(dir, "board.json")
	if err := os.WriteFile(bundlePath, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(boardPath, []byte(vmBoard), 0o644); err != nil {
		t.Fatal(err)
	}

	v := vm.BootGuest(t, vm.GuestOptions{
		Image: initramfs.Options{
			Init:         "./testdata/flashinit",
			Modules:      []string{"nandsim", "zstd", "ubi", "ubifs"},
			BoardProfile: boardPath,
			Keys:         []string{key.Dir},
			Files:        files,
		},
		Args: fmt.Sprintf("lifeboat.raw_size=%d lifeboat.data_cut=%d lifeboat.data_size=%d", len(raw), cut, len(data)),
		VM:   vm.Options{Memory: 512},
	})
	got := map[string]vmResult{}
	for _, r := range vm.GuestResults[vmResult](t, v, "flashtest", 3*time.Minute) {
		got[r.Step] = r
	}
	for _, step := range []string{"raw_size", "modprobe nandsim", "modprobe ubi", "modprobe zstd", "modprobe ubifs"} {
		if r, ok := got[step]; ok {
			t.Fatalf("%s: %s", step, r.Err)
		}
	}

	// The UBI image covers these PEBs of mtd2; block 2 is bad.
	pebs := len(ubiData) / (128 << 10)
	var prev []int64
	for round := 1; round <= 2; round++ {
		r := fmt.Sprintf("install %d", round)
		in, ok := got[r]
		if !ok || in.Code != 0 {
			t.Fatalf("%s: exit %d: %s", r, in.Code, in.Err)
		}
		t.Logf("MEASURE %s: %s; %q", r, in.Text, in.Notes)
		wantRaw := "1: 13 erase blocks written, 0 unchanged, 1 bad passed over, 0 marked bad"
		if round == 2 {
			wantRaw = "1: 0 erase blocks written, 13 unchanged, 1 bad passed over, 0 marked bad"
		}
		if len(in.Notes) != 3 || in.Notes[0] != wantRaw {
			t.Errorf("%s: step notes %q, want 3, the first %q", r, in.Notes, wantRaw)
		}
		if x := got[r+" raw"]; x.Err != "" || x.SHA256 != hex.EncodeToString(rawSum[:]) {
			t.Errorf("%s: raw partition sha256 %s (%s), want %x", r, x.SHA256, x.Err, rawSum)
		}
		for _, s := range []string{" volume", " image"} {
			if x := got[r+s]; x.Err != "" || x.Text != hello {
				t.Errorf("%s%s: hello.txt %q, %s; want %q", r, s, x.Text, x.Err, hello)
			}
		}
		ecs := got[r+" ecs"]
		if ecs.Err != "" || len(ecs.ECs) != 128 {
			t.Fatalf("%s ecs: %d counters, %s", r, len(ecs.ECs), ecs.Err)
		}
		// Every good PEB has an EC header after the first install (0 on
		// blank flash), and the second install counts each PEB's erase
		// on top of what was there (UBI may have erased some between).
		for i, ec := range ecs.ECs {
			want := int64(0)
			if round == 2 {
				want = prev[i] + 1
			}
			if i == 2 {
				want = -1
			}
			if (i == 2 && ec != -1) || (i != 2 && ec < want) || (round == 1 && ec != want) {
				t.Errorf("%s: PEB %d of mtd2 has erase counter %d, want %d (image of %d PEBs)", r, i, ec, want, pebs)
				break
			}
		}
		prev = ecs.ECs
	}
	if r := got["verify"]; r.Code != 0 || !strings.Contains(r.Text, "matches the bundle") {
		t.Errorf("lifeboat verify: exit %d, %q, %s; want a match", r.Code, r.Text, r.Err)
	}

	// A volume the profile's layout does not have: the profile is
	// refused. One the device does not have: the plan is refused.
	if r := got["ghost profile"]; r.Code == 0 || !strings.Contains(r.Err, `volume "nosuch" is not in the ubi layout`) {
		t.Errorf("ghost profile: exit %d, %q; want the profile refused", r.Code, r.Err)
	}
	if r := got["ghost device"]; r.Code != exitcode.NoTarget || !strings.Contains(r.Err, `no UBI volume "nosuch"`) {
		t.Errorf("ghost device: exit %d, %q; want exit %d, no UBI volume \"nosuch\"", r.Code, r.Err, exitcode.NoTarget)
	}
	if r := got["ghost untouched"]; r.Err != "" || r.Text == "" || r.Text != r.After {
		t.Errorf("ghost untouched: %s; flash before:\n%s\nafter:\n%s", r.Err, r.Text, r.After)
	}

	// The cut stream leaves "data" marked; the second install repairs
	// it.
	if r := got["interrupted"]; r.Code != exitcode.Truncated || r.Corrupted == nil || !*r.Corrupted {
		t.Errorf("interrupted: exit %d (%s), volume marked %v (%s); want exit %d and the volume marked", r.Code, r.Err, fmtBool(r.Corrupted), r.Text, exitcode.Truncated)
	} else {
		t.Logf("interrupted: exit %d: %s", r.Code, r.Err)
	}
	if r := got["repaired"]; r.Code != 0 || r.Corrupted == nil || *r.Corrupted || r.SHA256 != hex.EncodeToString(dataSum[:]) {
		t.Errorf("repaired: exit %d (%s), volume marked %v, sha256 %s (%s); want exit 0, unmarked, %x", r.Code, r.Err, fmtBool(r.Corrupted), r.SHA256, r.Text, dataSum)
	}
}

func fmtBool(b *bool) string {
	if b == nil {
		return "(no volume)"
	}
	return fmt.Sprint(*b)
}

// image returns n random bytes.
func image(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func mustRun(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v: %s", name, err, out)
	}
}
