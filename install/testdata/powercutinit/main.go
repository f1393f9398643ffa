// Command powercutinit is the PID 1 of package install's power cut test.
// On the rescue platform it maps /dev/vda as flash with block2mtd (128
// KiB erase blocks), so that what is written survives QEMU being killed,
// and runs `lifeboat install` (package cli, in-process) with the board
// profile /etc/lifeboat/board.json, whose target "rootfs" is a UBI volume
// updated in place. lifeboat.phase says which boot this is:
//
//   - cut: the install reads the bundle /bundle through a stream that
//     stops for ever after lifeboat.cut bytes, in the middle of the
//     volume's image. Once the bytes before it have had time to be
//     written, it syncs (flash programs as it is written; block2mtd goes
//     through the page cache) and prints "powercut: cut". The test then
//     kills QEMU.
//   - repair: it attaches UBI and reports the volume, runs the install
//     again on the whole bundle, and reports the volume once more
//     (marked or not, SHA-256 of its first lifeboat.size bytes, and the
//     UBIFS in it mounted: hello.txt), then powers off.
//
// It prints one JSON line per step, "powercut: {...}".
package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/lifeboat-updater/lifeboat/handlers/mtd"
	"github.com/lifeboat-updater/lifeboat/handlers/ubi"
	"github.com/lifeboat-updater/lifeboat/internal/cli"
	"github.com/lifeboat-updater/lifeboat/internal/vm/guest"
	"golang.org/x/sys/unix"
)

const flashName = "block2mtd: /dev/vda"

func main() {
	guest.Run("powercut", run)
}

type result struct {
	Step      string `json:"step"`
	Err       string `json:"err,omitempty"`
	Code      int    `json:"code,omitempty"`
	Corrupted *bool  `json:"corrupted,omitempty"`
	SHA256    string `json:"sha256,omitempty"`
	Text      string `json:"text,omitempty"`
}

func run(g *guest.Guest) {
	size, err := g.Int("size")
	if err != nil {
		g.Report(result{Step: "size"}, err)
		return
	}
	g.WaitFor("/dev/vda")
	if err := g.Modprobe("block2mtd", "block2mtd=/dev/vda,131072"); err != nil {
		g.Report(result{Step: "modprobe block2mtd"}, err)
		return
	}
	args := []string{"install", "--board", "/etc/lifeboat/board.json", "--on-device", "--keys", "/etc/lifeboat/keys", "--progress", "none"}
	switch g.Env.Params["phase"] {
	case "cut":
		cut, err := g.Int("cut")
		if err != nil {
			g.Report(result{Step: "cut"}, err)
			return
		}
		f, err := os.Open("/bundle")
		if err != nil {
			g.Report(result{Step: "open bundle"}, err)
			return
		}
		r := &cutReader{r: io.LimitReader(f, cut), at: func() {
			// The chunks before the cut reach the volume; then the
			// power goes.
			time.Sleep(2 * time.Second)
			unix.Sync()
			g.Printf("cut")
		}}
		code, _, stderr := g.Call(cli.Main, r, append(args, "-")...)
		g.Report(result{Step: "install returned", Code: code, Err: stderr}, nil)
	case "repair":
		n, err := flashIndex()
		if err == nil {
			_, err = ubi.AttachMTD(n, ubi.AttachOptions{})
		}
		if err != nil {
			g.Report(result{Step: "attach"}, err)
			return
		}
		r := volume(size)
		r.Step = "after the cut"
		g.Report(r, nil)
		code, _, stderr := g.Call(cli.Main, nil, append(args, "/bundle")...)
		r = volume(size)
		r.Step, r.Code, r.Err = "repaired", code, stderr
		g.Report(r, nil)
		text, err := mountRead()
		g.Report(result{Step: "mount", Text: text}, err)
	default:
		g.Report(result{Step: "phase"}, fmt.Errorf("lifeboat.phase=%q, want cut or repair", g.Env.Params["phase"]))
	}
}

// cutReader reads r, then calls at once and blocks for ever: the stream
// of a bundle whose source stopped.
type cutReader struct {
	r    io.Reader
	at   func()
	done bool
}

func (c *cutReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if err == io.EOF {
		if !c.done {
			c.done = true
			go c.at()
		}
		select {}
	}
	return n, err
}

// volume reports the UBI volume "rootfs" of the block2mtd flash.
func volume(size int64) result {
	r := result{}
	idx, err := flashIndex()
	if err == nil {
		r.Corrupted, r.SHA256, err = guest.UBIVolume(idx, "rootfs", size)
	}
	if err != nil {
		r.Text = err.Error() // a marked volume cannot be read
	}
	return r
}

// flashIndex returns the MTD number of the block2mtd flash.
func flashIndex() (int, error) {
	path, err := mtd.Lookup(flashName)
	if err != nil {
		return 0, err
	}
	return mtd.Index(path)
}

func mountRead() (string, error) {
	idx, err := flashIndex()
	if err != nil {
		return "", err
	}
	n, ok := ubi.Sysfs(ubi.SysClassUBI).Attached(idx)
	if !ok {
		return "", fmt.Errorf("mtd%d is not attached to UBI", idx)
	}
	var text string
	err = guest.Mount(fmt.Sprintf("ubi%d:rootfs", n), "ubifs", func(dir string) error {
		b, err := os.ReadFile(filepath.Join(dir, "hello.txt"))
		text = string(b)
		return err
	})
	return text, err
}
