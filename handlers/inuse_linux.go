package handlers

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// InUse reports whether bytes [off, off+size) of the block device at path
// hold a mounted filesystem or an active swap area, and names it: the
// device itself, or a partition of it whose range overlaps. Writing there
// would corrupt a running system (a host's root disk named by mistake).
// Regular files are never in use. It reads /proc/self/mountinfo,
// /proc/swaps and /sys.
func InUse(path string, off, size int64) (string, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return "", err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFBLK {
		return "", nil
	}
	var users []user
	if f, err := os.Open("/proc/self/mountinfo"); err == nil {
		users = append(users, mountUsers(f)...)
		f.Close()
	}
	if f, err := os.Open("/proc/swaps"); err == nil {
		users = append(users, swapUsers(f)...)
		f.Close()
	}
	return inUse("/sys", uint64(st.Rdev), off, size, users), nil
}

// user is a block device something has open: a mount or a swap area.
type user struct {
	dev  uint64
	what string
}

// mountUsers parses mountinfo: field 3 is the device, field 5 the mount
// point.
func mountUsers(r io.Reader) []user {
	var us []user
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 5 {
			continue
		}
		maj, min, ok := strings.Cut(f[2], ":")
		if !ok || maj == "0" {
			continue // not a block device
		}
		a, err1 := strconv.ParseUint(maj, 10, 32)
		b, err2 := strconv.ParseUint(min, 10, 32)
		if err1 == nil && err2 == nil {
			us = append(us, user{unix.Mkdev(uint32(a), uint32(b)), "mounted at " + f[4]})
		}
	}
	return us
}

func swapUsers(r io.Reader) []user {
	var us []user
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 || f[1] != "partition" {
			continue
		}
		var st unix.Stat_t
		if unix.Stat(f[0], &st) == nil {
			us = append(us, user{uint64(st.Rdev), "swap " + f[0]})
		}
	}
	return us
}

// inUse finds a user of dev, or of a partition of dev overlapping
// [off, off+size). sys is where sysfs is mounted.
func inUse(sys string, dev uint64, off, size int64, users []user) string {
	for _, u := range users {
		if u.dev == dev {
			return u.what
		}
		// Is u a partition of dev? sysfs puts a partition's directory
		// inside its disk's, with its start and size in 512-byte units.
		d := filepath.Join(sys, "dev", "block", fmt.Sprintf("%d:%d", unix.Major(u.dev), unix.Minor(u.dev)))
		real, err := filepath.EvalSymlinks(d)
		if err != nil {
			continue
		}
		parent, err := os.ReadFile(filepath.Join(filepath.Dir(real), "dev"))
		if err != nil || strings.TrimSpace(string(parent)) != fmt.Sprintf("%d:%d", unix.Major(dev), unix.Minor(dev)) {
			continue
		}
		start, err1 := readInt(filepath.Join(real, "start"))
		n, err2 := readInt(filepath.Join(real, "size"))
		if err1 != nil || err2 != nil {
			continue
		}
		if start*512 < off+size && off < (start+n)*512 {
			return fmt.Sprintf("partition %s %s", filepath.Base(real), u.what)
		}
	}
	return ""
}

func readInt(path string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
}
