// Command flashinit is the PID 1 of package install's VM test. On the
// rescue platform (which loads ubi and ubifs, the profile's modules) it
// loads nandsim (three partitions, a bad block in each) and runs
// `lifeboat install` (package cli, in-process) twice on the signed bundle
// /bundle with the board profile /etc/lifeboat/board.json. After each
// install it checks what the flash holds: the raw MTD partition's good
// blocks (SHA-256), the UBI volume "rootfs" and the whole UBI image
// (mounted as UBIFS, one file read), and the UBI image's erase counters.
// Then it runs `lifeboat verify`. It prints one JSON line per step,
// "flashtest: {...}", then "flashtest: done", and powers off.
package main

import (
	"bufio"
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
