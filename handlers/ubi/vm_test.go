package ubi_test

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/lifeboat-updater/lifeboat/handlers/ubi"
	"github.com/lifeboat-updater/lifeboat/initramfs"
	"github.com/lifeboat-updater/lifeboat/internal/vm"
)

type vmResult struct {
	Step    string           `json:"step"`
	Err     string           `json:"err"`
	Is      string           `json:"is"`
	Ops     []string         `json:"ops"`
	Volumes []ubi.Volume     `json:"volumes"`
	Info    *ubi.DeviceInfo  `json:"info"`
	Text    string           `json:"text"`
	SHA256  string           `json:"sha256"`
	Format  *ubi.FormatStats `json:"format"`
	MinEC   int64            `json:"min_ec"`
	MaxEC   int64            `json:"max_ec"`
}

// ubiModules are what the UBI guests load: nandsim, UBI, and UBIFS with
// the zstd it needs.
var ubiModules = []string{"virtio_pci", "virtio_blk", "nandsim", "zstd", "ubi", "ubifs"}

// bootFlash builds an image with init as PID 1 and the flash modules,
// boots it with the disks, waits for "<prefix>: done" and returns the
// JSON lines "<prefix>: {...}" by step.
func bootFlash(t *testing.T, init, prefix, appendArgs string, drives []vm.Drive) map[string]vmResult {
	t.Helper()
	v := vm.BootGuest(t, vm.GuestOptions{
		Image: initramfs.Options{Init: init, Modules: ubiModules, BoardProfile: filepath.Join("testdata", "board.json")},
		Args:  appendArgs,
		VM:    vm.Options{Drives: drives},
	})
	got := map[string]vmResult{}
	for _, r := range vm.GuestResults[vmResult](t, v, prefix, 4*time.Minute) {
		got[r.Step] = r
	}
	return got
}

// ubifsImage makes a UBIFS image with mkfs.ubifs (mtd-utils) for nandsim's
// geometry: 2 KiB pages, 128 KiB PEBs with 512-byte subpages, so the
// VID header shares the first page and LEBs have 129024 bytes.
func ubifsImage(t *testing.T, dir string) (path, hello, bigSum string) {
	t.Helper()
	if _, err := exec.LookPath("mkfs.ubifs"); err != nil {
		t.Skipf("mkfs.ubifs not installed (Debian package mtd-utils): %v", err)
	}
	root := filepath.Join(dir, "root")
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	hello = "hello from a swapped-in UBIFS\n"
	big := make([]byte, 1<<20)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range big {
		big[i] = byte(r.Uint32())
	}
	if err := os.WriteFile(filepath.Join(root, "hello.txt"), []byte(hello), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "big.bin"), big, 0o644); err != nil {
		t.Fatal(err)
	}
	path = filepath.Join(dir, "rootfs.ubifs")
	out, err := exec.Command("mkfs.ubifs", "-m", "2048", "-e", "129024", "-c", "100", "-x", "zstd", "-r", root, "-o", path).CombinedOutput()
	if err != nil {
		t.Fatalf("mkfs.ubifs: %v: %s", err, out)
	}
	s := sha256.Sum256(big)
	return path, hello, hex.EncodeToString(s[:])
}

// TestVMUBI boots the pinned Debian kernel in QEMU with testdata/ubiinit
// as PID 1: attach UBI on nandsim, change the volume layout, swap a
// host-made UBIFS image into "rootfs" twice and mount it, update a static
// volume. `go test -short` skips it.
func TestVMUBI(t *testing.T) {
	if testing.Short() {
		t.Skip("boots QEMU; skipped with -short")
	}
	dir := t.TempDir()
	img, hello, bigSum := ubifsImage(t, dir)
	fi, err := os.Stat(img)
	if err != nil {
		t.Fatal(err)
	}
	size := fi.Size()
	ubiImg, ubiSize := ubinize(t, dir, img)
	if err := os.Truncate(img, (size+511)/512*512); err != nil {
		t.Fatal(err)
	}
	got := bootFlash(t, "./testdata/ubiinit", "ubitest", fmt.Sprintf("lifeboat.img_size=%d lifeboat.ubi_size=%d", size, ubiSize),
		[]vm.Drive{{Path: img, ReadOnly: true}, {Path: ubiImg, ReadOnly: true}})
	for _, step := range []string{"img_size", "open image", "modprobe nandsim", "attach", "open", "blob"} {
		if r, ok := got[step]; ok {
			t.Fatalf("%s: %s", step, r.Err)
		}
	}
	if r := got["info"]; r.Info == nil || r.Info.LEBSize != 129024 || r.Info.BadPEBs != 1 {
		t.Errorf("info: %+v, want 129024-byte LEBs and 1 bad PEB", r.Info)
	}
	wantOps := map[string][]string{
		"layout create": {
			`create static volume 0 "kernel" of 1048576 bytes`,
			`create dynamic volume 1 "rootfs" of 8388608 bytes`,
			`create dynamic volume 2 "data" of 4194304 bytes`,
		},
		"layout again": nil,
		"layout change": {
			`remove volume 0 "kernel"`,
			`rename volume 2 to "appdata"`,
			`shrink volume 1 "rootfs" to 6291456 bytes`,
			`create static volume auto "blob" of 1048576 bytes`,
		},
	}
	for step, want := range wantOps {
		r := got[step]
		if r.Err != "" {
			t.Errorf("%s: %s", step, r.Err)
		}
		if d := cmp.Diff(want, r.Ops); d != "" {
			t.Errorf("%s: ops (-want +got):\n%s", step, d)
		}
	}
	names := func(vs []ubi.Volume) map[string]int {
		m := map[string]int{}
		for _, v := range vs {
			m[v.Name] = v.ID
		}
		return m
	}
	if d := cmp.Diff(map[string]int{"appdata": 2, "rootfs": 1, "blob": 0}, names(got["layout change"].Volumes)); d != "" {
		t.Errorf("volumes after the layout change (-want +got):\n%s", d)
	}
	if r := got["layout too big"]; r.Is != ubi.ErrNoSpace.Error() {
		t.Errorf("layout too big: %q, want %v", r.Err, ubi.ErrNoSpace)
	}
	// blob took ID 0, so the spare is 3; each swap flips the names.
	for step, want := range map[string]map[string]int{
		"swap 1": {"appdata": 2, "blob": 0, "rootfs": 3, "rootfs_b": 1},
		"swap 2": {"appdata": 2, "blob": 0, "rootfs": 1, "rootfs_b": 3},
	} {
		r := got[step]
		if r.Err != "" {
			t.Errorf("%s: %s", step, r.Err)
			continue
		}
		t.Logf("MEASURE %s (%d bytes UBIFS, VOLUP + rename): %s", step, size, r.Text)
		if d := cmp.Diff(want, names(r.Volumes)); d != "" {
			t.Errorf("%s: volumes (-want +got):\n%s", step, d)
		}
		m := got[step+" mount"]
		if m.Err != "" || m.Text != hello || m.SHA256 != bigSum {
			t.Errorf("%s mount: hello.txt %q, big.bin sha256 %s, err %q; want %q, %s", step, m.Text, m.SHA256, m.Err, hello, bigSum)
		}
	}
	data := make([]byte, 300000)
	r := rand.New(rand.NewPCG(7, 7))
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	sum := sha256.Sum256(data)
	if r := got["static update"]; r.Err != "" || r.SHA256 != hex.EncodeToString(sum[:]) || len(r.Volumes) != 1 || r.Volumes[0].DataBytes != 300000 || r.Volumes[0].Corrupted {
		t.Errorf("static update: %+v, want 300000 bytes with sha256 %x", r, sum)
	}
	if r := got["short update"]; r.Is != ubi.ErrShortUpdate.Error() || len(r.Volumes) != 1 || !r.Volumes[0].Corrupted {
		t.Errorf("short update: %+v, want %v and the volume marked corrupted", r, ubi.ErrShortUpdate)
	}
	if r := got["detach"]; r.Err != "" {
		t.Errorf("detach: %s", r.Err)
	}

	// FormatImage on mtd1 (128 PEBs, blocks 4 bad and 14 failing its
	// first erase), three rounds.
	pebs := int(ubiSize / (128 << 10))
	for round := 1; round <= 3; round++ {
		step := fmt.Sprintf("format %d", round)
		r := got[step]
		if r.Err != "" || r.Format == nil {
			t.Errorf("%s: %q", step, r.Err)
			continue
		}
		st := r.Format
		t.Logf("MEASURE %s (%d PEBs of image, %d formatted): %s; erase counters %d-%d", step, st.Image.Blocks, st.Formatted, r.Text, r.MinEC, r.MaxEC)
		wantMarked, wantSkipped := 0, 2
		if round == 1 {
			wantMarked, wantSkipped = 1, 1
		}
		if st.Image.Blocks != pebs || st.Image.Written != pebs || st.Image.MarkedBad != wantMarked || st.Image.BadSkipped != wantSkipped ||
			st.Formatted != 128-2-pebs || st.Bad != 0 {
			t.Errorf("%s: stats %+v, want %d image PEBs, %d marked bad, %d skipped, %d formatted", step, st, pebs, wantMarked, wantSkipped, 128-2-pebs)
		}
		// Every PEB was erased once per round: no counter may fall behind.
		if r.MinEC < int64(round-1) {
			t.Errorf("%s: lowest erase counter %d, want at least %d: counters were lost", step, r.MinEC, round-1)
		}
		m := got[step+" mount"]
		if m.Err != "" || m.Text != hello || m.SHA256 != bigSum {
			t.Errorf("%s mount: hello.txt %q, big.bin sha256 %s, err %q; want %q, %s", step, m.Text, m.SHA256, m.Err, hello, bigSum)
		}
	}
}

// ubinize makes a UBI image (mtd-utils' ubinize) for nandsim's geometry
// holding the UBIFS image as the autoresized volume "rootfs".
func ubinize(t *testing.T, dir, ubifs string) (string, int64) {
	t.Helper()
	if _, err := exec.LookPath("ubinize"); err != nil {
		t.Skipf("ubinize not installed (Debian package mtd-utils): %v", err)
	}
	cfg := filepath.Join(dir, "ubinize.cfg")
	conf := "[rootfs]\nmode=ubi\nimage=" + ubifs + "\nvol_id=0\nvol_type=dynamic\nvol_name=rootfs\nvol_flags=autoresize\n"
	if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "rootfs.ubi")
	if b, err := exec.Command("ubinize", "-o", out, "-m", "2048", "-p", "128KiB", "-s", "512", cfg).CombinedOutput(); err != nil {
		t.Fatalf("ubinize: %v: %s", err, b)
	}
	fi, err := os.Stat(out)
	if err != nil {
		t.Fatal(err)
	}
	return out, fi.Size()
}
