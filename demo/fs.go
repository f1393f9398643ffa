package demo

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// epoch is the time every file in the images carries, so that two builds
// of the same version give the same bytes (and an update between versions
// changes only the chunks that really differ).
var epoch = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// file is one file to put in a file system image.
type file struct {
	path string // relative
	data []byte // nil: copy from src
	src  string
	mode os.FileMode
}

// stage lays out files under dir, with fixed times.
func stage(dir string, files []file, dirs []string) error {
	for _, d := range dirs {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	for _, f := range files {
		p := filepath.Join(dir, f.path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		var err error
		if f.data != nil {
			err = os.WriteFile(p, f.data, f.mode)
		} else {
			err = copyFile(f.src, p, f.mode)
		}
		if err != nil {
			return err
		}
	}
	return filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Chtimes(p, epoch, epoch)
	})
}

func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// fsUUID derives a stable UUID from a name, so images are reproducible.
func fsUUID(name string) string {
	h := sha256.Sum256([]byte("lifeboat demo " + name))
	h[6] = h[6]&0x0f | 0x40 // version 4 layout
	h[8] = h[8]&0x3f | 0x80 // RFC 4122 variant
	return fmt.Sprintf("%x-%x-%x-%x-%x", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16])
}

// mkfs makes an ext2/ext4 image of size bytes at out from the files under
// dir, without mounting anything (mke2fs -d).
func mkfs(ctx context.Context, fstype, label, dir, out string, size uint64, blockSize int) error {
	if err := os.Remove(out); err != nil && !os.IsNotExist(err) {
		return err
	}
	uuid := fsUUID(label)
	args := []string{
		"-q", "-F", "-t", fstype, "-b", strconv.Itoa(blockSize), "-m", "0",
		"-L", label, "-U", uuid, "-E", "hash_seed=" + uuid + ",root_owner=0:0",
		"-d", dir, out, strconv.FormatUint(size/kib, 10) + "k",
	}
	if err := runEnv(ctx, []string{"E2FSPROGS_FAKE_TIME=" + strconv.FormatInt(epoch.Unix(), 10)}, "mke2fs", args...); err != nil {
		return err
	}
	return fixCtimes(ctx, dir, out)
}

// fixCtimes sets the change time of every inode mke2fs copied from dir to
// epoch, as the other times already are: mke2fs -d copies each file's
// ctime, which no one can set on the source files, and it would make every
// build's inode tables differ.
func fixCtimes(ctx context.Context, dir, img string) error {
	var cmds strings.Builder
	err := filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		fmt.Fprintf(&cmds, "set_inode_field \"/%s\" ctime @%d\n", filepath.ToSlash(rel), epoch.Unix())
		return nil
	})
	if err != nil {
		return err
	}
	f, err := os.CreateTemp("", "debugfs-*.cmd")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	_, err = f.WriteString(cmds.String())
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return run(ctx, "debugfs", "-w", "-f", f.Name(), img)
}

// fileOffset returns the byte offset in the ext2/ext4 image img of the
// file at path, which must fit in one block of blockSize bytes.
func fileOffset(ctx context.Context, img, path string, blockSize int) (uint64, error) {
	cmd := exec.CommandContext(ctx, "debugfs", "-R", "bmap "+path+" 0", img)
	out, err := cmd.Output()
	if err != nil {
		return 0, fmt.Errorf("%w: debugfs bmap %s in %s: %w", ErrTool, path, img, err)
	}
	blk, err := strconv.ParseUint(strings.TrimSpace(string(out)), 10, 64)
	if err != nil || blk == 0 {
		return 0, fmt.Errorf("%w: debugfs bmap %s in %s printed %q", ErrTool, path, img, out)
	}
	return blk * uint64(blockSize), nil
}

// filler returns n bytes of incompressible data that depend only on seed:
// stand-ins for a real system's binaries and assets.
func filler(seed string, n int) []byte {
	h := sha256.Sum256([]byte(seed))
	var s [32]byte
	copy(s[:], h[:])
	r := rand.New(rand.NewChaCha8(s))
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		v := r.Uint64()
		for j := 0; j < 8; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b
}

// rootfsFiles is the production root file system's content. Most of it
// (assets.bin) is the same in every version; release.bin and the /etc
// files change with the version, as a real update's would.
func rootfsFiles(o *Options) []file {
	return []file{
		{path: "etc/demo-release", data: []byte(o.Version + "\n"), mode: 0o644},
		{path: "etc/os-release", data: []byte(fmt.Sprintf("NAME=%q\nID=%s\nVERSION_ID=%q\nPRETTY_NAME=\"%s %s\"\n", Product, Product, o.Version, Product, o.Version)), mode: 0o644},
		{path: "etc/hostname", data: []byte("demo\n"), mode: 0o644},
		{path: "usr/share/demo/README", data: []byte(Product + ": the production root file system Lifeboat's demo installs.\n"), mode: 0o644},
		{path: "usr/lib/demo/assets.bin", data: filler("assets", o.RootfsFillMiB*mib), mode: 0o644},
		{path: "usr/lib/demo/release.bin", data: filler("release "+o.Version, 1*mib), mode: 0o644},
	}
}

var rootfsDirs = []string{"bin", "dev", "proc", "sys", "tmp", "run", "var", "data", "usr/bin"}
