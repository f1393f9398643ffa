// Command lifeboat-demo is Lifeboat's main job, end to end, on one
// machine (`make demo`): it builds the rescue image, the demo device and a
// signed bundle, serves the bundle over HTTP on 127.0.0.1, boots the
// rescue in QEMU on a blank virtual disk (the guest reaches the host as
// 10.0.2.2), watches it get a DHCP lease, install and reboot, then powers
// the board on from the disk alone: SeaBIOS, GRUB, the production system.
// Last, `lifeboat verify` compares the disk with the bundle. It exits 0
// only if all of that was seen.
//
//	lifeboat-demo [-out DIR] [-quiet]     the demo
//	lifeboat-demo image [-board NAME] [-out DIR] [-keys DIR]
//	                                      the rescue image only (make image)
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"time"

	"github.com/lifeboat-updater/lifeboat/demo"
	"github.com/lifeboat-updater/lifeboat/initramfs"
	"github.com/lifeboat-updater/lifeboat/internal/vm"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "lifeboat-demo:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "image" {
		return runImage(ctx, args[1:], stdout, stderr)
	}
	fs := flag.NewFlagSet("lifeboat-demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "out/demo", "work `folder`: images, bundle, disk")
	keys := fs.String("keys", "", "signing key `folder` (made if missing; default OUT/keys)")
	quiet := fs.Bool("quiet", false, "do not show the guests' consoles")
	if err := parse(fs, args); err != nil {
		return err
	}
	logf := func(format string, args ...any) {
		fmt.Fprintf(stdout, "==> "+format+"\n", args...)
	}
	start := time.Now()
	k, err := kernel(ctx)
	if err != nil {
		return err
	}
	p, err := demo.Prepare(ctx, demo.PrepareOptions{OutDir: *out, KeyDir: *keys, Kernel: k, Logf: logf})
	if err != nil {
		return err
	}
	var console io.Writer = stdout
	if *quiet {
		console = nil
	}
	r, err := p.Run(ctx, demo.RunOptions{OutDir: *out, Console: console, Logf: logf})
	fmt.Fprintln(stdout)
	if r != nil && r.ToDone > 0 {
		fmt.Fprint(stdout, r)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "demo passed in %.0fs: the rescue provisioned a blank board over the network and it booted production\n", time.Since(start).Seconds())
	return nil
}

// runImage builds a board's rescue image in both formats.
func runImage(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("lifeboat-demo image", flag.ContinueOnError)
	fs.SetOutput(stderr)
	board := fs.String("board", demo.Board, "built-in board `name`")
	out := fs.String("out", "out", "output `folder`")
	keys := fs.String("keys", "", "trusted key `folder` (a key pair is made if missing; default OUT/keys)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *keys == "" {
		*keys = filepath.Join(*out, "keys")
	}
	k, err := kernel(ctx)
	if err != nil {
		return err
	}
	key, err := demo.LoadOrCreateKey(*keys)
	if err != nil {
		return err
	}
	imgs, err := demo.BuildRescue(ctx, demo.RescueOptions{
		Board: *board, KernelDir: k.Root, Keys: []string{key.PubPath()}, OutDir: *out,
		Formats: []initramfs.Format{initramfs.XZ, initramfs.LZ4},
	})
	if err != nil {
		return err
	}
	for _, img := range imgs {
		fmt.Fprintln(stdout, img.Result)
	}
	fmt.Fprintf(stdout, "kernel: %s\ntrusted key: %s\n", k.Vmlinuz, key.PubPath())
	return nil
}

func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	return nil
}

// kernel fetches (once, cached) the Debian kernel the rescue and the demo
// device run.
func kernel(ctx context.Context) (vm.Kernel, error) {
	dir, err := vm.CacheDir()
	if err != nil {
		return vm.Kernel{}, err
	}
	return vm.FetchKernel(ctx, dir)
}
