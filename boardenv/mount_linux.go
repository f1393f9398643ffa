package boardenv

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/lifeboat-updater/lifeboat/boards"
	"golang.org/x/sys/unix"
)

// ErrNotBlockDevice means a bootenv entry's file lives in a filesystem on
// something that is not a block device (a disk image given with
// --storage): the kernel can only mount block devices.
var ErrNotBlockDevice = errors.New("boardenv: not a block device")

// envFS is where the filesystems holding environment files are mounted:
// /run is a tmpfs in the rescue, swept at reboot.
const envFS = "/run"

// mountInfo lists the mounts of this process's namespace.
const mountInfo = "/proc/self/mountinfo"

// envMount is a filesystem that holds an environment file: mounted by
// Lifeboat (owned), or found mounted by someone else.
type envMount struct {
	dir   string
	owned *ownedMount // nil for a mount found in place
}

// ownedMount is a mount Lifeboat made. Two environments in one
// filesystem (or a store opened while the rescue holds another) share it;
// the last Close unmounts.
type ownedMount struct {
	key  string // major:minor
	dir  string // the mount point
	tmp  string // the private directory under /run holding it
	refs int
}

var (
	ownedMu sync.Mutex
	owned   = map[string]*ownedMount{}
)

// Dir is where the filesystem is mounted.
func (m *envMount) Dir() string { return m.dir }

// Close flushes the filesystem to the device, then unmounts it if
// Lifeboat mounted it and nothing else of Lifeboat's uses it.
func (m *envMount) Close() error {
	err := syncFS(m.dir)
	if m.owned == nil {
		return err
	}
	ownedMu.Lock()
	defer ownedMu.Unlock()
	o := m.owned
	m.owned = nil
	if o.refs--; o.refs > 0 {
		return err
	}
	delete(owned, o.key)
	if uerr := unix.Unmount(o.dir, 0); uerr != nil {
		return errors.Join(err, &os.PathError{Op: "unmount", Path: o.dir, Err: uerr})
	}
	return errors.Join(err, os.RemoveAll(o.tmp))
}

func syncFS(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.Syncfs(int(f.Fd())); err != nil {
		return &os.PathError{Op: "syncfs", Path: dir, Err: err}
	}
	return nil
}

// openFilesystem finds partition number (0: the whole device) of block
// device dev, and returns where its filesystem is mounted: an existing
// mount of it (found by major:minor in /proc/self/mountinfo), else a new
// read-write mount of type fstype on a private directory under /run.
func openFilesystem(r boards.Resolver, dev string, number int, fstype string) (*envMount, error) {
	node, rdev, err := partitionNode(r, dev, number)
	if err != nil {
		return nil, err
	}
	key := fmt.Sprintf("%d:%d", unix.Major(rdev), unix.Minor(rdev))
	ownedMu.Lock()
	defer ownedMu.Unlock()
	if o, ok := owned[key]; ok {
		o.refs++
		return &envMount{dir: o.dir, owned: o}, nil
	}
	f, err := os.Open(mountInfo)
	if err != nil {
		return nil, err
	}
	dir, found, err := findMount(f, key)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", mountInfo, err)
	}
	if found {
		return &envMount{dir: dir}, nil
	}
	return mountPrivate(key, node, rdev, fstype)
}

// mountPrivate mounts node on a new directory under /run. When the node
// is not the device (no devtmpfs), one is made beside the mount point.
func mountPrivate(key, node string, rdev uint64, fstype string) (*envMount, error) {
	if err := os.MkdirAll(envFS, 0o755); err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp(envFS, "lifeboat-env-")
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(tmp, "mnt")
	err = os.Mkdir(dir, 0o700)
	if err == nil && !isBlockDevice(node, rdev) {
		node = filepath.Join(tmp, "dev")
		if merr := unix.Mknod(node, unix.S_IFBLK|0o600, int(rdev)); merr != nil {
			err = &os.PathError{Op: "mknod", Path: node, Err: merr}
		}
	}
	if err == nil {
		// nosuid etc.: the filesystem holds boot files, nothing to run.
		if merr := unix.Mount(node, dir, fstype, unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); merr != nil {
			err = fmt.Errorf("mount %s (%s) on %s: %w", node, fstype, dir, merr)
			if errors.Is(merr, unix.ENODEV) {
				err = fmt.Errorf("%w (is the %s module in the board profile's modules?)", err, fstype)
			}
		}
	}
	if err != nil {
		os.RemoveAll(tmp)
		return nil, err
	}
	o := &ownedMount{key: key, dir: dir, tmp: tmp, refs: 1}
	owned[key] = o
	return &envMount{dir: dir, owned: o}, nil
}

func isBlockDevice(path string, rdev uint64) bool {
	var st unix.Stat_t
	return unix.Stat(path, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFBLK && st.Rdev == rdev
}

// partitionNode returns the device node and number of partition number
// of block device dev, looked up in sysfs (/sys/dev/block/MAJ:MIN/*/partition).
func partitionNode(r boards.Resolver, dev string, number int) (string, uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat(dev, &st); err != nil {
		return "", 0, &os.PathError{Op: "stat", Path: dev, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFBLK {
		return "", 0, fmt.Errorf("%w: %s (a filesystem can be mounted from a device only)", ErrNotBlockDevice, dev)
	}
	if number == 0 {
		return dev, st.Rdev, nil
	}
	sys, devDir := r.SysRoot, r.DevRoot
	if sys == "" {
		sys = "/sys"
	}
	if devDir == "" {
		devDir = "/dev"
	}
	disk := filepath.Join(sys, "dev", "block", fmt.Sprintf("%d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev)))
	ents, err := os.ReadDir(disk)
	if err != nil {
		return "", 0, err
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(disk, e.Name(), "partition"))
		if err != nil || strings.TrimSpace(string(b)) != strconv.Itoa(number) {
			continue
		}
		b, err = os.ReadFile(filepath.Join(disk, e.Name(), "dev"))
		if err != nil {
			return "", 0, err
		}
		var maj, mnr uint32
		if _, err := fmt.Sscanf(strings.TrimSpace(string(b)), "%d:%d", &maj, &mnr); err != nil {
			return "", 0, fmt.Errorf("%s: %w", filepath.Join(disk, e.Name(), "dev"), err)
		}
		return filepath.Join(devDir, e.Name()), unix.Mkdev(maj, mnr), nil
	}
	return "", 0, fmt.Errorf("%w: partition %d of %s is not known to the kernel (%s)", os.ErrNotExist, number, dev, disk)
}

// findMount returns the mount point of the filesystem on device key
// (major:minor) from a mountinfo listing, if it is mounted whole (root
// "/", not a bind mount of a subdirectory).
func findMount(r io.Reader, key string) (string, bool, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		// id parent major:minor root mountpoint options ...
		f := strings.Fields(sc.Text())
		if len(f) < 5 || f[2] != key || f[3] != "/" {
			continue
		}
		return unescapeMount(f[4]), true, nil
	}
	return "", false, sc.Err()
}

// unescapeMount undoes the kernel's octal escapes (\040 for a space) in
// a mountinfo path.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
