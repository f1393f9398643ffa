package mtd

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// Where Linux shows MTD devices.
const (
	SysClassMTD = "/sys/class/mtd"
	ProcMTD     = "/proc/mtd"
	DevDir      = "/dev"
)

// Partition is one line of /proc/mtd.
type Partition struct {
	Index     int    // N of /dev/mtdN
	Size      int64  // bytes
	EraseSize int64  // bytes
	Name      string // the partition's name, as the kernel was told
}

var procLine = regexp.MustCompile(`^mtd(\d+):\s+([0-9a-fA-F]+)\s+([0-9a-fA-F]+)\s+"(.*)"\s*$`)

// ParseProcMTD parses /proc/mtd:
//
//	dev:    size   erasesize  name
//	mtd0: 00100000 00020000 "u-boot"
func ParseProcMTD(r io.Reader) ([]Partition, error) {
	var parts []Partition
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		m := procLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue // the header
		}
		idx, _ := strconv.Atoi(m[1])
		size, err1 := strconv.ParseInt(m[2], 16, 64)
		es, err2 := strconv.ParseInt(m[3], 16, 64)
		if err := errors.Join(err1, err2); err != nil {
			return nil, fmt.Errorf("mtd: /proc/mtd line %q: %w", sc.Text(), err)
		}
		parts = append(parts, Partition{Index: idx, Size: size, EraseSize: es, Name: m[4]})
	}
	return parts, sc.Err()
}

var devName = regexp.MustCompile(`^mtd\d+$`)

// Finder resolves MTD names to device nodes. Its fields are the system's
// paths; tests point them at files of their own.
type Finder struct {
	SysClass string // SysClassMTD
	Proc     string // ProcMTD
	Dev      string // DevDir
}

// DefaultFinder looks in the system's own places.
var DefaultFinder = Finder{SysClass: SysClassMTD, Proc: ProcMTD, Dev: DevDir}

// Lookup returns the character device path for name: a path (starting
// with "/") is returned as is, "mtdN" is /dev/mtdN, anything else is an
// MTD name from /sys/class/mtd/*/name, or /proc/mtd where there is no
// sysfs. It returns an error wrapping ErrNotFound if no device has it.
func (f Finder) Lookup(name string) (string, error) {
	if strings.HasPrefix(name, "/") {
		return name, nil
	}
	if devName.MatchString(name) {
		return filepath.Join(f.Dev, name), nil
	}
	if ents, err := os.ReadDir(f.SysClass); err == nil {
		for _, e := range ents {
			if !devName.MatchString(e.Name()) { // not the mtdNro twins
				continue
			}
			b, err := os.ReadFile(filepath.Join(f.SysClass, e.Name(), "name"))
			if err != nil {
				continue
			}
			if strings.TrimRight(string(b), "\n") == name {
				return filepath.Join(f.Dev, e.Name()), nil
			}
		}
	}
	b, err := os.ReadFile(f.Proc)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("mtd: %w", err)
	}
	parts, err := ParseProcMTD(strings.NewReader(string(b)))
	if err != nil {
		return "", err
	}
	for _, p := range parts {
		if p.Name == name {
			return filepath.Join(f.Dev, fmt.Sprintf("mtd%d", p.Index)), nil
		}
	}
	return "", fmt.Errorf("%w: no MTD device is named %q", ErrNotFound, name)
}

// Lookup is DefaultFinder.Lookup.
func Lookup(name string) (string, error) { return DefaultFinder.Lookup(name) }

// Index returns N of a /dev/mtdN path (what UBI attaches by).
func Index(path string) (int, error) {
	base := filepath.Base(path)
	if !devName.MatchString(base) {
		return 0, fmt.Errorf("%w: %s is not an MTD character device name", ErrNotFound, path)
	}
	return strconv.Atoi(strings.TrimPrefix(base, "mtd"))
}

// IsCharDevice reports whether path is an MTD character device, /dev/mtdN:
// a character device whose name says so.
func IsCharDevice(path string) bool {
	fi, err := os.Stat(path)
	if err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		return false
	}
	_, err = Index(path)
	return err == nil
}
