package partitions

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/lifeboat-updater/lifeboat/bundle"
)

// These tests write partition tables to real loop devices and check them
// with sgdisk and sfdisk. They need root and the Debian packages gdisk and
// fdisk (for sfdisk); util-linux gives losetup.

func needLoop(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("loop devices need root")
	}
	for _, tool := range []string{"losetup", "sgdisk", "sfdisk"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (Debian packages util-linux, gdisk, fdisk)", tool)
		}
	}
	if _, err := os.Stat("/dev/loop-control"); err != nil {
		t.Skipf("no loop device support: %v", err)
	}
}

// loopDevice attaches file to a free loop device with partition scanning
// and returns its path, e.g. /dev/loop3.
func loopDevice(t *testing.T, file string, sectorSize int) string {
	t.Helper()
	out, err := exec.Command("losetup", "--find", "--show", "--partscan",
		"--sector-size", strconv.Itoa(sectorSize), file).Output()
	if err != nil {
		t.Fatalf("losetup: %v", err)
	}
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() {
		if out, err := exec.Command("losetup", "-d", dev).CombinedOutput(); err != nil {
			t.Errorf("losetup -d %s: %v: %s", dev, err, out)
		}
	})
	return dev
}

// dumpEntry is one partition line of `sfdisk --dump`, in sectors.
type dumpEntry struct {
	Start, Size int64
	Type        string
	UUID        string
	Name        string
	Attrs       string
	Bootable    bool
}

type dump struct {
	Label, LabelID string
	SectorSize     int
	Parts          map[string]dumpEntry // by device node
}

func sfdiskDump(t *testing.T, dev string) dump {
	t.Helper()
	out, err := exec.Command("sfdisk", "--dump", dev).CombinedOutput()
	if err != nil {
		t.Fatalf("sfdisk --dump %s: %v: %s", dev, err, out)
	}
	d := dump{Parts: map[string]dumpEntry{}}
	for _, line := range strings.Split(string(out), "\n") {
		node, fields, isPart := strings.Cut(line, " : ")
		if !isPart {
			k, v, _ := strings.Cut(line, ": ")
			switch k {
			case "label":
				d.Label = v
			case "label-id":
				d.LabelID = v
			case "sector-size":
				d.SectorSize, _ = strconv.Atoi(v)
			}
			continue
		}
		var e dumpEntry
		for _, f := range strings.Split(fields, ", ") {
			k, v, _ := strings.Cut(strings.TrimSpace(f), "=")
			v = strings.Trim(strings.TrimSpace(v), `"`)
			switch k {
			case "start":
				e.Start, _ = strconv.ParseInt(v, 10, 64)
			case "size":
				e.Size, _ = strconv.ParseInt(v, 10, 64)
			case "type":
				e.Type = v
			case "uuid":
				e.UUID = v
			case "name":
				e.Name = v
			case "attrs":
				e.Attrs = v
			case "bootable":
				e.Bootable = true
			}
		}
		d.Parts[strings.TrimSpace(node)] = e
	}
	return d
}

// wantDump is what sfdisk should print for l on dev.
func wantDump(dev string, l *Layout) dump {
	ss := int64(l.SectorSize)
	d := dump{Label: "gpt", LabelID: strings.ToUpper(l.GUID), SectorSize: l.SectorSize, Parts: map[string]dumpEntry{}}
	if l.Type == "mbr" {
		d.Label, d.LabelID = "dos", "0x"+l.GUID
	}
	for _, p := range l.Partitions {
		e := dumpEntry{Start: p.Start / ss, Size: p.Size / ss, Bootable: l.Type == "mbr" && p.Bootable}
		if l.Type == "gpt" {
			e.Type, e.UUID, e.Name = strings.ToUpper(p.Type), strings.ToUpper(p.GUID), p.Name
			var attrs []string
			if p.Attributes&gptBootable != 0 {
				attrs = append(attrs, "LegacyBIOSBootable")
			}
			for bit := 48; bit < 64; bit++ {
				if p.Attributes&(1<<bit) != 0 {
					attrs = append(attrs, fmt.Sprintf("GUID:%d", bit))
				}
			}
			e.Attrs = strings.Join(attrs, " ")
		} else {
			v, _ := strconv.ParseUint(strings.TrimPrefix(p.Type, "0x"), 16, 8)
			e.Type = strconv.FormatUint(v, 16)
		}
		d.Parts[fmt.Sprintf("%sp%d", dev, p.Number)] = e
	}
	return d
}

// checkDisk cross-checks dev against l with the reference tools and the
// kernel's view.
func checkDisk(t *testing.T, dev string, l *Layout) {
	t.Helper()
	if diff := cmp.Diff(wantDump(dev, l), sfdiskDump(t, dev)); diff != "" {
		t.Errorf("sfdisk --dump %s mismatch (-want +got):\n%s", dev, diff)
	}
	if l.Type == "gpt" {
		sgdiskVerify(t, dev)
		out, err := exec.Command("sgdisk", "-p", dev).CombinedOutput()
		if err != nil {
			t.Errorf("sgdisk -p %s: %v: %s", dev, err, out)
		}
		for _, p := range l.Partitions {
			if !strings.Contains(string(out), "  "+p.Name+"\n") {
				t.Errorf("sgdisk -p %s does not name %q:\n%s", dev, p.Name, out)
			}
		}
	}
	checkKernel(t, dev, l)
}

// checkKernel checks that the kernel has the partitions of l: a device
// node each, and the right place in sysfs.
func checkKernel(t *testing.T, dev string, l *Layout) {
	t.Helper()
	base := filepath.Base(dev)
	for _, p := range l.Partitions {
		node := fmt.Sprintf("%sp%d", dev, p.Number)
		if fi, err := os.Stat(node); err != nil || fi.Mode()&os.ModeDevice == 0 {
			t.Errorf("partition node %s: %v", node, err)
		}
		sys := filepath.Join("/sys/class/block", fmt.Sprintf("%sp%d", base, p.Number))
		start, err1 := readSysInt(filepath.Join(sys, "start"))
		size, err2 := readSysInt(filepath.Join(sys, "size"))
		if err := errors.Join(err1, err2); err != nil || start*512 != p.Start || size*512 != p.Size {
			t.Errorf("kernel's %s: start %d size %d (%v), want %d, %d", node, start*512, size*512, err, p.Start, p.Size)
		}
	}
	if _, err := os.Stat(fmt.Sprintf("%sp%d", dev, len(l.Partitions)+1)); err == nil {
		t.Errorf("kernel has a partition %d, want %d partitions", len(l.Partitions)+1, len(l.Partitions))
	}
}

func TestApplyLoop(t *testing.T) {
	needLoop(t)
	tests := []struct {
		name       string
		table      bundle.Table
		size       int64
		sectorSize int
	}{
		{"gpt 16 GiB sparse", gptFixture, 16 * gib, 512},
		{"gpt 4k sectors", gptFixture, 256 * mib, 4096},
		{"mbr", mbrFixture, 256 * mib, 512},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dev := loopDevice(t, sparseFile(t, tt.size), tt.sectorSize)
			first, err := Apply(dev, &tt.table)
			if err != nil || !first.Wrote {
				t.Fatalf("Apply(%s) = %+v, %v; want written", dev, first, err)
			}
			if first.Layout.DiskSize != tt.size || first.Layout.SectorSize != tt.sectorSize {
				t.Errorf("Apply(%s) saw %d bytes in %d-byte sectors, want %d, %d", dev, first.Layout.DiskSize, first.Layout.SectorSize, tt.size, tt.sectorSize)
			}
			checkDisk(t, dev, first.Layout)

			second, err := Apply(dev, &tt.table)
			if err != nil || second.Wrote {
				t.Fatalf("Apply(%s) again = %+v, %v; want nothing written", dev, second, err)
			}
			if diff := cmp.Diff(first.Layout, second.Layout); diff != "" {
				t.Errorf("Apply(%s) again: layout mismatch (-first +second):\n%s", dev, diff)
			}
		})
	}
}

func TestApplyLoopBusy(t *testing.T) {
	needLoop(t)
	dev := loopDevice(t, sparseFile(t, 256*mib), 512)
	if _, err := Apply(dev, &gptFixture); err != nil {
		t.Fatal(err)
	}
	// Partition 1 in use: the kernel refuses BLKRRPART.
	p1, err := os.Open(dev + "p1")
	if err != nil {
		t.Fatal(err)
	}
	defer p1.Close()

	// Partitions 3 and 4 move: BLKPG updates them around the busy one.
	moved := gptFixture
	moved.Partitions = append([]bundle.Partition(nil), gptFixture.Partitions...)
	moved.Partitions[2].Size = 40 << 20
	res, err := Apply(dev, &moved)
	if err != nil || !res.Wrote {
		t.Fatalf("Apply(%s) with p1 open = %+v, %v; want written, no error", dev, res, err)
	}
	checkDisk(t, dev, res.Layout)

	// Partition 1 itself changes: the kernel cannot follow until it is
	// free. The table is written all the same.
	grown := moved
	grown.Partitions = append([]bundle.Partition(nil), moved.Partitions...)
	grown.Partitions[0].Size = 20 << 20
	res, err = Apply(dev, &grown)
	if !errors.Is(err, ErrReread) || !res.Wrote || !strings.Contains(err.Error(), "partition 1 is in use") {
		t.Fatalf("Apply(%s) changing open p1 = %+v, %v; want written and ErrReread naming partition 1", dev, res, err)
	}
	if diff := cmp.Diff(wantDump(dev, res.Layout), sfdiskDump(t, dev)); diff != "" {
		t.Errorf("sfdisk --dump %s mismatch (-want +got):\n%s", dev, diff)
	}
	p1.Close()

	// Nothing left to write, but the kernel is brought up to date.
	again, err := Apply(dev, &grown)
	if err != nil || again.Wrote {
		t.Fatalf("Apply(%s) after closing p1 = %+v, %v; want nothing written, no error", dev, again, err)
	}
	checkKernel(t, dev, again.Layout)

	// A partition is not a disk: refused before anything is written.
	if _, err := Apply(dev+"p2", &gptFixture); !errors.Is(err, ErrDevice) || !strings.Contains(err.Error(), "not a whole disk") {
		t.Errorf("Apply(%sp2) = %v, want ErrDevice: not a whole disk", dev, err)
	}
}

func TestApplyLoopNoPartscan(t *testing.T) {
	needLoop(t)
	file := sparseFile(t, 64*mib)
	out, err := exec.Command("losetup", "--find", "--show", file).Output()
	if err != nil {
		t.Fatalf("losetup: %v", err)
	}
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() { exec.Command("losetup", "-d", dev).Run() })
	table := bundle.Table{Type: "gpt", Partitions: []bundle.Partition{{Name: "data", Type: "linux"}}}
	res, err := Apply(dev, &table)
	if !errors.Is(err, ErrReread) || !res.Wrote {
		t.Fatalf("Apply(%s without partscan) = %+v, %v; want written and ErrReread", dev, res, err)
	}
	sgdiskVerify(t, dev)
	// The table matches now; the kernel cannot show it, and that is no
	// longer news.
	if res, err := Apply(dev, &table); err != nil || res.Wrote {
		t.Errorf("Apply(%s) again = %+v, %v; want nothing written, no error", dev, res, err)
	}
}

// TestReadDeviceLoop reads tables back from loop devices of 512- and
// 4096-byte logical sectors (4Kn eMMC and NVMe exist): ReadDevice asks the
// device, where a reader that assumed 512-byte sectors finds a 4Kn GPT's
// header in the wrong place.
func TestReadDeviceLoop(t *testing.T) {
	needLoop(t)
	for _, ss := range []int{512, 4096} {
		t.Run(strconv.Itoa(ss), func(t *testing.T) {
			dev := loopDevice(t, sparseFile(t, 256*mib), ss)
			res, err := Apply(dev, &gptFixture)
			if err != nil {
				t.Fatalf("Apply(%s) = %v", dev, err)
			}
			got, err := ReadDevice(dev)
			if err != nil {
				t.Fatalf("ReadDevice(%s) = %v", dev, err)
			}
			if diff := cmp.Diff(res.Layout, got); diff != "" {
				t.Errorf("ReadDevice(%s) mismatch (-applied +read):\n%s", dev, diff)
			}
			if got.SectorSize != ss {
				t.Errorf("ReadDevice(%s).SectorSize = %d, want %d", dev, got.SectorSize, ss)
			}
			if ss == 512 {
				return
			}
			f, err := os.Open(dev)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if l, err := Read(f, 256*mib, 512); err == nil && cmp.Equal(l.Partitions, got.Partitions) {
				t.Errorf("Read(%s) with 512-byte sectors found the 4Kn table too: the test shows nothing", dev)
			}
		})
	}
	blank := loopDevice(t, sparseFile(t, 64*mib), 4096)
	if _, err := ReadDevice(blank); !errors.Is(err, ErrNoTable) {
		t.Errorf("ReadDevice(blank %s) = %v, want ErrNoTable", blank, err)
	}
	if _, err := ReadDevice(filepath.Join(t.TempDir(), "missing")); !errors.Is(err, ErrDevice) {
		t.Errorf("ReadDevice(missing) = %v, want ErrDevice", err)
	}
}
