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
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/lifeboat-updater/lifeboat/handlers/mtd"
	"github.com/lifeboat-updater/lifeboat/handlers/ubi"
	"github.com/lifeboat-updater/lifeboat/internal/cli"
	"github.com/lifeboat-updater/lifeboat/rescue"
	"github.com/u-root/u-root/pkg/kmodule"
	"golang.org/x/sys/unix"
)

const flashName = "block2mtd: /dev/vda"

func main() {
	rescue.Run(rescue.Config{Flow: flow})
}

type result struct {
	Step      string `json:"step"`
	Err       string `json:"err,omitempty"`
	Code      int    `json:"code,omitempty"`
	Corrupted *bool  `json:"corrupted,omitempty"`
	SHA256    string `json:"sha256,omitempty"`
	Text      string `json:"text,omitempty"`
}

func report(env *rescue.Env, r result, err error) {
	if err != nil {
		r.Err = err.Error()
	}
	b, _ := json.Marshal(r)
	env.Log.Printf("powercut: %s", b)
	env.Alive()
}

func flow(ctx context.Context, env *rescue.Env) error {
	run(ctx, env)
	env.Log.Printf("powercut: done")
	unix.Sync()
	return env.PowerOff()
}

func run(ctx context.Context, env *rescue.Env) {
	size, err := strconv.ParseInt(env.Params["size"], 10, 64)
	if err != nil {
		report(env, result{Step: "size"}, err)
		return
	}
	waitFor(env, "/dev/vda")
	if err := kmodule.Probe("block2mtd", "block2mtd=/dev/vda,131072"); err != nil {
		report(env, result{Step: "modprobe block2mtd"}, err)
		return
	}
	args := []string{"install", "--board", "/etc/lifeboat/board.json", "--keys", "/etc/lifeboat/keys", "--progress", "none"}
	switch env.Params["phase"] {
	case "cut":
		cut, err := strconv.ParseInt(env.Params["cut"], 10, 64)
		if err != nil {
			report(env, result{Step: "cut"}, err)
			return
		}
		f, err := os.Open("/bundle")
		if err != nil {
			report(env, result{Step: "open bundle"}, err)
			return
		}
		r := &cutReader{r: io.LimitReader(f, cut), at: func() {
			// The chunks before the cut reach the volume; then the
			// power goes.
			time.Sleep(2 * time.Second)
			unix.Sync()
			env.Log.Printf("powercut: cut")
		}}
		code, _, stderr := lifeboat(ctx, r, append(args, "-")...)
		report(env, result{Step: "install returned", Code: code, Err: stderr}, nil)
	case "repair":
		path, err := mtd.Lookup(flashName)
		if err == nil {
			var n int
			if n, err = mtd.Index(path); err == nil {
				_, err = ubi.AttachMTD(n, ubi.AttachOptions{})
			}
		}
		if err != nil {
			report(env, result{Step: "attach"}, err)
			return
		}
		r := volume(size)
		r.Step = "after the cut"
		report(env, r, nil)
		code, _, stderr := lifeboat(ctx, nil, append(args, "/bundle")...)
		r = volume(size)
		r.Step, r.Code, r.Err = "repaired", code, stderr
		report(env, r, nil)
		text, err := mountRead()
		report(env, result{Step: "mount", Text: text}, err)
	default:
		report(env, result{Step: "phase"}, fmt.Errorf("lifeboat.phase=%q, want cut or repair", env.Params["phase"]))
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
	path, err := mtd.Lookup(flashName)
	if err != nil {
		r.Text = err.Error()
		return r
	}
	idx, _ := mtd.Index(path)
	n, ok := ubi.Sysfs(ubi.SysClassUBI).Attached(idx)
	if !ok {
		r.Text = "not attached"
		return r
	}
	vols, err := ubi.Sysfs(ubi.SysClassUBI).Volumes(n)
	if err != nil {
		r.Text = err.Error()
		return r
	}
	for _, v := range vols {
		if v.Name != "rootfs" {
			continue
		}
		r.Corrupted = &v.Corrupted
		f, err := os.Open(fmt.Sprintf("/dev/ubi%d_%d", n, v.ID))
		if err != nil {
			r.Text = err.Error()
			return r
		}
		defer f.Close()
		h := sha256.New()
		if _, err := io.Copy(h, io.LimitReader(f, size)); err != nil {
			r.Text = err.Error() // a marked volume cannot be read
			return r
		}
		r.SHA256 = hex.EncodeToString(h.Sum(nil))
		return r
	}
	r.Text = "no volume rootfs"
	return r
}

func mountRead() (string, error) {
	path, err := mtd.Lookup(flashName)
	if err != nil {
		return "", err
	}
	idx, _ := mtd.Index(path)
	n, ok := ubi.Sysfs(ubi.SysClassUBI).Attached(idx)
	if !ok {
		return "", fmt.Errorf("%s is not attached to UBI", path)
	}
	if err := os.MkdirAll("/mnt", 0o755); err != nil {
		return "", err
	}
	src := fmt.Sprintf("ubi%d:rootfs", n)
	if err := unix.Mount(src, "/mnt", "ubifs", unix.MS_RDONLY, ""); err != nil {
		return "", fmt.Errorf("mount %s: %w", src, err)
	}
	defer unix.Unmount("/mnt", 0)
	b, err := os.ReadFile("/mnt/hello.txt")
	return string(b), err
}

func lifeboat(ctx context.Context, stdin io.Reader, args ...string) (int, string, string) {
	var stdout, stderr bytes.Buffer
	code := cli.Main(ctx, args, stdin, &stdout, &stderr)
	return code, strings.TrimSpace(stdout.String()), strings.TrimSpace(stderr.String())
}

func waitFor(env *rescue.Env, path string) {
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
		if _, err := os.Stat(path); err == nil {
			return
		}
		env.Alive()
		time.Sleep(50 * time.Millisecond)
	}
	env.Log.Printf("powercut: %s did not appear", path)
}
