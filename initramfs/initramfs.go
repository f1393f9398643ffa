// Package initramfs builds Lifeboat's rescue image: a compressed cpio archive
// a Linux kernel unpacks as its root file system and whose /init is the
// Lifeboat binary.
//
// The image holds, besides /init: the kernel modules a board needs with what
// they depend on and a modules.dep trimmed to them (the rescue's module
// loader, pid1.LoadModules, reads it), the trust store (public keys)
// under /etc/lifeboat/keys/, the board profile at
// /etc/lifeboat/board.json, CA certificates if asked, and any
// extra file. It carries no shell and no other program unless Debug asks.
//
// Build drives u-root's mkuimage (github.com/u-root/mkuimage/uimage) to lay
// out the archive and compresses it in a format the kernel unpacks (xz with
// CRC32 checks, lz4 in the legacy frame). It needs the Go toolchain (`go` on
// PATH) and, for the best xz ratio, the host's xz tool.
package initramfs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/u-root/gobusybox/src/pkg/golang"
	"github.com/u-root/mkuimage/cpio"
	"github.com/u-root/mkuimage/uimage"
	"github.com/u-root/mkuimage/uimage/builder"
	uinitramfs "github.com/u-root/mkuimage/uimage/initramfs"
	"github.com/u-root/uio/llog"
)

// Paths inside the image that the rescue reads.
const (
	KeysDir      = "etc/lifeboat/keys"
	BoardProfile = "etc/lifeboat/board.json"
	CACerts      = "etc/ssl/certs/ca-certificates.crt"
	ModulesRoot  = "lib/modules"
)

// HostCACerts is where Debian keeps the CA bundle (package ca-certificates).
const HostCACerts = "/etc/ssl/certs/ca-certificates.crt"

// DebugCommands are the u-root commands a Debug image adds, gosh as /bin/sh.
var DebugCommands = []string{
	"github.com/u-root/u-root/cmds/core/gosh",
	"github.com/u-root/u-root/cmds/core/cat",
	"github.com/u-root/u-root/cmds/core/dmesg",
	"github.com/u-root/u-root/cmds/core/ls",
	"github.com/u-root/u-root/cmds/core/lsmod",
	"github.com/u-root/u-root/cmds/core/mount",
	"github.com/u-root/u-root/cmds/core/ip",
	"github.com/u-root/u-root/cmds/core/ps",
	"github.com/u-root/u-root/cmds/core/hexdump",
}

// Errors Build returns; errors from the Go toolchain, mkuimage and the file
// system are wrapped.
var (
	// ErrNoInit reports Options without the command to build as /init.
	ErrNoInit = errors.New("initramfs: no init package")
	// ErrNoOutput reports Options without an output path.
	ErrNoOutput = errors.New("initramfs: no output path")
	// ErrNoKernel reports modules asked for without a kernel to take them
	// from, or a kernel directory that holds no (or several) versions.
	ErrNoKernel = errors.New("initramfs: no kernel modules directory")
	// ErrBuild reports that the Go command did not build.
	ErrBuild = errors.New("initramfs: go build failed")
)

// File is an extra host file (or directory, copied recursively) to put in
// the image.
type File struct {
	// Src is the host path.
	Src string
	// Dst is the path inside the image, relative to its root.
	Dst string
}

// Options say what goes into the image.
type Options struct {
	// Init is the Go command package built as /init, as `go build` takes it
	// (an import path or a ./directory). It is built with CGO_ENABLED=0,
	// GOAMD64=v1 (QEMU's and old boards' CPUs), -trimpath and -ldflags
	// "-s -w".
	Init string
	// Dir is the directory go build runs in, inside the module that holds
	// Init. Empty means the current directory.
	Dir string
	// GOARCH of the image; empty means amd64.
	GOARCH string
	// LDFlags are more linker flags, after "-s -w", such as
	// "-X github.com/lifeboat-updater/lifeboat/source.BuildTime=1700000000".
	LDFlags string
	// Tags are build tags, such as nethttpomithttp2.
	Tags []string

	// KernelDir holds the kernel's modules: either a root that holds
	// lib/modules/KVER (an unpacked Debian kernel package, see
	// scripts/fetch-kernel.sh) or lib/modules/KVER itself.
	KernelDir string
	// KVer is the kernel release (uname -r). Empty means the only one in
	// KernelDir.
	KVer string
	// Modules are the kernel modules to carry, by name ("virtio_blk",
	// "usb-storage", or an alias such as "crypto-crc32c"). Their
	// dependencies come along. Names the kernel has built in are noted and
	// skipped.
	Modules []string

	// BoardProfile is the host path of the board profile, copied to
	// /etc/lifeboat/board.json.
	BoardProfile string
	// Keys are public key files, or directories of them, copied flat into
	// /etc/lifeboat/keys/.
	Keys []string
	// CACerts is a CA bundle copied to /etc/ssl/certs/ca-certificates.crt
	// (HostCACerts is the host's); empty means none.
	CACerts string
	// Files are extra files.
	Files []File

	// Debug adds u-root's gosh as /bin/sh and the DebugCommands.
	Debug bool

	// Format is the compression; empty means XZ.
	Format Format
	// Output is the path of the image written.
	Output string
	// TempDir is where build files go; empty means os.TempDir().
	TempDir string
	// Logf, if set, receives progress lines.
	Logf func(format string, args ...any)
}

// Result describes the image Build wrote.
type Result struct {
	Output     string
	Format     Format
	Compressor string // which encoder, for reports
	Size       int64  // bytes of the compressed image
	CPIOSize   int64  // bytes of the uncompressed archive
	InitSize   int64  // bytes of /init

	KVer string
	// Modules are the module files carried, relative to lib/modules/KVER
	// in the image (see imagePath for their names).
	Modules []string
	// ModulesSize is the modules' bytes, uncompressed.
	ModulesSize int64
	// ModulesCompressedSize is what the modules cost in the image: their
	// part of the archive compressed on its own.
	ModulesCompressedSize int64
	Builtin               []string // requested modules the kernel has built in
	Skipped               []string // soft dependencies nothing provides
}

// String is a short human report of the image's size.
func (r Result) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s %s (cpio %s, /init %s)", r.Output, r.Format, mib(r.Size), mib(r.CPIOSize), mib(r.InitSize))
	if len(r.Modules) > 0 {
		fmt.Fprintf(&b, "; %d modules for %s: %s, %s compressed", len(r.Modules), r.KVer, mib(r.ModulesSize), mib(r.ModulesCompressedSize))
	}
	if len(r.Builtin) > 0 {
		fmt.Fprintf(&b, "; built in: %s", strings.Join(r.Builtin, " "))
	}
	return b.String()
}

func mib(n int64) string { return fmt.Sprintf("%.2f MiB", float64(n)/(1<<20)) }

// Build builds the Init command and writes the image o describes.
func Build(ctx context.Context, o Options) (Result, error) {
	res, err := build(ctx, o)
	if err != nil {
		return Result{}, err
	}
	return *res, nil
}

func build(ctx context.Context, o Options) (*Result, error) {
	if o.Init == "" {
		return nil, ErrNoInit
	}
	if o.Output == "" {
		return nil, ErrNoOutput
	}
	if o.Format == "" {
		o.Format = XZ
	}
	if _, err := ParseFormat(string(o.Format)); err != nil {
		return nil, err
	}
	if o.GOARCH == "" {
		o.GOARCH = "amd64"
	}
	logf := o.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	tmp, err := os.MkdirTemp(o.TempDir, "lifeboat-initramfs-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)

	res := &Result{Output: o.Output, Format: o.Format}
	base, mods, err := baseArchive(&o, res)
	if err != nil {
		return nil, err
	}
	extra, err := extraFiles(&o, res, mods)
	if err != nil {
		return nil, err
	}

	env := golang.Default(golang.DisableCGO(), golang.WithGOOS("linux"), golang.WithGOARCH(o.GOARCH), golang.WithWorkingDir(o.Dir))
	ib := &initBuilder{ctx: ctx, goarch: o.GOARCH, dir: o.Dir, ldflags: o.LDFlags, tags: o.Tags}
	cpioPath := filepath.Join(tmp, "rescue.cpio")
	opts := []uimage.Modifier{
		uimage.WithReplaceEnv(env),
		uimage.WithTempDir(tmp),
		uimage.WithCommands(nil, ib, o.Init),
		uimage.WithBaseArchive(base),
		uimage.WithFiles(extra...),
		uimage.WithSkipLDD(),
		uimage.WithCPIOOutput(cpioPath),
	}
	if o.Debug {
		opts = append(opts,
			uimage.WithBusyboxCommands(DebugCommands...),
			uimage.WithShell("gosh"))
	}
	logf("building %s for linux/%s", o.Init, o.GOARCH)
	l := llog.New(slog.LevelWarn, func(format string, v ...any) { logf(format, v...) })
	if err := uimage.Create(l, opts...); err != nil {
		if ib.err != nil {
			return nil, ib.err
		}
		return nil, fmt.Errorf("initramfs: mkuimage: %w", err)
	}
	res.InitSize = ib.size

	st, err := os.Stat(cpioPath)
	if err != nil {
		return nil, err
	}
	res.CPIOSize = st.Size()
	c := newCompressor(o.Format, o.GOARCH)
	res.Compressor = c.String()
	logf("compressing %s with %s", mib(res.CPIOSize), c)
	// The modules' share is measured alongside, on the other core.
	modErr := make(chan error, 1)
	go func() {
		var err error
		if mods != nil && len(mods.Files) > 0 {
			res.ModulesCompressedSize, err = modulesCost(ctx, c, base, o.KernelDir, res.KVer, mods)
		}
		modErr <- err
	}()
	res.Size, err = compressFile(ctx, c, cpioPath, o.Output)
	if merr := <-modErr; err == nil {
		err = merr
	}
	if err != nil {
		return nil, err
	}
	logf("%s", res)
	return res, nil
}

// baseArchive makes the records that are not host files: the directories
// PID 1 mounts on, the console device (the kernel opens /dev/console for
// init's stdin/stdout/stderr before anything is mounted) and the trimmed
// module index.
func baseArchive(o *Options, res *Result) (*cpio.Archive, *moduleSet, error) {
	recs := []cpio.Record{
		cpio.Directory("dev", 0o755),
		cpio.Directory("proc", 0o555),
		cpio.Directory("sys", 0o555),
		cpio.Directory("run", 0o755),
		cpio.Directory("tmp", 0o1777),
		cpio.Directory("etc", 0o755),
		cpio.Directory("etc/lifeboat", 0o755),
		cpio.Directory(KeysDir, 0o755),
		cpio.CharDev("dev/console", 0o600, 5, 1),
		cpio.CharDev("dev/null", 0o666, 1, 3),
	}
	var mods *moduleSet
	if len(o.Modules) > 0 {
		modDir, kver, err := findModules(o.KernelDir, o.KVer)
		if err != nil {
			return nil, nil, err
		}
		o.KernelDir, o.KVer = modDir, kver
		res.KVer = kver
		ix, err := loadModuleIndex(modDir)
		if err != nil {
			return nil, nil, err
		}
		if mods, err = ix.resolve(o.Modules); err != nil {
			return nil, nil, err
		}
		builtin, err := os.ReadFile(filepath.Join(modDir, "modules.builtin"))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, nil, err
		}
		dir := path.Join(ModulesRoot, kver)
		recs = append(recs,
			cpio.Directory(ModulesRoot, 0o755),
			cpio.Directory(dir, 0o755),
			cpio.StaticFile(path.Join(dir, "modules.dep"), string(mods.depFile()), 0o644),
			cpio.StaticFile(path.Join(dir, "modules.builtin"), string(builtinFile(builtin)), 0o644))
		res.Builtin, res.Skipped = mods.Builtin, mods.Skipped
		for _, f := range mods.Files {
			res.Modules = append(res.Modules, imagePath(f))
			st, err := os.Stat(filepath.Join(modDir, f))
			if err != nil {
				return nil, nil, err
			}
			res.ModulesSize += st.Size()
		}
	}
	a, err := cpio.ArchiveFromRecords(recs)
	return a, mods, err
}

// findModules returns the lib/modules/KVER directory under dir and KVER.
func findModules(dir, kver string) (string, string, error) {
	if dir == "" {
		return "", "", fmt.Errorf("%w: modules asked for, no kernel directory given", ErrNoKernel)
	}
	if _, err := os.Stat(filepath.Join(dir, "modules.dep")); err == nil {
		if kver == "" {
			kver = filepath.Base(dir)
		}
		return dir, kver, nil
	}
	root := filepath.Join(dir, "lib", "modules")
	if kver == "" {
		ents, err := os.ReadDir(root)
		if err != nil {
			return "", "", fmt.Errorf("%w: %w", ErrNoKernel, err)
		}
		var vers []string
		for _, e := range ents {
			if e.IsDir() {
				vers = append(vers, e.Name())
			}
		}
		if len(vers) != 1 {
			return "", "", fmt.Errorf("%w: %s holds %d kernel versions %q, name one", ErrNoKernel, root, len(vers), vers)
		}
		kver = vers[0]
	}
	modDir := filepath.Join(root, kver)
	if _, err := os.Stat(modDir); err != nil {
		return "", "", fmt.Errorf("%w: %w", ErrNoKernel, err)
	}
	return modDir, kver, nil
}

// extraFiles lists host files for mkuimage as "src:dst".
func extraFiles(o *Options, res *Result, mods *moduleSet) ([]string, error) {
	var out []string
	add := func(src, dst string) error {
		abs, err := filepath.Abs(src)
		if err != nil {
			return err
		}
		if _, err := os.Stat(abs); err != nil {
			return err
		}
		// mkuimage splits "src:dst" at the first colon.
		if strings.Contains(abs, ":") {
			return &os.PathError{Op: "add to image", Path: abs, Err: errors.New("colon in path")}
		}
		out = append(out, abs+":"+strings.TrimPrefix(path.Clean(dst), "/"))
		return nil
	}
	if mods != nil {
		for _, f := range mods.Files {
			if err := add(filepath.Join(o.KernelDir, f), path.Join(ModulesRoot, res.KVer, imagePath(f))); err != nil {
				return nil, err
			}
		}
	}
	if o.BoardProfile != "" {
		if err := add(o.BoardProfile, BoardProfile); err != nil {
			return nil, err
		}
	}
	seen := map[string]string{}
	for _, k := range o.Keys {
		st, err := os.Stat(k)
		if err != nil {
			return nil, err
		}
		files := []string{k}
		if st.IsDir() {
			ents, err := os.ReadDir(k)
			if err != nil {
				return nil, err
			}
			files = files[:0]
			for _, e := range ents {
				if e.Type().IsRegular() {
					files = append(files, filepath.Join(k, e.Name()))
				}
			}
		}
		for _, f := range files {
			name := filepath.Base(f)
			if prev, ok := seen[name]; ok {
				return nil, &os.PathError{Op: "add key", Path: f, Err: fmt.Errorf("%w: same name as %s", os.ErrExist, prev)}
			}
			seen[name] = f
			if err := add(f, path.Join(KeysDir, name)); err != nil {
				return nil, err
			}
		}
	}
	if o.CACerts != "" {
		if err := add(o.CACerts, CACerts); err != nil {
			return nil, err
		}
	}
	for _, f := range o.Files {
		if err := add(f.Src, f.Dst); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// compressFile compresses src into dst, through a temporary file so that
// dst is either the old or the complete new image.
func compressFile(ctx context.Context, c compressor, src, dst string) (int64, error) {
	in, err := os.Open(src)
	if err != nil {
		return 0, err
	}
	defer in.Close()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return 0, err
	}
	out, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".*")
	if err != nil {
		return 0, err
	}
	defer os.Remove(out.Name())
	if err := c.compress(ctx, out, in); err != nil {
		out.Close()
		return 0, err
	}
	st, err := out.Stat()
	if err == nil {
		err = out.Chmod(0o644)
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, err
	}
	if err := os.Rename(out.Name(), dst); err != nil {
		return 0, err
	}
	return st.Size(), nil
}

// modulesCost compresses the module part of the archive on its own: what the
// modules add to the image.
func modulesCost(ctx context.Context, c compressor, base *cpio.Archive, modDir, kver string, mods *moduleSet) (int64, error) {
	pr, pw := io.Pipe()
	go func() {
		w := cpio.Newc.Writer(pw)
		err := func() error {
			for _, name := range []string{"modules.dep", "modules.builtin"} {
				if r, ok := base.Get(path.Join(ModulesRoot, kver, name)); ok {
					if err := w.WriteRecord(r); err != nil {
						return err
					}
				}
			}
			for _, f := range mods.Files {
				b, err := os.ReadFile(filepath.Join(modDir, f))
				if err != nil {
					return err
				}
				if err := w.WriteRecord(cpio.StaticFile(path.Join(ModulesRoot, kver, imagePath(f)), string(b), 0o644)); err != nil {
					return err
				}
			}
			return cpio.WriteTrailer(w)
		}()
		pw.CloseWithError(err)
	}()
	var n countWriter
	err := c.compress(ctx, &n, pr)
	pr.CloseWithError(err)
	return n.n, err
}

// initBuilder builds the Init command as /init. It implements mkuimage's
// builder.Builder so the command goes into the archive like any u-root
// command, but with the flags a PID 1 wants and from the build cache
// (mkuimage's own binary builder forces a full rebuild with -a).
type initBuilder struct {
	ctx    context.Context
	goarch string
	dir    string // where go build runs
	// ldflags and tags are Options.LDFlags and Options.Tags.
	ldflags string
	tags    []string
	size    int64
	err     error // the build's own error, with go's output
}

var _ builder.Builder = (*initBuilder)(nil)

// DefaultBinaryDir implements builder.Builder; /init sits at the root.
func (*initBuilder) DefaultBinaryDir() string { return "" }

// Build implements builder.Builder.
func (b *initBuilder) Build(_ *llog.Logger, af *uinitramfs.Files, opts builder.Opts) error {
	if len(opts.Packages) != 1 {
		b.err = fmt.Errorf("%w: want one init package, got %q", ErrBuild, opts.Packages)
		return b.err
	}
	bin := filepath.Join(opts.TempDir, "init")
	args := []string{"build", "-trimpath", strings.TrimSpace("-ldflags=-s -w -buildid= " + b.ldflags)}
	if len(b.tags) > 0 {
		args = append(args, "-tags="+strings.Join(b.tags, ","))
	}
	cmd := exec.CommandContext(b.ctx, "go", append(args, "-o", bin, opts.Packages[0])...)
	cmd.Dir = b.dir
	cmd.Env = append(slices.Clone(os.Environ()),
		"CGO_ENABLED=0", "GOOS=linux", "GOARCH="+b.goarch, "GOAMD64=v1")
	if out, err := cmd.CombinedOutput(); err != nil {
		b.err = fmt.Errorf("%w: %s: %w\n%s", ErrBuild, opts.Packages[0], err, bytes.TrimSpace(out))
		return b.err
	}
	st, err := os.Stat(bin)
	if err != nil {
		return err
	}
	b.size = st.Size()
	return af.AddFile(bin, "init")
}
