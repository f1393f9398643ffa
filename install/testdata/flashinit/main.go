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
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
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

// Partitions in erase blocks of 128 KiB: mtd0 4 MiB (raw), mtd1 32 MiB
// (UBI volumes), mtd2 16 MiB (a whole UBI image). Bad: block 5 of mtd0,
// 8 of mtd1, 2 of mtd2.
const nandsimParams = "id_bytes=0x20,0xaa,0x00,0x15 badblocks=5,40,290 parts=32,256,128"

func main() {
	rescue.Run(rescue.Config{Flow: flow})
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

func report(env *rescue.Env, r result, err error) {
	if err != nil {
		r.Err = err.Error()
	}
	b, _ := json.Marshal(r)
	env.Log.Printf("flashtest: %s", b)
	env.Alive()
}

func flow(ctx context.Context, env *rescue.Env) error {
	run(ctx, env)
	env.Log.Printf("flashtest: done")
	unix.Sync()
	return env.PowerOff()
}

func run(ctx context.Context, env *rescue.Env) {
	rawSize, err := strconv.ParseInt(env.Params["raw_size"], 10, 64)
	if err != nil {
		report(env, result{Step: "raw_size"}, err)
		return
	}
	for _, m := range []struct{ name, params string }{{"nandsim", nandsimParams}} {
		if err := kmodule.Probe(m.name, m.params); err != nil {
			report(env, result{Step: "modprobe " + m.name}, err)
			return
		}
	}
	for round := 1; round <= 2; round++ {
		r := fmt.Sprintf("install %d", round)
		if !install(ctx, env, r) {
			return
		}
		sum, err := rawSum(rawSize)
		report(env, result{Step: r + " raw", SHA256: sum}, err)

		// The volume: UBI on mtd1 was attached by the install.
		n, ok := ubi.Sysfs(ubi.SysClassUBI).Attached(1)
		if !ok {
			report(env, result{Step: r + " volume"}, fmt.Errorf("mtd1 is not attached to UBI"))
			return
		}
		text, err := mountRead(fmt.Sprintf("ubi%d:rootfs", n))
		report(env, result{Step: r + " volume", Text: text}, err)

		// The whole image: its erase counters, then attach and mount.
		ecs, err := scanECs()
		report(env, result{Step: r + " ecs", ECs: ecs}, err)
		m, err := ubi.AttachMTD(2, ubi.AttachOptions{})
		if err != nil {
			report(env, result{Step: r + " image"}, err)
			return
		}
		text, err = mountRead(fmt.Sprintf("ubi%d:rootfs", m))
		// Left attached: the next install must detach it.
		report(env, result{Step: r + " image", Text: text}, err)
	}
	var stdout, stderr bytes.Buffer
	code := cli.Main(ctx, []string{"verify", "--board", "/etc/lifeboat/board.json", "--keys", "/etc/lifeboat/keys",
		"--progress", "none", "/bundle"}, nil, &stdout, &stderr)
	report(env, result{Step: "verify", Code: code, Text: strings.TrimSpace(stdout.String()), Err: strings.TrimSpace(stderr.String())}, nil)

	missingVolume(ctx, env)
	interrupted(ctx, env)
}

// missingVolume installs /bundle-ghost, whose one step names a UBI volume
// that neither the board profile's layout (board-bad.json: the profile
// is refused) nor the UBI device on mtd2 (board.json: the plan is
// refused) has. Nothing on the flash may change.
func missingVolume(ctx context.Context, env *rescue.Env) {
	before, err := snapshot()
	if err != nil {
		report(env, result{Step: "snapshot"}, err)
		return
	}
	for _, c := range []struct{ step, board string }{
		{"ghost profile", "/etc/lifeboat/board-bad.json"},
		{"ghost device", "/etc/lifeboat/board.json"},
	} {
		code, _, stderr := lifeboat(ctx, nil, "install", "--board", c.board, "--keys", "/etc/lifeboat/keys", "--progress", "none", "/bundle-ghost")
		report(env, result{Step: c.step, Code: code, Err: stderr}, nil)
	}
	after, err := snapshot()
	report(env, result{Step: "ghost untouched", Text: before, After: after}, err)
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
func interrupted(ctx context.Context, env *rescue.Env) {
	cut, err1 := strconv.ParseInt(env.Params["data_cut"], 10, 64)
	size, err2 := strconv.ParseInt(env.Params["data_size"], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		report(env, result{Step: "data params"}, err)
		return
	}
	f, err := os.Open("/bundle-data")
	if err != nil {
		report(env, result{Step: "open bundle-data"}, err)
		return
	}
	defer f.Close()
	args := []string{"install", "--board", "/etc/lifeboat/board.json", "--keys", "/etc/lifeboat/keys", "--progress", "none"}
	code, _, stderr := lifeboat(ctx, io.LimitReader(f, cut), append(args, "-")...)
	r := dataVolume(size)
	r.Step, r.Code, r.Err = "interrupted", code, stderr
	report(env, r, nil)

	code, _, stderr = lifeboat(ctx, nil, append(args, "/bundle-data")...)
	r = dataVolume(size)
	r.Step, r.Code, r.Err = "repaired", code, stderr
	report(env, r, nil)
}

// dataVolume reads the volume "data" of the UBI device on mtd1: whether
// it is marked, and the SHA-256 of its first size bytes.
func dataVolume(size int64) result {
	r := result{}
	n, ok := ubi.Sysfs(ubi.SysClassUBI).Attached(1)
	if !ok {
		r.Text = "mtd1 is not attached to UBI"
		return r
	}
	vols, err := ubi.Sysfs(ubi.SysClassUBI).Volumes(n)
	if err != nil {
		r.Text = err.Error()
		return r
	}
	for _, v := range vols {
		if v.Name != "data" {
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
			// A volume with its update marker set cannot be read.
			r.Text = err.Error()
			return r
		}
		r.SHA256 = hex.EncodeToString(h.Sum(nil))
		return r
	}
	r.Text = "no volume data"
	return r
}

// lifeboat runs the command line in-process and returns its exit code,
// standard output and standard error.
func lifeboat(ctx context.Context, stdin io.Reader, args ...string) (int, string, string) {
	var stdout, stderr bytes.Buffer
	code := cli.Main(ctx, args, stdin, &stdout, &stderr)
	return code, strings.TrimSpace(stdout.String()), strings.TrimSpace(stderr.String())
}

// install runs `lifeboat install` and reports its exit code and the
// notes of its steps.
func install(ctx context.Context, env *rescue.Env, step string) bool {
	var stdout, stderr bytes.Buffer
	events := "/tmp/events.jsonl"
	start := time.Now()
	code := cli.Main(ctx, []string{"install", "--board", "/etc/lifeboat/board.json", "--keys", "/etc/lifeboat/keys",
		"--progress", "none", "--events", events, "/bundle"}, nil, &stdout, &stderr)
	r := result{Step: step, Code: code, Text: time.Since(start).Round(time.Millisecond).String()}
	if code != 0 {
		r.Err = strings.TrimSpace(stderr.String())
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
	report(env, r, nil)
	return code == 0
}

// rawSum hashes the first size bytes of mtd0's good blocks.
func rawSum(size int64) (string, error) {
	d, err := mtd.Open("mtd0", false)
	if err != nil {
		return "", err
	}
	defer d.Close()
	es := d.Info().EraseSize
	h := sha256.New()
	buf := make([]byte, es)
	for off := int64(0); size > 0; off += es {
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
		k := min(size, es)
		h.Write(buf[:k])
		size -= k
	}
	return hex.EncodeToString(h.Sum(nil)), nil
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

func mountRead(src string) (string, error) {
	if err := os.MkdirAll("/mnt", 0o755); err != nil {
		return "", err
	}
	if err := unix.Mount(src, "/mnt", "ubifs", unix.MS_RDONLY, ""); err != nil {
		return "", fmt.Errorf("mount %s: %w", src, err)
	}
	defer unix.Unmount("/mnt", 0)
	f, err := os.Open("/mnt/hello.txt")
	if err != nil {
		return "", err
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	return string(b), err
}
