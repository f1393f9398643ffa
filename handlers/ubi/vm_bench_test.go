package ubi_test

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lifeboat-updater/lifeboat/initramfs"
	"github.com/lifeboat-updater/lifeboat/internal/vm"
)

// benchResult is a line testdata/benchinit prints.
type benchResult struct {
	Step    string  `json:"step"`
	Round   int     `json:"round"`
	Err     string  `json:"err"`
	Seconds float64 `json:"seconds"`
	Bytes   int64   `json:"bytes"`
	SHA256  string  `json:"sha256"`
	Text    string  `json:"text"`
}

// TestVMFlashBench measures, in one VM on nandsim, how fast package mtd's
// Writer and the VolumeWriter put an image on flash, next to mtd-utils'
// flash_erase + nandwrite and ubiupdatevol on the same image, and prints
// a table of MB/s (the best and the median of the rounds). It runs only
// with LIFEBOAT_BENCH=1 (bench/flash.sh sets it); LIFEBOAT_BENCH_MB sets
// the image's size (default 32) and LIFEBOAT_BENCH_ROUNDS the rounds
// (default 3).
func TestVMFlashBench(t *testing.T) {
	if testing.Short() || os.Getenv("LIFEBOAT_BENCH") == "" {
		t.Skip("a benchmark: set LIFEBOAT_BENCH=1 (bench/flash.sh)")
	}
	mb := envInt(t, "LIFEBOAT_BENCH_MB", 32)
	rounds := envInt(t, "LIFEBOAT_BENCH_ROUNDS", 3)
	var files []initramfs.File
	for _, tool := range []string{"flash_erase", "nandwrite", "ubiupdatevol"} {
		p, err := exec.LookPath(tool)
		if err != nil {
			t.Skipf("%s not installed (Debian package mtd-utils): %v", tool, err)
		}
		files = append(files, initramfs.File{Src: p, Dst: "usr/sbin/" + tool})
	}
	// The tools' shared libraries, as ldd lists them (libc and the
	// loader), at the paths the loader looks for them.
	for _, lib := range []string{"/lib64/ld-linux-x86-64.so.2", "/lib/x86_64-linux-gnu/libc.so.6"} {
		src, err := filepath.EvalSymlinks(lib)
		if err != nil {
			t.Skipf("%s: %v", lib, err)
		}
		files = append(files, initramfs.File{Src: src, Dst: strings.TrimPrefix(lib, "/")})
	}

	// With LIFEBOAT_BENCH_ICOUNT=1 the guest's clock counts the
	// instructions it runs (QEMU's -icount, 1 ns each), so the numbers
	// do not depend on what else the host runs: a busy host slows the
	// run down, not the time the guest measures.
	var icount []string
	clock := "QEMU TCG"
	if os.Getenv("LIFEBOAT_BENCH_ICOUNT") != "" {
		icount = []string{"-icount", "shift=0,sleep=off"}
		clock = "QEMU TCG with -icount shift=0 (guest time: 1 ns per instruction)"
	}
	dir := t.TempDir()
	size := mb << 20
	img := make([]byte, size)
	r := rand.New(rand.NewPCG(3, 3))
	for i := range img {
		img[i] = byte(r.Uint32())
	}
	sum := sha256.Sum256(img)
	imgPath := filepath.Join(dir, "image.img")
	if err := os.WriteFile(imgPath, img, 0o644); err != nil {
		t.Fatal(err)
	}
	v := vm.BootGuest(t, vm.GuestOptions{
		Image: initramfs.Options{
			Init:         "./testdata/benchinit",
			Modules:      ubiModules,
			BoardProfile: filepath.Join("testdata", "board.json"),
			Files:        files,
		},
		Args: fmt.Sprintf("lifeboat.img_size=%d lifeboat.rounds=%d", size, rounds),
		VM:   vm.Options{Memory: 256 + 2*mb, Drives: []vm.Drive{{Path: imgPath, ReadOnly: true}}, Extra: icount},
	})
	runs := map[string][]float64{}
	var order []string
	for _, r := range vm.GuestResults[benchResult](t, v, "flashbench", 40*time.Minute) {
		if r.Err != "" {
			t.Errorf("%s (round %d): %s", r.Step, r.Round, r.Err)
			continue
		}
		if strings.HasSuffix(r.Step, " content") {
			if r.SHA256 != hex.EncodeToString(sum[:]) {
				t.Errorf("%s (round %d): sha256 %s, want %x", r.Step, r.Round, r.SHA256, sum)
			}
			continue
		}
		if r.Seconds <= 0 {
			continue
		}
		if _, ok := runs[r.Step]; !ok {
			order = append(order, r.Step)
		}
		runs[r.Step] = append(runs[r.Step], float64(r.Bytes)/1e6/r.Seconds)
	}
	if len(order) == 0 {
		t.Fatal("no run reported")
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d MiB image on nandsim (2 KiB pages, 128 KiB blocks), %d rounds, %s\n", mb, rounds, clock)
	fmt.Fprintf(&b, "| write | best MB/s | median MB/s |\n|---|---|---|\n")
	for _, step := range order {
		xs := runs[step]
		sort.Float64s(xs)
		fmt.Fprintf(&b, "| %s | %.1f | %.1f |\n", step, xs[len(xs)-1], xs[len(xs)/2])
	}
	t.Logf("MEASURE flash throughput:\n%s", b.String())
}

func envInt(t *testing.T, name string, def int) int {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		t.Fatalf("%s=%q: want a positive number", name, s)
	}
	return n
}
