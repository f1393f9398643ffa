// Command benchinit is the PID 1 of the raw flash benchmark
// (TestVMFlashBench). On the rescue platform it reads the image on
// /dev/vda (lifeboat.img_size bytes) into memory and a file, /img.bin,
// then writes it to nandsim (mtd0: 64 MiB raw, mtd1: 128 MiB for UBI)
// with package mtd's Writer (read-back on and off, and again unchanged)
// and mtd-utils' flash_erase + nandwrite, and into a UBI volume with
// VolumeWriter and mtd-utils' ubiupdatevol, lifeboat.rounds times each,
// taking turns. It prints one JSON line per run, "flashbench: {...}",
// then "flashbench: done", and powers off. The mtd-utils binaries and
// their libraries are in the image, under /usr/sbin and /lib.
package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"os/exec"
	"strconv"
	"time"
	"unsafe"

	"github.com/lifeboat-updater/lifeboat/handlers/mtd"
	"github.com/lifeboat-updater/lifeboat/handlers/ubi"
	"github.com/lifeboat-updater/lifeboat/internal/vm/guest"
	"golang.org/x/sys/unix"
)

const nandsimParams = "id_bytes=0x20,0xaa,0x00,0x15 parts=512,1024"

func main() {
	guest.Run("flashbench", run)
}

type result struct {
	Step    string  `json:"step"`
	Round   int     `json:"round,omitempty"`
	Seconds float64 `json:"seconds,omitempty"`
	Bytes   int64   `json:"bytes,omitempty"`
	SHA256  string  `json:"sha256,omitempty"`
	Text    string  `json:"text,omitempty"`
}

func run(g *guest.Guest) {
	rounds, err := strconv.Atoi(g.Env.Params["rounds"])
	if err != nil || rounds < 1 {
		rounds = 1
	}
	f, size, err := g.Disk("/dev/vda", "img_size")
	if err != nil {
		g.Report(result{Step: "open image"}, err)
		return
	}
	img := make([]byte, size)
	_, err = io.ReadFull(f, img)
	f.Close()
	if err == nil {
		err = os.WriteFile("/img.bin", img, 0o644)
	}
	if err != nil {
		g.Report(result{Step: "read image"}, err)
		return
	}
	sum := sha256.Sum256(img)
	want := hex.EncodeToString(sum[:])
	if err := g.Modprobe("nandsim", nandsimParams); err != nil {
		g.Report(result{Step: "modprobe nandsim"}, err)
		return
	}
	raw, err := mtd.Open("mtd0", true)
	if err != nil {
		g.Report(result{Step: "open mtd0"}, err)
		return
	}
	defer raw.Close()
	es := raw.Info().EraseSize
	blocks := (size + es - 1) / es

	for round := 1; round <= rounds; round++ {
		timed(g, "mtd Writer, read-back", round, size, func() error {
			_, err := mtd.WriteImage(raw, bytes.NewReader(img), mtd.Options{Size: size, Rewrite: true})
			return err
		})
		timed(g, "mtd Writer, unchanged", round, size, func() error {
			st, err := mtd.WriteImage(raw, bytes.NewReader(img), mtd.Options{Size: size})
			if err == nil && st.Unchanged != st.Blocks {
				err = fmt.Errorf("%d of %d blocks unchanged", st.Unchanged, st.Blocks)
			}
			return err
		})
		timed(g, "mtd Writer, no read-back", round, size, func() error {
			_, err := mtd.WriteImage(raw, bytes.NewReader(img), mtd.Options{Size: size, Rewrite: true, NoVerify: true})
			return err
		})
		timed(g, "flash_erase + nandwrite", round, size, func() error {
			if err := command("/usr/sbin/flash_erase", "-q", "/dev/mtd0", "0", fmt.Sprint(blocks)); err != nil {
				return err
			}
			return command("/usr/sbin/nandwrite", "-q", "-p", "/dev/mtd0", "/img.bin")
		})
		s, err := guest.SHA256(io.NewSectionReader(raw, 0, size))
		g.Report(result{Step: "nandwrite content", Round: round, SHA256: s, Text: want}, err)
	}

	num, err := ubi.AttachMTD(1, ubi.AttachOptions{})
	if err != nil {
		g.Report(result{Step: "attach"}, err)
		return
	}
	d, err := ubi.OpenDevice(num)
	if err != nil {
		g.Report(result{Step: "open ubi"}, err)
		return
	}
	defer d.Close()
	id, err := d.MakeVolume(ubi.VolumeSpec{Name: "bench", ID: ubi.AutoID, Size: size + 4<<20})
	if err != nil {
		g.Report(result{Step: "mkvol"}, err)
		return
	}
	vol := d.VolumePath(id)
	for round := 1; round <= rounds; round++ {
		for _, verify := range []bool{true, false} {
			step := "ubi VolumeWriter, 1 MiB writes (read-back)"
			if !verify {
				step = "ubi VolumeWriter, 1 MiB writes (NoVerify)"
			}
			timed(g, step, round, size, func() error {
				return chunkedUpdate(d, id, img, ubi.VolumeOptions{NoVerify: !verify})
			})
		}
		// Where the VolumeWriter's time goes: the bare update (what
		// ubiupdatevol does), reading the volume back, and the CRC-32
		// of the read-back check (twice), against the SHA-256 it
		// hashed with before (also twice).
		timed(g, "UBI_IOCVOLUP + write (Go, no read-back)", round, size, func() error {
			return bareUpdate(vol, img)
		})
		timed(g, "read the volume (Go)", round, size, func() error {
			return readFile(vol, size)
		})
		timed(g, "CRC-32 of the image (Go, CPU only)", round, size, func() error {
			crc32.ChecksumIEEE(img)
			return nil
		})
		timed(g, "SHA-256 of the image (Go, CPU only)", round, size, func() error {
			sha256.Sum256(img)
			return nil
		})
		timed(g, "ubiupdatevol", round, size, func() error {
			return command("/usr/sbin/ubiupdatevol", vol, "/img.bin")
		})
		s, err := hashFile(vol, size)
		g.Report(result{Step: "ubiupdatevol content", Round: round, SHA256: s, Text: want}, err)
	}
}

func timed(g *guest.Guest, step string, round int, size int64, f func() error) {
	start := time.Now()
	err := f()
	g.Report(result{Step: step, Round: round, Seconds: time.Since(start).Seconds(), Bytes: size}, err)
}

// bareUpdate is a volume update with nothing around it.
func bareUpdate(path string, img []byte) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	n := int64(len(img))
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, f.Fd(), uintptr(unix.UBI_IOCVOLUP), uintptr(unsafe.Pointer(&n))); e != 0 {
		return e
	}
	const leb = 129024
	for off := 0; off < len(img); off += leb {
		if _, err := f.Write(img[off:min(len(img), off+leb)]); err != nil {
			return err
		}
	}
	return f.Close()
}

func command(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w: %s", name, err, out)
	}
	return nil
}

func hashFile(path string, size int64) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	return guest.SHA256(io.LimitReader(f, size))
}

// readFile reads size bytes of path, one LEB-sized read at a time.
func readFile(path string, size int64) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.CopyBuffer(io.Discard, io.LimitReader(f, size), make([]byte, 129024))
	return err
}

// chunkedUpdate writes img to volume id with a VolumeWriter 1 MiB at a
// time, as an install hands over its chunks.
func chunkedUpdate(d *ubi.Device, id int, img []byte, opt ubi.VolumeOptions) error {
	size := int64(len(img))
	w, err := ubi.NewVolumeWriter(d, id, size, opt)
	if err != nil {
		return err
	}
	for off := int64(0); off < size; off += 1 << 20 {
		if _, err := w.Write(img[off:min(size, off+1<<20)]); err != nil {
			w.Close()
			return err
		}
	}
	return w.Close()
}
