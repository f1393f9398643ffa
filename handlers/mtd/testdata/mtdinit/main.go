// Command mtdinit is the PID 1 of package mtd's VM test. On the rescue
// platform it writes the image found on /dev/vda (lifeboat.img_size bytes)
// to real MTD devices and prints one JSON line per step, "mtdtest: {...}",
// then "mtdtest: done", and powers off:
//
//   - nandsim (256 MiB NAND, 128 KiB blocks, 2 KiB pages) with factory bad
//     blocks 3 and 7, block 10 failing its first erase and page 769 (block
//     12) failing its first program: a budget that is too small, a region
//     that is too small, the write, a read-back, a second write that
//     changes nothing;
//   - block2mtd over /dev/vdb, found by its MTD name, written at its second
//     erase block; the test checks the host file afterwards.
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

const nandsimParams = "id_bytes=0x20,0xaa,0x00,0x15 badblocks=3,7 weakblocks=10:0 weakpages=769:0"

func main() {
	rescue.Run(rescue.Config{Flow: flow})
}

type result struct {
	Step   string        `json:"step"`
	Err    string        `json:"err,omitempty"`
	Is     string        `json:"is,omitempty"` // the sentinel error matched
	Stats  *mtd.Stats    `json:"stats,omitempty"`
	Info   *mtd.Info     `json:"info,omitempty"`
	SHA256 string        `json:"sha256,omitempty"`
	Path   string        `json:"path,omitempty"`
	ECC    *mtd.ECCStats `json:"ecc,omitempty"`
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
	env.Log.Printf("mtdtest: %s", b)
	env.Alive()
}

func flow(ctx context.Context, env *rescue.Env) error {
	size, err := strconv.ParseInt(env.Params["img_size"], 10, 64)
	if err != nil {
		env.Log.Printf("mtdtest: lifeboat.img_size: %v", err)
		return env.PowerOff()
	}
	for _, dev := range []string{"/dev/vda", "/dev/vdb"} {
		waitFor(env, dev)
	}
	img, err := os.Open("/dev/vda")
	if err != nil {
		env.Log.Printf("mtdtest: %v", err)
		return env.PowerOff()
	}
	defer img.Close()
	image := func() io.Reader { return io.NewSectionReader(img, 0, size) }

	if err := kmodule.Probe("nandsim", nandsimParams); err != nil {
		report(env, result{Step: "modprobe nandsim"}, err)
	}
	nand(env, image, size)

	if err := kmodule.Probe("block2mtd", "block2mtd=/dev/vdb,65536"); err != nil {
		report(env, result{Step: "modprobe block2mtd"}, err)
	}
	nor(env, image, size)

	env.Log.Printf("mtdtest: done")
	unix.Sync()
	return env.PowerOff()
}

func nand(env *rescue.Env, image func() io.Reader, size int64) {
	d, err := mtd.Open("mtd0", true)
	if err != nil {
		report(env, result{Step: "nand open"}, err)
		return
	}
	defer d.Close()
	info := d.Info()
	report(env, result{Step: "nand info", Info: &info, Path: d.Path()}, nil)
	es := info.EraseSize
	region := 24 * es

	_, err = mtd.WriteImage(d, image(), mtd.Options{Length: region, Size: size, MaxBad: 1})
	report(env, result{Step: "nand budget"}, err)
	_, err = mtd.WriteImage(d, image(), mtd.Options{Length: 18 * es, Size: size})
	report(env, result{Step: "nand too small"}, err)

	start := time.Now()
	st, err := mtd.WriteImage(d, image(), mtd.Options{Length: region, Size: size})
	report(env, result{Step: "nand write", Stats: &st}, err)
	env.Log.Printf("mtdtest: nand write took %v", time.Since(start).Round(time.Millisecond))

	sum, err := readBack(d, size, region)
	report(env, result{Step: "nand readback", SHA256: sum}, err)

	start = time.Now()
	st, err = mtd.WriteImage(d, image(), mtd.Options{Length: region, Size: size})
	report(env, result{Step: "nand rewrite", Stats: &st}, err)
	env.Log.Printf("mtdtest: nand unchanged rewrite took %v", time.Since(start).Round(time.Millisecond))

	ecc, err := d.ECCStats()
	report(env, result{Step: "nand ecc", ECC: &ecc}, err)

	ro, err := mtd.Open("mtd0", false)
	if err == nil {
		_, err = mtd.NewWriter(ro, mtd.Options{})
		ro.Close()
	}
	report(env, result{Step: "nand read-only"}, err)
}

// readBack hashes the image's bytes as they sit in the region's good
// blocks.
func readBack(d *mtd.Dev, size, region int64) (string, error) {
	es := d.Info().EraseSize
	h := sha256.New()
	buf := make([]byte, es)
	left := size
	for off := int64(0); left > 0 && off < region; off += es {
		bad, err := d.IsBad(off)
		if err != nil {
			return "", err
		}
		if bad {
			continue
		}
		if _, err := d.ReadAt(buf, off); err != nil {
			return "", err
		}
		k := min(left, es)
		h.Write(buf[:k])
		left -= k
	}
	if left > 0 {
		return "", fmt.Errorf("region ended with %d bytes left", left)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func nor(env *rescue.Env, image func() io.Reader, size int64) {
	path, err := mtd.Lookup("block2mtd: /dev/vdb")
	if err != nil {
		report(env, result{Step: "nor lookup"}, err)
		return
	}
	d, err := mtd.Open(path, true)
	if err != nil {
		report(env, result{Step: "nor open", Path: path}, err)
		return
	}
	info := d.Info()
	report(env, result{Step: "nor info", Info: &info, Path: path}, nil)
	start := time.Now()
	st, err := mtd.WriteImage(d, image(), mtd.Options{Offset: info.EraseSize, Size: size})
	report(env, result{Step: "nor write", Stats: &st}, err)
	env.Log.Printf("mtdtest: nor write took %v", time.Since(start).Round(time.Millisecond))
	_, err = mtd.WriteImage(d, image(), mtd.Options{Offset: info.EraseSize + 512})
	report(env, result{Step: "nor unaligned"}, err)
	// Closing the MTD device syncs block2mtd's page cache to the disk.
	report(env, result{Step: "nor close"}, d.Close())
}

func waitFor(env *rescue.Env, path string) {
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
		if _, err := os.Stat(path); err == nil {
			return
		}
		env.Alive()
		time.Sleep(50 * time.Millisecond)
	}
	env.Log.Printf("mtdtest: %s did not appear", path)
}
