package install

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/lifeboat-updater/lifeboat/boards"
	"github.com/lifeboat-updater/lifeboat/bundle"
	"github.com/lifeboat-updater/lifeboat/exitcode"
	"github.com/lifeboat-updater/lifeboat/handlers"
	"github.com/lifeboat-updater/lifeboat/install/installtest"
)

// TestLoopDisk installs a partitioned disk on a loop device: the table
// goes on the whole device and the images into partitions through it, at
// the table's offsets, without partition device nodes. sgdisk and cmp
// check the result; a second install skips everything; an install cut
// half-way resumes.
func TestLoopDisk(t *testing.T) {
	installtest.NeedRoot(t, "sgdisk", "cmp")
	k := installtest.NewKey(t)
	dir := t.TempDir()
	boot := installtest.Data(11, 40*cs+333, cs)
	root := installtest.Data(12, 100*cs, cs)
	table := &bundle.Table{Type: "gpt", Partitions: []bundle.Partition{
		{Name: "boot", Type: "esp", Size: 4 << 20},
		{Name: "rootfs", Type: "linux", Size: 8 << 20},
		{Name: "data", Type: "linux"},
	}}
	m := installtest.Manifest(
		bundle.Step{Type: bundle.StepPartition, Target: "disk", Table: table},
		bundle.Step{Type: bundle.StepImage, Target: "boot", Image: "boot"},
		bundle.Step{Type: bundle.StepImage, Target: "rootfs", Image: "rootfs"},
		bundle.Step{Type: bundle.StepWipe, Target: "data"},
	)
	b := installtest.Bundle(t, k, m, cs, installtest.Image{Name: "boot", Data: boot}, installtest.Image{Name: "rootfs", Data: root})
	dev := installtest.Loop(t, installtest.File(t, dir, "disk.img", 32<<20, 0x5A), false)
	cfg := Config{Board: &boards.Profile{Name: installtest.Board, Storage: map[string]boards.Storage{"disk": {Paths: []string{dev}}}}}

	p, err := NewPlan(open(t, b, k, false), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Execute(context.Background()); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("sgdisk", "-v", dev).CombinedOutput(); err != nil || !strings.Contains(string(out), "No problems found") {
		t.Errorf("sgdisk -v %s: %v\n%s", dev, err, out)
	}
	for _, s := range p.Info().Steps[1:3] {
		img := filepath.Join(dir, s.Image)
		want := boot
		if s.Image == "rootfs" {
			want = root
		}
		if err := os.WriteFile(img, want, 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("cmp", "-i", fmt.Sprintf("%d:0", s.Offset), "-n", fmt.Sprint(len(want)), dev, img)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("%v: %v\n%s", cmd, err, out)
		}
	}

	// Again: nothing to write.
	p, err = NewPlan(open(t, b, k, false), cfg)
	if err != nil {
		t.Fatal(err)
	}
	res, err := p.Execute(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for i, n := range []int{41, 100} {
		if s := res.Steps[i+1]; s.SkippedChunks != n || s.WrittenChunks != 0 || s.ZeroedChunks != 0 {
			t.Errorf("second install, step %d: %+v, want %d chunks skipped and none written", s.Step, s, n)
		}
	}

	// A new rootfs, cut after 30 chunks, then resumed.
	root2 := installtest.Data(13, 100*cs, cs)
	b2 := installtest.Bundle(t, k, m, cs, installtest.Image{Name: "boot", Data: boot}, installtest.Image{Name: "rootfs", Data: root2})
	p, err = NewPlan(open(t, b2, k, false), cfg)
	if err != nil {
		t.Fatal(err)
	}
	p.wrap = func(t handlers.Target) handlers.Target { return &failingTarget{Target: t, left: 30 * cs} }
	if _, err := p.Execute(context.Background()); !errors.Is(err, errPowerCut) {
		t.Fatalf("interrupted install = %v, want the power cut", err)
	}
	p, err = NewPlan(open(t, b2, k, false), cfg)
	if err != nil {
		t.Fatal(err)
	}
	res, err = p.Execute(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// Of rootfs2's 100 chunks, 30 were written before the cut; 20 of
	// its zero chunks (i%5 == 3) come after it and are zeroed now.
	if s := res.Steps[2]; s.SkippedChunks < 30 || s.WrittenChunks+s.ZeroedChunks != 100-s.SkippedChunks {
		t.Errorf("resumed install: %+v, want at least the 30 chunks written before the cut skipped", s)
	}
	got := make([]byte, len(root2))
	f, err := os.Open(dev)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.ReadAt(got, p.Info().Steps[2].Offset); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, root2) {
		t.Error("rootfs partition does not hold the new image after the resumed install")
	}
}

func TestLoopReadOnly(t *testing.T) {
	installtest.NeedRoot(t)
	k := installtest.NewKey(t)
	b := imageBundle(t, k, installtest.Data(14, 3*cs, cs), 0)
	dev := installtest.Loop(t, installtest.File(t, t.TempDir(), "ro.img", 1<<20, 0), true)
	_, err := NewPlan(open(t, b, k, false), Config{Board: board(), Targets: map[string]string{"rootfs": dev}})
	if !errors.Is(err, handlers.ErrReadOnly) || ExitCode(err) != exitcode.TargetIO {
		t.Fatalf("NewPlan(read-only loop device) = %v (exit %d), want ErrReadOnly, exit %d", err, ExitCode(err), exitcode.TargetIO)
	}
	// Verify only reads: a read-only device is fine.
	p, err := NewPlan(open(t, b, k, false), Config{Board: board(), Targets: map[string]string{"rootfs": dev}, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Verify(context.Background()); !errors.Is(err, ErrDiffers) {
		t.Errorf("Verify(blank device) = %v, want ErrDiffers", err)
	}
}

// TestMountedTarget: a target holding a mounted filesystem is refused
// before anything is written. The disk holding / is one.
func TestMountedTarget(t *testing.T) {
	var st syscall.Stat_t
	if err := syscall.Stat("/", &st); err != nil {
		t.Fatal(err)
	}
	uevent, err := os.ReadFile(fmt.Sprintf("/sys/dev/block/%d:%d/uevent", unix.Major(st.Dev), unix.Minor(st.Dev)))
	if err != nil {
		t.Skipf("/ is not on a block device: %v", err)
	}
	var dev string
	for _, l := range strings.Split(string(uevent), "\n") {
		if n, ok := strings.CutPrefix(l, "DEVNAME="); ok {
			dev = "/dev/" + n
		}
	}
	if _, err := os.Stat(dev); err != nil || os.Geteuid() != 0 {
		t.Skipf("no device node %q for / or not root", dev)
	}
	k := installtest.NewKey(t)
	b := imageBundle(t, k, installtest.Data(16, 3*cs, cs), 0)
	// NewPlan only: it must refuse, and it writes nothing either way.
	_, err = NewPlan(open(t, b, k, false), Config{Board: board(), Targets: map[string]string{"rootfs": dev}})
	// (Where the device cgroup forbids opening the disk for writing,
	// that is the reason; handlers.TestInUseRoot checks the mount.)
	if !errors.Is(err, ErrTargetIO) {
		t.Errorf("NewPlan(target %s holding /) = %v, want ErrTargetIO", dev, err)
	}
}
