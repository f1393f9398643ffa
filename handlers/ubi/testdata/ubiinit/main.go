// Command ubiinit is the PID 1 of package ubi's VM test. On the rescue
// platform, on nandsim's first partition (256 blocks of 128 KiB, block 5
// bad), it attaches UBI, changes the volume layout, swaps the UBIFS image
// found on /dev/vda (lifeboat.img_size bytes) into the volume "rootfs",
// mounts it and reads its files, swaps it in once more, updates a static
// volume (and interrupts an update), and detaches. It prints one JSON line
// per step, "ubitest: {...}", then "ubitest: done", and powers off.
package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"

	"github.com/lifeboat-updater/lifeboat/handlers/mtd"
	"github.com/lifeboat-updater/lifeboat/handlers/ubi"
	"github.com/lifeboat-updater/lifeboat/internal/vm/guest"
)

// Blocks 260 and 270 are blocks 4 and 14 of mtd1 (parts=256,128).
const nandsimParams = "id_bytes=0x20,0xaa,0x00,0x15 badblocks=5,260 weakblocks=270:0 parts=256,128"

func main() {
	guest.Run("ubitest", run, sentinels...)
}

type result struct {
	Step    string           `json:"step"`
	Ops     []string         `json:"ops,omitempty"`
	Volumes []ubi.Volume     `json:"volumes,omitempty"`
	Info    *ubi.DeviceInfo  `json:"info,omitempty"`
	Text    string           `json:"text,omitempty"`
	SHA256  string           `json:"sha256,omitempty"`
	Format  *ubi.FormatStats `json:"format,omitempty"`
	MinEC   int64            `json:"min_ec,omitempty"`
	MaxEC   int64            `json:"max_ec,omitempty"`
}

var sentinels = []error{ubi.ErrNotFound, ubi.ErrLayout, ubi.ErrNoSpace, ubi.ErrShortUpdate}

func opStrings(ops []ubi.Op) []string {
	s := []string{}
	for _, o := range ops {
		s = append(s, o.String())
	}
	return s
}

func run(g *guest.Guest) {
	img, size, err := g.Disk("/dev/vda", "img_size")
	if err != nil {
		g.Report(result{Step: "open image"}, err)
		return
	}
	defer img.Close()
	image := func() io.Reader { return io.NewSectionReader(img, 0, size) }

	if err := g.Modprobe("nandsim", nandsimParams); err != nil {
		g.Report(result{Step: "modprobe nandsim"}, err)
		return
	}
	start := time.Now()
	num, err := ubi.AttachMTD(0, ubi.AttachOptions{})
	if err != nil {
		g.Report(result{Step: "attach"}, err)
		return
	}
	g.Printf("attach took %v", guest.Took(start))
	d, err := ubi.OpenDevice(num)
	if err != nil {
		g.Report(result{Step: "open"}, err)
		return
	}
	defer d.Close()
	info, err := d.Info()
	g.Report(result{Step: "info", Info: &info}, err)

	const mib = 1 << 20
	layout1 := []ubi.VolumeSpec{
		{Name: "kernel", ID: 0, Size: 1 * mib, Type: ubi.Static},
		{Name: "rootfs", ID: 1, Size: 8 * mib},
		{Name: "data", ID: 2, Size: 4 * mib},
	}
	ops, err := ubi.ApplyLayout(d, layout1)
	g.Report(result{Step: "layout create", Ops: opStrings(ops)}, err)
	ops, err = ubi.ApplyLayout(d, layout1)
	g.Report(result{Step: "layout again", Ops: opStrings(ops)}, err)
	layout2 := []ubi.VolumeSpec{
		{Name: "rootfs", ID: 1, Size: 6 * mib},
		{Name: "appdata", ID: 2, Size: 4 * mib},
		{Name: "blob", ID: ubi.AutoID, Size: 1 * mib, Type: ubi.Static},
	}
	ops, err = ubi.ApplyLayout(d, layout2)
	vols, _ := d.Volumes()
	g.Report(result{Step: "layout change", Ops: opStrings(ops), Volumes: vols}, err)
	_, err = ubi.ApplyLayout(d, []ubi.VolumeSpec{{Name: "huge", ID: ubi.AutoID, Size: 64 * mib}, {Name: "rootfs", ID: 1, Size: 6 * mib}})
	g.Report(result{Step: "layout too big"}, err)

	for _, step := range []string{"swap 1", "swap 2"} {
		start := time.Now()
		err = ubi.SwapUpdate(d, "rootfs", "rootfs_b", size, image())
		vols, _ := d.Volumes()
		g.Report(result{Step: step, Volumes: vols, Text: guest.Took(start)}, err)
		if err != nil {
			return
		}
		text, sum, err := readRootfs(num)
		g.Report(result{Step: step + " mount", Text: text, SHA256: sum}, err)
	}

	blob, err := ubi.FindVolume(d, "blob")
	if err != nil {
		g.Report(result{Step: "blob"}, err)
		return
	}
	data := make([]byte, 300000)
	r := rand.New(rand.NewPCG(7, 7))
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	err = ubi.UpdateVolume(d, blob.ID, int64(len(data)), bytes.NewReader(data))
	got, rerr := os.ReadFile(d.VolumePath(blob.ID))
	blob, _ = ubi.FindVolume(d, "blob")
	sum := sha256.Sum256(got)
	g.Report(result{Step: "static update", Volumes: []ubi.Volume{blob}, SHA256: hex.EncodeToString(sum[:])}, errors.Join(err, rerr))

	err = ubi.UpdateVolume(d, blob.ID, int64(len(data)), bytes.NewReader(data[:1000]))
	blob, _ = ubi.FindVolume(d, "blob")
	g.Report(result{Step: "short update", Volumes: []ubi.Volume{blob}}, err)

	d.Close()
	g.Report(result{Step: "detach"}, ubi.Detach(num))

	formatRounds(g)
}

// formatRounds writes the ubinized image on /dev/vdb (lifeboat.ubi_size
// bytes) to mtd1 three times, as ubiformat would, and mounts its UBIFS
// after each: the erase counters must grow from round to round.
func formatRounds(g *guest.Guest) {
	f, size, err := g.Disk("/dev/vdb", "ubi_size")
	if err != nil {
		g.Report(result{Step: "open ubi image"}, err)
		return
	}
	defer f.Close()
	for round := 1; round <= 3; round++ {
		step := fmt.Sprintf("format %d", round)
		start := time.Now()
		st, minEC, maxEC, err := format(io.NewSectionReader(f, 0, size), size)
		g.Report(result{Step: step, Format: &st, MinEC: minEC, MaxEC: maxEC, Text: guest.Took(start)}, err)
		if err != nil {
			return
		}
		num, err := ubi.Attach(1, ubi.AutoID, ubi.AttachOptions{})
		if err != nil {
			g.Report(result{Step: step + " attach"}, err)
			return
		}
		text, sum, err := readRootfs(num)
		g.Report(result{Step: step + " mount", Text: text, SHA256: sum}, err)
		if err := ubi.Detach(num); err != nil {
			g.Report(result{Step: step + " detach"}, err)
			return
		}
	}
}

func format(r io.Reader, size int64) (st ubi.FormatStats, minEC, maxEC int64, err error) {
	d, err := mtd.Open("mtd1", true)
	if err != nil {
		return st, 0, 0, err
	}
	defer d.Close()
	if st, err = ubi.FormatImage(d, r, size, ubi.FormatOptions{}); err != nil {
		return st, 0, 0, err
	}
	ecs, _, err := ubi.ScanECs(d, 0, d.Info().Size)
	minEC = -1
	for _, ec := range ecs {
		if ec < 0 {
			continue
		}
		if minEC < 0 || ec < minEC {
			minEC = ec
		}
		maxEC = max(maxEC, ec)
	}
	return st, minEC, maxEC, err
}

// readRootfs mounts the UBIFS in UBI device num's volume "rootfs" and
// returns its hello.txt and the SHA-256 of its big.bin.
func readRootfs(num int) (text, sum string, err error) {
	err = guest.Mount(fmt.Sprintf("ubi%d:rootfs", num), "ubifs", func(dir string) error {
		b, err := os.ReadFile(filepath.Join(dir, "hello.txt"))
		if err != nil {
			return err
		}
		big, err := os.Open(filepath.Join(dir, "big.bin"))
		if err != nil {
			return err
		}
		defer big.Close()
		text = string(b)
		sum, err = guest.SHA256(big)
		return err
	})
	return text, sum, err
}
