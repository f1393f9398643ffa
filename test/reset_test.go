package test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/lifeboat-updater/lifeboat/demo"
	"github.com/lifeboat-updater/lifeboat/partitions"
	"github.com/lifeboat-updater/lifeboat/rescue"
)

// installedDisk is the demo device as the factory left it (the factory
// bundle's images, laid out by AssembleDisk), with its state partition
// ("data") full of the device's own data.
func installedDisk(t *testing.T, p *demo.Prepared) (disk string, data partitions.Partition) {
	t.Helper()
	disk = filepath.Join(t.TempDir(), "disk.img")
	if err := demo.AssembleDisk(context.Background(), p.Artifacts, disk, demo.DefaultDiskSize); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(disk, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	l, err := partitions.Read(f, demo.DefaultDiskSize, 512)
	if err != nil {
		t.Fatal(err)
	}
	data, ok := l.Find(demo.PartData)
	if !ok {
		t.Fatalf("no %s partition", demo.PartData)
	}
	// The device's data: at the start, in the middle and at the end.
	block := bytes.Repeat([]byte("the device's own data "), 1<<16)[:1<<20]
	for _, off := range []int64{0, data.Size / 2, data.Size - 1<<20} {
		if _, err := f.WriteAt(block, data.Start+off); err != nil {
			t.Fatal(err)
		}
	}
	return disk, data
}

// outside hashes the disk except the range of data: the partition table,
// the bootloader, its environment, the rescue and the production system.
func outside(t *testing.T, disk string, data partitions.Partition) [2][32]byte {
	t.Helper()
	f, err := os.Open(disk)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out [2][32]byte
	for i, r := range [][2]int64{{0, data.Start}, {data.Start + data.Size, demo.DefaultDiskSize}} {
		h := sha256.New()
		if _, err := io.Copy(h, io.NewSectionReader(f, r[0], r[1]-r[0])); err != nil {
			t.Fatal(err)
		}
		copy(out[i][:], h.Sum(nil))
	}
	return out
}

// checkWiped checks that the state partition's first and last MiB read as
// zeros and that nothing else on the disk changed.
func checkWiped(t *testing.T, disk string, data partitions.Partition, before [2][32]byte) {
	t.Helper()
	f, err := os.Open(disk)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zero := make([]byte, 1<<20)
	got := make([]byte, 1<<20)
	for _, off := range []int64{data.Start, data.Start + data.Size - 1<<20} {
		if _, err := f.ReadAt(got, off); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, zero) {
			t.Errorf("the state partition's MiB at disk offset %d is not zero", off)
		}
	}
	if after := outside(t, disk, data); after != before {
		t.Errorf("a factory reset changed the disk outside the state partition (partition table, bootloader, rescue or production system)")
	}
}

// TestFactoryReset boots the rescue with lifeboat.reason=factory-reset and
// no network: it wipes the state partition the profile names, leaves
// every other byte of the disk as it was, and reboots.
func TestFactoryReset(t *testing.T) {
	t.Parallel()
	p := prepared(t)
	disk, data := installedDisk(t, p)
	before := outside(t, disk, data)
	v, tl := bootRescue(t, p, rescueBoot{Disk: disk, NICs: []string{"none"}, Params: []string{"lifeboat.reason=factory-reset"}})
	expect(t, v, demo.MarkReason+"factory reset requested (lifeboat.reason=factory-reset); action: factory reset", 90*time.Second)
	expect(t, v, "lifeboat: "+rescue.MsgFactoryReset+"1 state partition(s)", time.Minute)
	expect(t, v, demo.MarkRebooting, 30*time.Second)
	if err := v.WaitTimeout(time.Minute); err != nil {
		t.Fatalf("the rescue did not reboot after the factory reset: %v", err)
	}
	reason, _ := tl.First(demo.MarkReason)
	done, _ := tl.First(rescue.MsgFactoryReset)
	t.Logf("MEASURE factory reset: reason at %v, done at %v (%d MiB state partition)", reason.Round(10*time.Millisecond), done.Round(10*time.Millisecond), data.Size>>20)
	checkWiped(t, disk, data, before)
	// The reset runs through the install engine: its plan and steps are
	// events like an install's, between the reason and the summary.
	var kinds []string
	for _, e := range tl.Events() {
		if k := e.Kind(); k != "progress" {
			kinds = append(kinds, k)
		}
	}
	want := []string{"reason", "plan", "step-start", "step-done", "done", "factory-reset"}
	if !slices.Equal(kinds, want) {
		t.Errorf("events %v, want %v (progress left out)", kinds, want)
	}
}
