package ubi

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Where Linux shows UBI.
const (
	SysClassUBI = "/sys/class/ubi"
	DevDir      = "/dev"
	CtrlDev     = "/dev/ubi_ctrl"
)

// Sysfs reads UBI devices and volumes from a /sys/class/ubi directory;
// tests point it at a tree of their own.
type Sysfs string

func (s Sysfs) read(dir, file string) (string, error) {
	b, err := os.ReadFile(filepath.Join(string(s), dir, file))
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

func (s Sysfs) readInt(dir, file string) (int64, error) {
	v, err := s.read(dir, file)
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("ubi: %s/%s: %w", dir, file, err)
	}
	return n, nil
}

// Device reads /sys/class/ubi/ubiN.
func (s Sysfs) Device(num int) (DeviceInfo, error) {
	dir := fmt.Sprintf("ubi%d", num)
	if _, err := os.Stat(filepath.Join(string(s), dir)); errors.Is(err, fs.ErrNotExist) {
		return DeviceInfo{}, fmt.Errorf("%w: UBI device %d is not attached", ErrNotFound, num)
	}
	info := DeviceInfo{Num: num}
	var errs []error
	get := func(file string) int64 {
		n, err := s.readInt(dir, file)
		errs = append(errs, err)
		return n
	}
	info.MTDNum = int(get("mtd_num"))
	info.LEBSize = get("eraseblock_size")
	info.TotalLEBs = int(get("total_eraseblocks"))
	info.FreeLEBs = int(get("avail_eraseblocks"))
	info.MinIOSize = get("min_io_size")
	info.BadPEBs = int(get("bad_peb_count"))
	info.MaxVolumes = int(get("max_vol_count"))
	if err := errors.Join(errs...); err != nil {
		return DeviceInfo{}, fmt.Errorf("ubi: ubi%d: %w", num, err)
	}
	return info, nil
}

var volDir = regexp.MustCompile(`^ubi(\d+)_(\d+)$`)

// Volumes reads the volumes of ubiN, by ID.
func (s Sysfs) Volumes(num int) ([]Volume, error) {
	ents, err := os.ReadDir(string(s))
	if err != nil {
		return nil, fmt.Errorf("ubi: %w", err)
	}
	var vols []Volume
	for _, e := range ents {
		m := volDir.FindStringSubmatch(e.Name())
		if m == nil || m[1] != strconv.Itoa(num) {
			continue
		}
		id, _ := strconv.Atoi(m[2])
		v, err := s.volume(e.Name(), id)
		if err != nil {
			return nil, err
		}
		vols = append(vols, v)
	}
	slices.SortFunc(vols, func(a, b Volume) int { return a.ID - b.ID })
	return vols, nil
}

func (s Sysfs) volume(dir string, id int) (Volume, error) {
	v := Volume{ID: id}
	var errs []error
	get := func(file string) int64 {
		n, err := s.readInt(dir, file)
		errs = append(errs, err)
		return n
	}
	name, err := s.read(dir, "name")
	errs = append(errs, err)
	v.Name = name
	typ, err := s.read(dir, "type")
	errs = append(errs, err)
	switch typ {
	case "static":
		v.Type = Static
	default:
		v.Type = Dynamic
	}
	v.LEBs = int(get("reserved_ebs"))
	v.LEBSize = get("usable_eb_size")
	v.DataBytes = get("data_bytes")
	v.Alignment = int(get("alignment"))
	v.Corrupted = get("corrupted") != 0 || get("upd_marker") != 0
	if err := errors.Join(errs...); err != nil {
		return Volume{}, fmt.Errorf("ubi: %s: %w", dir, err)
	}
	return v, nil
}

// Attached returns the number of the UBI device attached to MTD device
// mtdNum, or false.
func (s Sysfs) Attached(mtdNum int) (int, bool) {
	ents, err := os.ReadDir(string(s))
	if err != nil {
		return 0, false
	}
	for _, e := range ents {
		var n int
		if _, err := fmt.Sscanf(e.Name(), "ubi%d", &n); err != nil || e.Name() != fmt.Sprintf("ubi%d", n) {
			continue
		}
		if m, err := s.readInt(e.Name(), "mtd_num"); err == nil && int(m) == mtdNum {
			return n, true
		}
	}
	return 0, false
}
