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
	"fmt"
	"io"
	"time"

	"github.com/lifeboat-updater/lifeboat/handlers/mtd"
	"github.com/lifeboat-updater/lifeboat/internal/vm/guest"
)

func main() {
	guest.Run("mtdfault", run, sentinels...)
}

type result struct {
	Step   string        `json:"step"`
	Stats  *mtd.Stats    `json:"stats,omitempty"`
	Info   *mtd.Info     `json:"info,omitempty"`
	SHA256 string        `json:"sha256,omitempty"`
	Path   string        `json:"path,omitempty"`
	ECC    *mtd.ECCStats `json:"ecc,omitempty"`
	Text   string        `json:"text,omitempty"`
}

var sentinels = []error{mtd.ErrNoSpace, mtd.ErrTooManyBad, mtd.ErrReadOnly, mtd.ErrUnaligned, mtd.ErrNotFound, mtd.ErrVerify}

func run(g *guest.Guest) {
	img, size, err := g.Disk("/dev/vda", "img_size")
	if err != nil {
		g.Report(result{Step: "open image"}, err)
		return
	}
	defer img.Close()
	imageA := func() io.Reader { return io.NewSectionReader(img, 0, size) }
	imageB := func() io.Reader { return io.NewSectionReader(img, size, size) }

	if err := g.Modprobe("mtdram", "total_size=8192 erase_size=128"); err != nil {
		g.Report(result{Step: "modprobe mtdram"}, err)
		return
	}
	ram(g, imageA, imageB, size)

	// nandsim comes second: mtdram is mtd0.
	if err := g.Modprobe("nandsim", "id_bytes=0x20,0xaa,0x00,0x15 bitflips=1"); err != nil {
		g.Report(result{Step: "modprobe nandsim"}, err)
		return
	}
	nand(g, imageA, size)
}

func ram(g *guest.Guest, imageA, imageB func() io.Reader, size int64) {
	d, err := mtd.Open("mtd0", true)
	if err != nil {
		g.Report(result{Step: "ram open"}, err)
		return
	}
	defer d.Close()
	info := d.Info()
	g.Report(result{Step: "ram info", Info: &info, Path: d.Path()}, nil)
	for _, w := range []struct {
		step  string
		image func() io.Reader
	}{{"ram write A", imageA}, {"ram write A again", imageA}, {"ram write B", imageB}} {
		start := time.Now()
		st, err := mtd.WriteImage(d, w.image(), mtd.Options{Size: size})
		took := guest.Took(start)
		g.Report(result{Step: w.step, Stats: &st, Text: took}, err)
		sum, err := guest.SHA256(io.NewSectionReader(d, 0, size))
		g.Report(result{Step: w.step + " readback", SHA256: sum}, err)
	}
}

func nand(g *guest.Guest, imageA func() io.Reader, size int64) {
	d, err := mtd.Open("mtd1", true)
	if err != nil {
		g.Report(result{Step: "nand open"}, err)
		return
	}
	defer d.Close()
	info := d.Info()
	g.Report(result{Step: "nand info", Info: &info, Path: d.Path()}, nil)
	first, err := d.ECCStats()
	if err != nil {
		g.Report(result{Step: "nand ecc"}, err)
		return
	}
	// Bit flips are random: write until the ECC corrected some in two
	// rounds, at most 10 rounds.
	flipped := 0
	for round := 1; round <= 10 && flipped < 2; round++ {
		before, _ := d.ECCStats()
		start := time.Now()
		st, err := mtd.WriteImage(d, imageA(), mtd.Options{Size: size, MaxBad: -1})
		took := guest.Took(start)
		after, _ := d.ECCStats()
		ecc := mtd.ECCStats{Corrected: after.Corrected - before.Corrected, Failed: after.Failed - before.Failed, BadBlocks: after.BadBlocks}
		g.Report(result{Step: fmt.Sprintf("nand round %d", round), Stats: &st, ECC: &ecc, Text: took}, err)
		if err != nil {
			return
		}
		if ecc.Corrected > 0 {
			flipped++
		}
	}
	sum, err := guest.SHA256(io.NewSectionReader(d, 0, size))
	g.Report(result{Step: "nand readback", SHA256: sum}, err)
	last, err := d.ECCStats()
	total := mtd.ECCStats{Corrected: last.Corrected - first.Corrected, Failed: last.Failed - first.Failed, BadBlocks: last.BadBlocks}
	g.Report(result{Step: "nand ecc total", ECC: &total}, err)
}
