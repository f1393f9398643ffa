package install_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lifeboat-updater/lifeboat/bundle"
	"github.com/lifeboat-updater/lifeboat/initramfs"
	"github.com/lifeboat-updater/lifeboat/install/installtest"
	"github.com/lifeboat-updater/lifeboat/internal/vm"
)

// powerCutBoard updates the UBI volume "rootfs" in place, on flash that
// block2mtd makes of the first virtio disk.
const powerCutBoard = `{
  "name": "test-board",
  "modules": ["virtio_pci", "virtio_blk", "zstd", "ubi", "ubifs"],
  "targets": {
    "rootfs": {"ubi": {"mtd": "block2mtd: /dev/vda", "volume": "rootfs"}}
  },
  "ubi": {
    "block2mtd: /dev/vda": {"volumes": [{"name": "rootfs", "id": 0, "size": 8388608}]}
  }
}`

// TestVMFlashPowerCut cuts the power in the middle of a UBI volume update
// and installs again: the first boot of testdata/powercutinit runs
// `lifeboat install` from a stream that stops in the middle of the
// volume's image, and the test kills QEMU (the flash is block2mtd over a
// host file, which keeps what was written). The second boot finds the
// volume marked as interrupted, installs the whole bundle, and the volume
// holds the image, unmarked, and mounts. `go test -short` skips it.
func TestVMFlashPowerCut(t *testing.T) {
	if testing.Short() {
		t.Skip("boots QEMU; skipped with -short")
	}
	if _, err := exec.LookPath("mkfs.ubifs"); err != nil {
		t.Skipf("mkfs.ubifs not installed (Debian package mtd-utils): %v", err)
	}
	dir := t.TempDir()

	// A UBIFS for UBI on block2mtd: 8-byte writes (UBIFS's least), 128
	// KiB eraseblocks less two 64-byte headers.
	root := filepath.Join(dir, "root")
	os.MkdirAll(root, 0o755)
	hello := "hello after a power cut\n"
	if err := os.WriteFile(filepath.Join(root, "hello.txt"), []byte(hello), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "filler.bin"), image(31, 2<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	ubifs := filepath.Join(dir, "rootfs.ubifs")
	mustRun(t, "mkfs.ubifs", "-m", "8", "-e", "130944", "-c", "60", "-x", "none", "-r", root, "-o", ubifs)
	img, err := os.ReadFile(ubifs)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(img)

	key := installtest.NewKey(t)
	const cs = bundle.MinChunkSize
	b := installtest.Bundle(t, key, installtest.Manifest(bundle.Step{Type: bundle.StepImage, Target: "rootfs", Image: "rootfs"}), cs,
		installtest.Image{Name: "rootfs", Data: img})
	// The payload ends with filler.bin's 2 MiB, random, stored as is:
	// the cut falls in their middle.
	cut := len(b) - 1<<20
	bundlePath, boardPath := filepath.Join(dir, "rootfs.bundle"), filepath.Join(dir, "board.json")
	if err := os.WriteFile(bundlePath, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(boardPath, []byte(powerCutBoard), 0o644); err != nil {
		t.Fatal(err)
	}
	// The flash: 32 MiB, blank.
	flash := filepath.Join(dir, "flash.img")
	if err := os.WriteFile(flash, bytes.Repeat([]byte{0xFF}, 32<<20), 0o644); err != nil {
		t.Fatal(err)
	}

	g := vm.BuildGuest(t, vm.GuestOptions{Image: initramfs.Options{
		Init:         "./testdata/powercutinit",
		Modules:      []string{"virtio_pci", "virtio_blk", "block2mtd", "zstd", "ubi", "ubifs"},
		BoardProfile: boardPath,
		Keys:         []string{key.Dir},
		Files:        []initramfs.File{{Src: bundlePath, Dst: "bundle"}},
	}})
	logs := os.Getenv("LIFEBOAT_VM_LOGS")
	if logs == "" {
		logs = t.TempDir()
	}
	boot := func(phase string) *vm.VM {
		return g.Boot(t, fmt.Sprintf("lifeboat.phase=%s lifeboat.cut=%d lifeboat.size=%d", phase, cut, len(img)), vm.Options{
			// One console log per boot.
			ConsoleFile: filepath.Join(logs, t.Name()+"-"+phase+".console.log"),
			Drives:      []vm.Drive{{Path: flash}},
		})
	}

	v := boot("cut")
	if err := v.ExpectString("powercut: cut", 2*time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := v.Kill(); err != nil {
		t.Fatalf("pulling the power: %v", err)
	}
	if strings.Contains(v.Console(), `"step":"install returned"`) {
		t.Fatalf("the install returned before the power cut:\n%s", v.Console())
	}

	v = boot("repair")
	got := map[string]vmResult{}
	for _, r := range vm.GuestResults[vmResult](t, v, "powercut", 2*time.Minute) {
		got[r.Step] = r
	}
	for _, step := range []string{"size", "modprobe block2mtd", "attach"} {
		if r, ok := got[step]; ok {
			t.Fatalf("%s: %s", step, r.Err)
		}
	}
	if r := got["after the cut"]; r.Corrupted == nil || !*r.Corrupted {
		t.Errorf("after the cut: volume marked %s (%s), want it marked as interrupted", fmtBool(r.Corrupted), r.Text)
	}
	if r := got["repaired"]; r.Code != 0 || r.Corrupted == nil || *r.Corrupted || r.SHA256 != hex.EncodeToString(sum[:]) {
		t.Errorf("repaired: exit %d (%s), volume marked %s, sha256 %s (%s); want exit 0, unmarked, %x", r.Code, r.Err, fmtBool(r.Corrupted), r.SHA256, r.Text, sum)
	}
	if r := got["mount"]; r.Err != "" || r.Text != hello {
		t.Errorf("mount: hello.txt %q, %s; want %q", r.Text, r.Err, hello)
	}
}
