// Command fatenvinit is the PID 1 of package boardenv's TestVMEnvFAT. On the
// rescue platform (which loads the board profile's modules: virtio_blk,
// vfat and its code pages) it waits for /dev/vda, runs `lifeboat env set`
// then `lifeboat env print` (package cli, in-process) on the profile's
// bootenv entry, a uboot.env in the FAT partition "boot", prints one line
// per command, "fatenv: {...}", then "fatenv: done", and powers off.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"strings"
	"time"

	"github.com/lifeboat-updater/lifeboat/internal/cli"
	"github.com/lifeboat-updater/lifeboat/pid1"
	"golang.org/x/sys/unix"
)

func main() {
	pid1.Run(pid1.Config{Flow: flow})
}

type result struct {
	Step   string `json:"step"`
	Code   int    `json:"code"`
	Took   string `json:"took,omitempty"`
	Stdout string `json:"stdout,omitempty"`
	Stderr string `json:"stderr,omitempty"`
}

func flow(ctx context.Context, env *pid1.Env) error {
	// The disk shows up a little after virtio_blk loads.
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if _, err := os.Stat("/dev/vda1"); err == nil {
			break
		}
	}
	for _, args := range [][]string{
		{"env", "set", "lifeboat_txn=42", "bootcmd=run rescue"}, // the board's own profile: /etc/lifeboat/board.json
		{"env", "print"},
	} {
		var stdout, stderr bytes.Buffer
		start := time.Now()
		code := cli.Main(ctx, args, nil, &stdout, &stderr)
		b, _ := json.Marshal(result{Step: args[1], Code: code, Took: time.Since(start).Round(time.Millisecond).String(),
			Stdout: stdout.String(), Stderr: strings.TrimSpace(stderr.String())})
		env.Log.Printf("fatenv: %s", b)
	}
	// Nothing of Lifeboat's may stay mounted.
	b, _ := os.ReadFile("/proc/self/mountinfo")
	env.Log.Printf("fatenv: %s", mustJSON(result{Step: "mounts", Stdout: string(b)}))
	env.Log.Printf("fatenv: done")
	unix.Sync()
	return env.PowerOff()
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}
