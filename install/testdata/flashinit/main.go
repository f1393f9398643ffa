// Command flashinit is the PID 1 of package install's VM test. On the
// rescue platform (which loads ubi and ubifs, the profile's modules) it
// loads nandsim (three partitions, a bad block in each) and runs
// `lifeboat install` (package cli, in-process) twice on the signed bundle
// /bundle with the board profile /etc/lifeboat/board.json. After each
// install it checks what the flash holds: the raw MTD partition's good
// blocks (SHA-256), the UBI volume "rootfs" and the whole UBI image
// (mounted as UBIFS, one file read), and the UBI image's erase counters.
// Then it runs `lifeboat verify`, installs a bundle whose target names a
// UBI volume that does not exist (refused, nothing changed), and
// interrupts an in-place UBI volume update then installs again. It prints one JSON line per step,
// "flashtest: {...}", then "flashtest: done", and powers off.
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/lifeboat-updater/lifeboat/handlers/mtd"
	"github.com/lifeboat-updater/lifeboat/handlers/ubi"
	"github.com/lifeboat-updater/lifeboat/internal/cli"
	"github.com/lifeboat-updater/lifeboat/internal/vm/guest"
)

// Partitions in erase blocks of 128 KiB: mtd0 4 MiB (raw), mtd1 32 MiB
// (UBI volumes), mtd2 16 MiB (a whole UBI image). Bad: block 5 of mtd0,
// 8 of mtd1, 2 of mtd2.
const nandsimParams = "id_bytes=0x20,0xaa,0x00,0x15 badblocks=5,40,290 parts=32,256,128"

func main() {
	guest.Run("flashtest", run)
}

type result struct {
	Step   string   `json:"step"`
	Err    string   `json:"err,omitempty"`
	Code   int      `json:"code,omitempty"`
	Text   string   `json:"text,omitempty"`
	SHA256 string   `json:"sha256,omitempty"`
	Notes  []string `json:"notes,omitempty"`
	ECs    []int64  `json:"ecs,omitempty"`
	After  string   `json:"after,omitempty"` // a snapshot after, Text's before
	// Corrupted is the volume "data"'s mark (nil: not found).
	Corrupted *bool `json:"corrupted,omitempty"`
}

func run(g *guest.Guest) {
	rawSize, err := g.Int("raw_size")
	if err != nil {
		g.Report(result{Step: "raw_size"}, err)
		return
	}
	if err := g.Modprobe("nandsim", nandsimParams); err != nil {
		g.Report(result{Step: "modprobe nandsim"}, err)
		return
	}
	for round := 1; round <= 2; round++ {
		r := fmt.Sprintf("install %d", round)
		if !install(g, r) {
			return
		}
		sum, err := rawSum(rawSize)
		g.Report(result{Step: r + " raw", SHA256: sum}, err)

		// The volume: UBI on mtd1 was attached by the install.
		n, ok := ubi.Sysfs(ubi.SysClassUBI).Attached(1)
		if !ok {
			g.Report(result{Step: r + " volume"}, fmt.Errorf("mtd1 is not attached to UBI"))
			return
		}
		text, err := readHello(n)
		g.Report(result{Step: r + " volume", Text: text}, err)

		// The whole image: its erase counters, then attach and mount.
		ecs, err := scanECs()
		g.Report(result{Step: r + " ecs", ECs: ecs}, err)
		m, err := ubi.AttachMTD(2, ubi.AttachOptions{})
		if err != nil {
			g.Report(result{Step: r + " image"}, err)
			return
		}
		text, err = readHello(m)
		// Left attached: the next install must detach it.
		g.Report(result{Step: r + " image", Text: text}, err)
	}
	code, stdout, stderr := g.Call(cli.Main, nil, "verify", "--board", "/etc/lifeboat/board.json", "--on-device", "--keys", "/etc/lifeboat/keys",
		"--progress", "none", "/bundle")
	g.Report(result{Step: "verify", Code: code, Text: stdout, Err: stderr}, nil)

	missingVolume(g)
	interrupted(g)
}

// missingVolume installs /bundle-ghost, whose one step names a UBI volume
// that neither the board profile's layout (board-bad.json: the profile
// is refused) nor the UBI device on mtd2 (board.json: the plan is
// refused) has. Nothing on the flash may change.
func missingVolume(g *guest.Guest) {
	before, err := snapshot()
	if err != nil {
		g.Report(result{Step: "snapshot"}, err)
		return
	}
	for _, c := range []struct{ step, board string }{
		{"ghost profile", "/etc/lifeboat/board-bad.json"},
		{"ghost device", "/etc/lifeboat/board.json"},
	} {
		code, _, stderr := g.Call(cli.Main, nil, "install", "--board", c.board, "--on-device", "--keys", "/etc/lifeboat/keys", "--progress", "none", "/bundle-ghost")
		g.Report(result{Step: c.step, Code: code, Err: stderr}, nil)
	}
	after, err := snapshot()
	g.Report(result{Step: "ghost untouched", Text: before, After: after}, err)
}

// snapshot describes every attached UBI device's volumes and the raw
// partition's bytes.
func snapshot() (string, error) {
	var b strings.Builder
	for mtdNum := 0; mtdNum < 3; mtdNum++ {
		n, ok := ubi.Sysfs(ubi.SysClassUBI).Attached(mtdNum)
		if !ok {
			continue
		}
		vols, err := ubi.Sysfs(ubi.SysClassUBI).Volumes(n)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&b, "mtd%d: %+v\n", mtdNum, vols)
	}
	sum, err := rawSum(3 << 20) // mtd0 has 31 good blocks
	fmt.Fprintf(&b, "mtd0: %s\n", sum)
	return b.String(), err
}

// interrupted installs /bundle-data, whose one step updates the UBI
// volume "data" in place, from a stream that stops after
// lifeboat.data_cut bytes, inside the volume's image: the update is left
// half done, and UBI marks the volume. Then it installs the whole bundle
// again, which must leave the volume whole (lifeboat.data_size bytes) and
// unmarked.
func interrupted(g *guest.Guest) {
	cut, err1 := g.Int("data_cut")
	size, err2 := g.Int("data_size")
	if err := errors.Join(err1, err2); err != nil {
		g.Report(result{Step: "data params"}, err)
		return
	}
	f, err := os.Open("/bundle-data")
	if err != nil {
		g.Report(result{Step: "open bundle-data"}, err)
		return
	}
	defer f.Close()
	args := []string{"install", "--board", "/etc/lifeboat/board.json", "--on-device", "--keys", "/etc/lifeboat/keys", "--progress", "none"}
	code, _, stderr := g.Call(cli.Main, io.LimitReader(f, cut), append(args, "-")...)
	r := dataVolume(size)
	r.Step, r.Code, r.Err = "interrupted", code, stderr
	g.Report(r, nil)

	code, _, stderr = g.Call(cli.Main, nil, append(args, "/bundle-data")...)
	r = dataVolume(size)
	r.Step, r.Code, r.Err = "repaired", code, stderr
	g.Report(r, nil)
}

// dataVolume reads the volume "data" of the UBI device on mtd1: whether
// it is marked, and the SHA-256 of its first size bytes.
func dataVolume(size int64) result {
	corrupted, sum, err := guest.UBIVolume(1, "data", size)
	r := result{Corrupted: corrupted, SHA256: sum}
	if err != nil {
		r.Text = err.Error() // a marked volume cannot be read
	}
	return r
}

// install runs `lifeboat install` and reports its exit code and the
// notes of its steps.
func install(g *guest.Guest, step string) bool {
	events := "/tmp/events.jsonl"
	start := time.Now()
	code, _, stderr := g.Call(cli.Main, nil, "install", "--board", "/etc/lifeboat/board.json", "--on-device", "--keys", "/etc/lifeboat/keys",
		"--progress", "none", "--events", events, "/bundle")
	r := result{Step: step, Code: code, Text: guest.Took(start)}
	if code != 0 {
		r.Err = stderr
	}
	f, err := os.Open(events)
	if err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			var ev struct {
				Event string `json:"event"`
				Step  int    `json:"step"`
				Note  string `json:"note"`
			}
			if json.Unmarshal(sc.Bytes(), &ev) == nil && ev.Event == "step-done" {
				r.Notes = append(r.Notes, fmt.Sprintf("%d: %s", ev.Step, ev.Note))
			}
		}
		f.Close()
	}
	g.Report(r, nil)
	return code == 0
}

// rawSum hashes the first size bytes of mtd0's good blocks.
func rawSum(size int64) (string, error) {
	d, err := mtd.Open("mtd0", false)
	if err != nil {
		return "", err
	}
	defer d.Close()
	return guest.GoodBlocksSHA256(d, size, 0)
}

func scanECs() ([]int64, error) {
	d, err := mtd.Open("mtd2", false)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	ecs, _, err := ubi.ScanECs(d, 0, d.Info().Size)
	return ecs, err
}

// readHello mounts the UBIFS in UBI device num's volume "rootfs" and
// returns its hello.txt.
func readHello(num int) (text string, err error) {
	err = guest.Mount(fmt.Sprintf("ubi%d:rootfs", num), "ubifs", func(dir string) error {
		b, err := os.ReadFile(filepath.Join(dir, "hello.txt"))
		text = string(b)
		return err
	})
	return text, err
}
