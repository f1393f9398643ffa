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
	"io"
	"time"

	"github.com/lifeboat-updater/lifeboat/handlers/mtd"
	"github.com/lifeboat-updater/lifeboat/internal/vm/guest"
)

const nandsimParams = "id_bytes=0x20,0xaa,0x00,0x15 badblocks=3,7 weakblocks=10:0 weakpages=769:0"

func main() {
	guest.Run("mtdtest", run, sentinels...)
}

type result struct {
	Step   string        `json:"step"`
	Stats  *mtd.Stats    `json:"stats,omitempty"`
	Info   *mtd.Info     `json:"info,omitempty"`
	SHA256 string        `json:"sha256,omitempty"`
	Path   string        `json:"path,omitempty"`
	ECC    *mtd.ECCStats `json:"ecc,omitempty"`
}

var sentinels = []error{mtd.ErrNoSpace, mtd.ErrTooManyBad, mtd.ErrReadOnly, mtd.ErrUnaligned, mtd.ErrNotFound, mtd.ErrVerify}

func run(g *guest.Guest) {
	img, size, err := g.Disk("/dev/vda", "img_size")
	if err != nil {
		g.Report(result{Step: "open image"}, err)
		return
	}
	// block2mtd needs the disk before it loads.
	g.WaitFor("/dev/vdb")
	defer img.Close()
	image := func() io.Reader { return io.NewSectionReader(img, 0, size) }

	if err := g.Modprobe("nandsim", nandsimParams); err != nil {
		g.Report(result{Step: "modprobe nandsim"}, err)
	}
	nand(g, image, size)

	if err := g.Modprobe("block2mtd", "block2mtd=/dev/vdb,65536"); err != nil {
		g.Report(result{Step: "modprobe block2mtd"}, err)
	}
	nor(g, image, size)
}

func nand(g *guest.Guest, image func() io.Reader, size int64) {
	d, err := mtd.Open("mtd0", true)
	if err != nil {
		g.Report(result{Step: "nand open"}, err)
		return
	}
	defer d.Close()
	info := d.Info()
	g.Report(result{Step: "nand info", Info: &info, Path: d.Path()}, nil)
	es := info.EraseSize
	region := 24 * es

	_, err = mtd.WriteImage(d, image(), mtd.Options{Length: region, Size: size, MaxBad: 1})
	g.Report(result{Step: "nand budget"}, err)
	_, err = mtd.WriteImage(d, image(), mtd.Options{Length: 18 * es, Size: size})
	g.Report(result{Step: "nand too small"}, err)

	start := time.Now()
	st, err := mtd.WriteImage(d, image(), mtd.Options{Length: region, Size: size})
	g.Report(result{Step: "nand write", Stats: &st}, err)
	g.Printf("nand write took %v", guest.Took(start))

	sum, err := guest.GoodBlocksSHA256(d, size, region)
	g.Report(result{Step: "nand readback", SHA256: sum}, err)

	start = time.Now()
	st, err = mtd.WriteImage(d, image(), mtd.Options{Length: region, Size: size})
	g.Report(result{Step: "nand rewrite", Stats: &st}, err)
	g.Printf("nand unchanged rewrite took %v", guest.Took(start))

	ecc, err := d.ECCStats()
	g.Report(result{Step: "nand ecc", ECC: &ecc}, err)

	ro, err := mtd.Open("mtd0", false)
	if err == nil {
		_, err = mtd.NewWriter(ro, mtd.Options{})
		ro.Close()
	}
	g.Report(result{Step: "nand read-only"}, err)
}

func nor(g *guest.Guest, image func() io.Reader, size int64) {
	path, err := mtd.Lookup("block2mtd: /dev/vdb")
	if err != nil {
		g.Report(result{Step: "nor lookup"}, err)
		return
	}
	d, err := mtd.Open(path, true)
	if err != nil {
		g.Report(result{Step: "nor open", Path: path}, err)
		return
	}
	info := d.Info()
	g.Report(result{Step: "nor info", Info: &info, Path: path}, nil)
	start := time.Now()
	st, err := mtd.WriteImage(d, image(), mtd.Options{Offset: info.EraseSize, Size: size})
	g.Report(result{Step: "nor write", Stats: &st}, err)
	g.Printf("nor write took %v", guest.Took(start))
	_, err = mtd.WriteImage(d, image(), mtd.Options{Offset: info.EraseSize + 512})
	g.Report(result{Step: "nor unaligned"}, err)
	// Closing the MTD device syncs block2mtd's page cache to the disk.
	g.Report(result{Step: "nor close"}, d.Close())
}
