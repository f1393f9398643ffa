package demo

import (
	"compress/gzip"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"

	"github.com/lifeboat-updater/lifeboat/kmod"
	"github.com/u-root/mkuimage/cpio"
)

// DefaultModules are what the production init needs to mount its root:
// the virtio disk and ext4. crc32c comes first because ext4 and jbd2 ask
// the crypto API for it (a softdep that modules.dep does not list), and
// a metadata_csum file system does not mount without it.
var DefaultModules = []string{"virtio_pci", "virtio_blk", "crc32c_generic", "ext4"}

// prodInitPkg is the production init's import path.
const prodInitPkg = "github.com/lifeboat-updater/lifeboat/demo/prodinit"

// ResolveModules returns the module files (relative to modulesDir, which
// is lib/modules/KVER with a modules.dep) that loading names needs, each
// after the modules it depends on. Modules built into the kernel are left
// out.
func ResolveModules(modulesDir string, names []string) ([]string, error) {
	dep, err := kmod.ReadDep(modulesDir)
	if err != nil {
		return nil, err
	}
	builtin, err := kmod.ReadBuiltin(modulesDir)
	if err != nil {
		return nil, err
	}
	files, err := dep.Resolve(names, builtin)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrModule, err)
	}
	return files, nil
}

// buildInit compiles the production init: static, and for the baseline
// x86-64 so any QEMU CPU model runs it.
func buildInit(ctx context.Context, srcDir, out string) error {
	gobin, err := exec.LookPath("go")
	if err != nil {
		// The toolchain's folder may be off PATH (sudo, cron); this is
		// where the project's machines install it.
		gobin = "/usr/local/go/bin/go"
	}
	cmd := exec.CommandContext(ctx, gobin, "build", "-trimpath", "-buildvcs=false", "-ldflags", "-s -w", "-o", out, prodInitPkg)
	cmd.Dir = srcDir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64", "GOAMD64=v1")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %w: %s", prodInitPkg, err, strings.TrimSpace(string(b)))
	}
	return nil
}

// initConf is the production init's /etc/demo/init.conf.
func initConf(o *Options) string {
	fail := "0"
	if o.FailBoot {
		fail = "1"
	}
	return fmt.Sprintf("product=%s\nversion=%s\nfail_boot=%s\n", Product, o.Version, fail)
}

// writeInitramfs writes the production initramfs, a gzip'd newc cpio.
func writeInitramfs(o *Options, initPath, out string) error {
	kver := filepath.Base(o.ModulesDir)
	mods, err := ResolveModules(o.ModulesDir, o.Modules)
	if err != nil {
		return err
	}
	initBin, err := os.ReadFile(initPath)
	if err != nil {
		return err
	}
	recs := []cpio.Record{
		cpio.Directory("dev", 0o755),
		cpio.CharDev("dev/console", 0o600, 5, 1),
		cpio.Directory("proc", 0o555),
		cpio.Directory("sys", 0o555),
		cpio.Directory("root", 0o700),
		cpio.Directory("etc", 0o755),
		cpio.Directory("etc/demo", 0o755),
		cpio.StaticFile("etc/demo/init.conf", initConf(o), 0o644),
		cpio.StaticFile("init", string(initBin), 0o755),
	}
	var list strings.Builder
	for _, m := range mods {
		b, err := os.ReadFile(filepath.Join(o.ModulesDir, m))
		if err != nil {
			return err
		}
		p := path.Join("lib/modules", kver, m)
		recs = append(recs, cpio.StaticFile(p, string(b), 0o644))
		fmt.Fprintf(&list, "/%s\n", p)
	}
	recs = append(recs, cpio.StaticFile("etc/demo/modules", list.String(), 0o644))

	f, err := os.Create(out)
	if err != nil {
		return err
	}
	zw, err := gzip.NewWriterLevel(f, gzip.BestCompression)
	if err != nil {
		f.Close()
		return err
	}
	// WriteRecordsAndDirs adds the parent folders the kernel would not
	// create by itself; it needs a deduplicating writer.
	w := cpio.NewDedupWriter(cpio.Newc.Writer(zw))
	for i := range recs {
		recs[i] = cpio.MakeReproducible(recs[i])
	}
	err = cpio.WriteRecordsAndDirs(w, recs)
	if err == nil {
		err = cpio.WriteTrailer(w)
	}
	if err == nil {
		err = zw.Close()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("initramfs %s: %w", out, err)
	}
	return nil
}
