// Command faultinit is the PID 1 of package mtd's second VM test. On the
// rescue platform it writes the two images found one after the other on
// /dev/vda (lifeboat.img_size bytes each) to:
//
//   - mtdram (8 MiB of RAM flash, 128 KiB erase blocks, blank at load):
//     image A on blank flash (no erase needed), A again (nothing
//     written), then B, which shares A's first blocks;
//   - nandsim with bitflips=1 (a random bit flipped in about one page
//     read in 1024, which the ECC corrects): image A again and again
//     until the ECC has corrected bit flips in at least two rounds.
//
// It prints one JSON line per step, "mtdfault: {...}", then
// "mtdfault: done", and powers off.
package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/lifeboat-updater/lifeboat/handlers/mtd"
	"github.com/lifeboat-updater/lifeboat/rescue"
	"github.com/u-root/u-root/pkg/kmodule"
	"golang.org/x/sys/unix"
)

func main() {
	rescue.Run(rescue.Config{Flow: flow})
}

type result struct {
	Step   string        `json:"step"`
	Err    string        `json:"err,omitempty"`
	Is     string        `json:"is,omitempty"`
	Stats  *mtd.Stats    `json:"stats,omitempty"`
	Info   *mtd.Info     `json:"info,omitempty"`
	SHA256 string        `json:"sha256,omitempty"`
	Path   string        `json:"path,omitempty"`
	ECC    *mtd.ECCStats `json:"ecc,omitempty"`
	Text   string        `json:"text,omitempty"`
}

var sentinels = []error{mtd.ErrNoSpace, mtd.ErrTooManyBad, mtd.ErrReadOnly, mtd.ErrUnaligned, mtd.ErrNotFound, mtd.ErrVerify}

func report(env *rescue.Env, r result, err error) {
	if err != nil {
		r.Err = err.Error()
		for _, s := range sentinels {
			if errors.Is(err, s) {
				r.Is = s.Error()
			}
		}
	}
	b, _ := json.Marshal(r)
	env.Log.Printf("mtdfault: %s", b)
	env.Alive()
}

func flow(ctx context.Context, env *rescue.Env) error {
	run(env)
	env.Log.Printf("mtdfault: done")
	unix.Sync()
	return env.PowerOff()
}

func run(env *rescue.Env) {
	size, err := strconv.ParseInt(env.Params["img_size"], 10, 64)
	if err != nil {
		report(env, result{Step: "img_size"}, err)
		return
	}
	waitFor(env, "/dev/vda")
	img, err := os.Open("/dev/vda")
	if err != nil {
		report(env, result{Step: "open image"}, err)
		return
	}
	defer img.Close()
	imageA := func() io.Reader { return io.NewSectionReader(img, 0, size) }
	imageB := func() io.Reader { return io.NewSectionReader(img, size, size) }

	if err := kmodule.Probe("mtdram", "total_size=8192 erase_size=128"); err != nil {
		report(env, result{Step: "modprobe mtdram"}, err)
		return
	}
	ram(env, imageA, imageB, size)

	// nandsim comes second: mtdram is mtd0.
	if err := kmodule.Probe("nandsim", "id_bytes=0x20,0xaa,0x00,0x15 bitflips=1"); err != nil {
		report(env, result{Step: "modprobe nandsim"}, err)
		return
	}
	nand(env, imageA, size)
}

func ram(env *rescue.Env, imageA, imageB func() io.Reader, size int64) {
	d, err := mtd.Open("mtd0", true)
	if err != nil {
		report(env, result{Step: "ram open"}, err)
		return
	}
	defer d.Close()
	info := d.Info()
	report(env, result{Step: "ram info", Info: &info, Path: d.Path()}, nil)
	for _, w := range []struct {
		step  string
		image func() io.Reader
	}{{"ram write A", imageA}, {"ram write A again", imageA}, {"ram write B", imageB}} {
		start := time.Now()
		st, err := mtd.WriteImage(d, w.image(), mtd.Options{Size: size})
		took := time.Since(start).Round(time.Millisecond).String()
		report(env, result{Step: w.step, Stats: &st, Text: took}, err)
		sum, err := hashRegion(d, size)
		report(env, result{Step: w.step + " readback", SHA256: sum}, err)
	}
}

func nand(env *rescue.Env, imageA func() io.Reader, size int64) {
	d, err := mtd.Open("mtd1", true)
	if err != nil {
		report(env, result{Step: "nand open"}, err)
		return
	}
	defer d.Close()
	info := d.Info()
	report(env, result{Step: "nand info", Info: &info, Path: d.Path()}, nil)
	first, err := d.ECCStats()
	if err != nil {
		report(env, result{Step: "nand ecc"}, err)
		return
	}
	// Bit flips are random: write until the ECC corrected some in two
	// rounds, at most 10 rounds.
	flipped := 0
	for round := 1; round <= 10 && flipped < 2; round++ {
		before, _ := d.ECCStats()
		start := time.Now()
		st, err := mtd.WriteImage(d, imageA(), mtd.Options{Size: size, MaxBad: -1})
		took := time.Since(start).Round(time.Millisecond).String()
		after, _ := d.ECCStats()
		ecc := mtd.ECCStats{Corrected: after.Corrected - before.Corrected, Failed: after.Failed - before.Failed, BadBlocks: after.BadBlocks}
		report(env, result{Step: fmt.Sprintf("nand round %d", round), Stats: &st, ECC: &ecc, Text: took}, err)
		if err != nil {
			return
		}
		if ecc.Corrected > 0 {
			flipped++
		}
	}
	sum, err := hashRegion(d, size)
	report(env, result{Step: "nand readback", SHA256: sum}, err)
	last, err := d.ECCStats()
	total := mtd.ECCStats{Corrected: last.Corrected - first.Corrected, Failed: last.Failed - first.Failed, BadBlocks: last.BadBlocks}
	report(env, result{Step: "nand ecc total", ECC: &total}, err)
}

// hashRegion hashes the first size bytes of the device (no bad blocks:
// the NAND run allows none).
func hashRegion(d *mtd.Dev, size int64) (string, error) {
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(d, 0, size)); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func waitFor(env *rescue.Env, path string) {
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
		if _, err := os.Stat(path); err == nil {
			return
		}
		env.Alive()
		time.Sleep(50 * time.Millisecond)
	}
	env.Log.Printf("mtdfault: %s did not appear", path)
}
