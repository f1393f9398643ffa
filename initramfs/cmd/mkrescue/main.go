// Command mkrescue builds a Lifeboat rescue initramfs.
//
//	mkrescue -pkg ./cmd/lifeboat -kernel-dir .cache/kernel/6.1.0-56-amd64 \
//	    -modules virtio_pci,virtio_blk -board-profile boards/qemu.json \
//	    -keys keys/ -format xz -o out/rescue.cpio.xz
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"

	"github.com/lifeboat-updater/lifeboat/initramfs"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "mkrescue:", err)
		os.Exit(1)
	}
}

// list is a flag of comma separated values, repeatable.
type list []string

func (l *list) String() string { return strings.Join(*l, ",") }

func (l *list) Set(s string) error {
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			*l = append(*l, v)
		}
	}
	return nil
}

// files is a repeatable -file SRC:DST flag.
type files []initramfs.File

func (f *files) String() string { return fmt.Sprint(*f) }

func (f *files) Set(s string) error {
	src, dst, ok := strings.Cut(s, ":")
	if !ok || src == "" || dst == "" {
		return errors.New("want SRC:DST")
	}
	*f = append(*f, initramfs.File{Src: src, Dst: dst})
	return nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("mkrescue", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		o       initramfs.Options
		mods    list
		keys    list
		tags    list
		extra   files
		format  = fs.String("format", "xz", "compression: xz, lz4 or cpio")
		caCerts = fs.Bool("ca-certs", false, "copy the host's "+initramfs.HostCACerts)
		verbose = fs.Bool("v", false, "print progress")
	)
	fs.StringVar(&o.Init, "pkg", "github.com/lifeboat-updater/lifeboat/cmd/lifeboat", "Go command package built as /init")
	fs.StringVar(&o.Dir, "C", "", "directory to build in (inside the module; default: current)")
	fs.StringVar(&o.GOARCH, "goarch", "amd64", "GOARCH of the image")
	fs.StringVar(&o.LDFlags, "ldflags", "", "more linker `flags`, e.g. -X github.com/lifeboat-updater/lifeboat/source.BuildTime=$(date +%s)")
	fs.Var(&tags, "tags", "build tags, comma separated")
	fs.StringVar(&o.KernelDir, "kernel-dir", "", "unpacked kernel root (holds lib/modules/KVER) or lib/modules/KVER")
	fs.StringVar(&o.KVer, "kver", "", "kernel release (default: the only one in -kernel-dir)")
	fs.Var(&mods, "modules", "kernel modules to carry, comma separated")
	fs.StringVar(&o.BoardProfile, "board-profile", "", "board profile copied to /"+initramfs.BoardProfile)
	fs.Var(&keys, "keys", "public key files or directories for /"+initramfs.KeysDir)
	fs.Var(&extra, "file", "extra file SRC:DST (repeatable)")
	fs.BoolVar(&o.Debug, "debug", false, "add a shell (gosh) and a few u-root commands")
	fs.StringVar(&o.Output, "o", "", "output image path")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	f, err := initramfs.ParseFormat(*format)
	if err != nil {
		return err
	}
	o.Format, o.Modules, o.Keys, o.Files, o.Tags = f, mods, keys, extra, tags
	if *caCerts {
		o.CACerts = initramfs.HostCACerts
	}
	if *verbose {
		o.Logf = func(format string, args ...any) { fmt.Fprintf(stderr, format+"\n", args...) }
	}
	res, err := initramfs.Build(ctx, o)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, res)
	return nil
}
