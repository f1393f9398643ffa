package boardenv

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/lifeboat-updater/lifeboat/boards"
	"github.com/lifeboat-updater/lifeboat/bootenv"
	"github.com/lifeboat-updater/lifeboat/initramfs"
	"github.com/lifeboat-updater/lifeboat/internal/vm"
	"golang.org/x/sys/unix"
)

func TestFindMount(t *testing.T) {
	const info = `22 1 0:21 / /proc rw,nosuid shared:5 - proc proc rw
30 22 8:1 /sub /bind rw shared:1 - vfat /dev/sda1 rw
31 22 8:1 / /boot\040firmware rw shared:1 - vfat /dev/sda1 rw
32 22 8:2 / /data rw shared:1 - ext4 /dev/sda2 rw
`
	for _, tc := range []struct {
		key, dir string
		found    bool
	}{
		{"8:1", "/boot firmware", true}, // the bind mount of /sub is passed over
		{"8:2", "/data", true},
		{"8:3", "", false},
		{"0:2", "", false},
	} {
		dir, found, err := findMount(strings.NewReader(info), tc.key)
		if err != nil || dir != tc.dir || found != tc.found {
			t.Errorf("findMount(%s) = %q, %v, %v; want %q, %v", tc.key, dir, found, err, tc.dir, tc.found)
		}
	}
}

func TestOpenEntryErrors(t *testing.T) {
	p := &boards.Profile{Name: "b", Storage: map[string]boards.Storage{"disk": {Paths: []string{"/nonexistent/disk"}}}}
	for _, tc := range []struct {
		name  string
		entry boards.BootEnv
		want  error
	}{
		{"no device", boards.BootEnv{Type: "uboot", File: "uboot.env"}, bootenv.ErrConfig},
		{"path too", boards.BootEnv{Type: "uboot", Device: "disk", Path: "/x", File: "uboot.env"}, bootenv.ErrConfig},
		{"redundant", boards.BootEnv{Type: "uboot", Device: "disk", File: "uboot.env", Redundant: 16384}, bootenv.ErrConfig},
		{"outside", boards.BootEnv{Type: "uboot", Device: "disk", File: "../uboot.env"}, bootenv.ErrConfig},
		{"absolute", boards.BootEnv{Type: "uboot", Device: "disk", File: "/uboot.env"}, bootenv.ErrConfig},
		{"type", boards.BootEnv{Type: "efi", Path: "/x"}, bootenv.ErrConfig},
		{"no device found", boards.BootEnv{Type: "uboot", Device: "disk", Partition: "boot", File: "uboot.env"}, boards.ErrNoDevice},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p.BootEnv = map[string]boards.BootEnv{"uboot": tc.entry}
			s, err := Open(p, boards.Resolver{SysRoot: t.TempDir()}, Target{Name: "uboot"})
			if err == nil || !errors.Is(err, tc.want) {
				t.Errorf("Open(%+v) = %v, %v; want %v", tc.entry, s, err, tc.want)
			}
		})
	}
	if _, err := Open(p, boards.Resolver{}, Target{Name: "other"}); !errors.Is(err, ErrNoEntry) {
		t.Errorf("Open(no such entry) = %v, want ErrNoEntry", err)
	}
	// A file given on the command line wins over the entry's filesystem.
	f := filepath.Join(t.TempDir(), "uboot.env")
	os.WriteFile(f, make([]byte, 0x4000), 0o644)
	e := boards.BootEnv{Type: "uboot", Device: "disk", Partition: "boot", File: "uboot.env"}
	cfg, fsys, err := config(p, boards.Resolver{}, "uboot", e, f)
	want := bootenv.Config{Type: bootenv.UBoot, Size: 0x4000, Copies: []bootenv.Location{{Path: f}}}
	if err != nil || fsys != nil {
		t.Fatalf("config(--target) = %v, %v", fsys, err)
	}
	if diff := cmp.Diff(want, cfg); diff != "" {
		t.Errorf("config(--target) mismatch (-want +got):\n%s", diff)
	}
	// Without a profile entry, a file the size of a GRUB block is one.
	g := filepath.Join(t.TempDir(), "grubenv")
	os.WriteFile(g, make([]byte, bootenv.GRUBEnvSize), 0o644)
	cfg, _, err = config(nil, boards.Resolver{}, "grubenv", boards.BootEnv{}, g)
	if err != nil || cfg.Type != bootenv.GRUB || cfg.Path != g {
		t.Errorf("config(grubenv file) = %+v, %v; want GRUB at %s", cfg, err, g)
	}
}

// TestPartitionNode finds a partition's node through a sysfs tree made
// for the test, below a block device node made for it too.
func TestPartitionNode(t *testing.T) {
	dir := t.TempDir()
	disk := filepath.Join(dir, "disk")
	if err := unix.Mknod(disk, unix.S_IFBLK|0o600, int(unix.Mkdev(253, 16))); err != nil {
		t.Skipf("cannot make a block device node (needs root): %v", err)
	}
	sys := filepath.Join(dir, "sys")
	for name, files := range map[string]map[string]string{
		"vdb1":  {"partition": "1\n", "dev": "253:17\n"},
		"vdb2":  {"partition": "2\n", "dev": "253:18\n"},
		"queue": {"rotational": "0\n"},
	} {
		d := filepath.Join(sys, "dev", "block", "253:16", name)
		os.MkdirAll(d, 0o755)
		for f, v := range files {
			os.WriteFile(filepath.Join(d, f), []byte(v), 0o644)
		}
	}
	r := boards.Resolver{SysRoot: sys, DevRoot: "/devroot"}
	for _, tc := range []struct {
		number int
		node   string
		rdev   uint64
	}{
		{0, disk, unix.Mkdev(253, 16)},
		{2, "/devroot/vdb2", unix.Mkdev(253, 18)},
	} {
		node, rdev, err := partitionNode(r, disk, tc.number)
		if err != nil || node != tc.node || rdev != tc.rdev {
			t.Errorf("partitionNode(%d) = %q, %#x, %v; want %q, %#x", tc.number, node, rdev, err, tc.node, tc.rdev)
		}
	}
	if _, _, err := partitionNode(r, disk, 3); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("partitionNode(3) = %v, want ErrNotExist", err)
	}
	if _, _, err := partitionNode(r, filepath.Join(sys, "dev", "block", "253:16", "vdb1", "dev"), 1); !errors.Is(err, ErrNotBlockDevice) {
		t.Errorf("partitionNode(regular file) = %v, want ErrNotBlockDevice", err)
	}
}

// TestEnvFileInFilesystem runs `lifeboat env set` on a uboot.env inside a
// partition of a loop device, first with the partition not mounted (it is
// mounted under /run and unmounted again), then with it mounted (that
// mount is used, nothing more mounted). The host kernel has ext4 but no
// vfat, so the filesystem here is ext4 ("fstype"); vfat is TestVMEnvFAT's.
func TestFileInFilesystem(t *testing.T) {
	for _, tool := range []string{"losetup", "partx", "sgdisk", "mkfs.ext4", "debugfs", "mkenvimage", "fw_printenv"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (Debian util-linux, gdisk, e2fsprogs, u-boot-tools, libubootenv-tool): %v", tool, err)
		}
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root for loop devices and mount")
	}
	dir := t.TempDir()
	envFile := makeUBootEnv(t, dir, "bootcmd=run distro\nkeep=me\n")
	root := filepath.Join(dir, "root")
	os.MkdirAll(root, 0o755)
	data, _ := os.ReadFile(envFile)
	os.WriteFile(filepath.Join(root, "uboot.env"), data, 0o644)
	part := filepath.Join(dir, "part.img")
	runTool(t, "mkfs.ext4", "-q", "-F", "-d", root, part, "4M")
	disk := filepath.Join(dir, "disk.img")
	const partStart = 2048 * 512
	makeGPTDisk(t, disk, part, partStart)
	loop := strings.TrimSpace(runTool(t, "losetup", "--show", "-f", "-P", disk))
	t.Cleanup(func() { exec.Command("losetup", "-d", loop).Run() })

	board := &boards.Profile{Name: "fat-board", Storage: map[string]boards.Storage{"disk": {Paths: []string{loop}}},
		BootEnv: map[string]boards.BootEnv{"uboot": {Type: "uboot", Device: "disk", Partition: "boot", File: "uboot.env", FSType: "ext4"}}}
	apply := func(t *testing.T, set map[string]string) {
		t.Helper()
		s, err := Open(board, boards.Resolver{}, Target{Name: "uboot"})
		if err != nil {
			t.Fatalf("Open = %v", err)
		}
		if err := s.Apply(set, nil); err != nil {
			t.Errorf("Apply(%v) = %v", set, err)
		}
		if err := s.Close(); err != nil {
			t.Errorf("Close = %v", err)
		}
	}
	get := func(t *testing.T, name string) string {
		t.Helper()
		s, err := Open(board, boards.Resolver{}, Target{Name: "uboot"})
		if err != nil {
			t.Fatalf("Open = %v", err)
		}
		defer s.Close()
		env, err := s.Load()
		if err != nil {
			t.Fatalf("Load = %v", err)
		}
		return env.Vars()[name]
	}
	var st unix.Stat_t
	if err := unix.Stat(loop, &st); err != nil {
		t.Fatal(err)
	}
	node, rdev, err := partitionNode(boards.Resolver{}, loop, 1)
	if err != nil {
		// This host's kernel reads no GPT itself; partx adds the
		// partitions it finds (BLKPG).
		runTool(t, "partx", "-a", loop)
		node, rdev, err = partitionNode(boards.Resolver{}, loop, 1)
	}
	if err != nil {
		t.Skipf("the kernel shows no partition on %s: %v", loop, err)
	}
	key := fmt.Sprintf("%d:%d", unix.Major(rdev), unix.Minor(rdev))
	mounts := func() int {
		b, _ := os.ReadFile(mountInfo)
		n := 0
		for _, l := range strings.Split(string(b), "\n") {
			if f := strings.Fields(l); len(f) > 2 && f[2] == key {
				n++
			}
		}
		return n
	}
	left := func() []string {
		m, _ := filepath.Glob(filepath.Join(envFS, "lifeboat-env-*"))
		return m
	}
	before := left()

	t.Run("unmounted", func(t *testing.T) {
		apply(t, map[string]string{"new": "1", "bootcmd": "run rescue"})
		if got := get(t, "new"); got != "1" {
			t.Errorf("new = %q, want 1", got)
		}
		if n := mounts(); n != 0 {
			t.Errorf("%s mounted %d times after the command, want 0", key, n)
		}
		if got := left(); len(got) != len(before) {
			t.Errorf("left under %s: %q, want %q", envFS, got, before)
		}
		// The partition as the device holds it, read by the reference tools.
		b, _ := os.ReadFile(disk)
		os.WriteFile(part, b[partStart:partStart+4<<20], 0o644)
		out := filepath.Join(dir, "out.env")
		os.Remove(out)
		runTool(t, "debugfs", "-R", "dump /uboot.env "+out, part)
		checkUBootEnv(t, out, "new=1", "bootcmd=run rescue", "keep=me")
	})

	t.Run("mounted", func(t *testing.T) {
		mnt := filepath.Join(dir, "mnt")
		os.MkdirAll(mnt, 0o755)
		src := node
		if !isBlockDevice(src, rdev) {
			src = filepath.Join(dir, "node")
			if err := unix.Mknod(src, unix.S_IFBLK|0o600, int(rdev)); err != nil {
				t.Fatal(err)
			}
		}
		if err := unix.Mount(src, mnt, "ext4", 0, ""); err != nil {
			t.Fatalf("mount: %v", err)
		}
		defer unix.Unmount(mnt, 0)
		apply(t, map[string]string{"other": "2"})
		if n := mounts(); n != 1 {
			t.Errorf("%s mounted %d times, want 1 (the test's)", key, n)
		}
		checkUBootEnv(t, filepath.Join(mnt, "uboot.env"), "other=2", "new=1", "keep=me")
	})
}

// makeUBootEnv makes a 16 KiB uboot.env holding vars with mkenvimage.
func makeUBootEnv(t *testing.T, dir, vars string) string {
	t.Helper()
	txt := filepath.Join(dir, "vars.txt")
	os.WriteFile(txt, []byte(vars), 0o644)
	out := filepath.Join(dir, "uboot.env")
	runTool(t, "mkenvimage", "-s", "16384", "-o", out, txt)
	return out
}

// makeGPTDisk makes an 8 MiB GPT disk whose partition "boot" starts at
// start and holds the image part.
func makeGPTDisk(t *testing.T, disk, part string, start int64) {
	t.Helper()
	if err := os.WriteFile(disk, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	os.Truncate(disk, 8<<20)
	fi, err := os.Stat(part)
	if err != nil {
		t.Fatal(err)
	}
	runTool(t, "sgdisk", "-n", fmt.Sprintf("1:%d:+%dK", start/512, fi.Size()>>10), "-c", "1:boot", "-t", "1:0700", disk)
	runTool(t, "dd", "if="+part, "of="+disk, "bs=512", "seek="+strconv.FormatInt(start/512, 10), "conv=notrunc", "status=none")
}

// checkUBootEnv reads a 16 KiB env file with fw_printenv and wants vars.
func checkUBootEnv(t *testing.T, file string, vars ...string) {
	t.Helper()
	cfg := file + ".config"
	os.WriteFile(cfg, []byte(file+" 0x0 0x4000\n"), 0o644)
	got := runTool(t, "fw_printenv", "-c", cfg)
	for _, v := range vars {
		if !strings.Contains(got, v+"\n") {
			t.Errorf("fw_printenv %s lacks %q:\n%s", file, v, got)
		}
	}
}

// fatBoard is the board profile of TestVMEnvFAT: uboot.env in the FAT
// partition "boot" of the virtio disk.
const fatBoard = `{
  "name": "fat-board",
  "modules": ["virtio_pci", "virtio_blk", "vfat", "nls_cp437", "nls_ascii", "nls_iso8859-1", "nls_utf8"],
  "storage": {"disk": "/dev/vda"},
  "bootenv": {"uboot": {"type": "uboot", "device": "disk", "partition": "boot", "file": "uboot.env"}}
}`

func runTool(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return string(out)
}

// TestVMEnvFAT boots the pinned Debian kernel with testdata/fatenvinit as
// PID 1 and a virtio disk the host made: GPT, a FAT partition "boot"
// holding a uboot.env from mkenvimage. The guest sets variables with
// `lifeboat env set` (the partition is mounted and unmounted for it); the
// host takes uboot.env out with mcopy and reads it with fw_printenv.
// `go test -short` skips it.
func TestVMEnvFAT(t *testing.T) {
	if testing.Short() {
		t.Skip("boots QEMU; skipped with -short")
	}
	for _, tool := range []string{"sgdisk", "mkfs.vfat", "mcopy", "mkenvimage", "fw_printenv"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (Debian gdisk, dosfstools, mtools, u-boot-tools, libubootenv-tool): %v", tool, err)
		}
	}
	dir := t.TempDir()
	envFile := makeUBootEnv(t, dir, "bootcmd=run distro\nkeep=me\nbootdelay=2\n")
	part := filepath.Join(dir, "part.img")
	runTool(t, "mkfs.vfat", "-C", part, "4096")
	runTool(t, "mcopy", "-i", part, envFile, "::uboot.env")
	disk := filepath.Join(dir, "disk.img")
	const partStart = 2048 * 512
	makeGPTDisk(t, disk, part, partStart)
	board := filepath.Join(dir, "board.json")
	os.WriteFile(board, []byte(fatBoard), 0o644)
	var profile struct {
		Modules []string `json:"modules"`
	}
	json.Unmarshal([]byte(fatBoard), &profile)

	start := time.Now()
	v := vm.BootGuest(t, vm.GuestOptions{
		Image: initramfs.Options{Init: "./testdata/fatenvinit", Modules: profile.Modules, BoardProfile: board},
		VM:    vm.Options{Memory: 256, Drives: []vm.Drive{{Path: disk}}},
	})
	if err := v.ExpectString("fatenv: done", 5*time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := v.WaitTimeout(2 * time.Minute); err != nil {
		t.Errorf("QEMU did not power off: %v", err)
	}
	t.Logf("boot and commands took %v", time.Since(start).Round(time.Millisecond))
	type result struct {
		Step, Stdout, Stderr, Took string
		Code                       int
	}
	got := map[string]result{}
	for _, line := range strings.Split(v.Console(), "\n") {
		_, js, ok := strings.Cut(line, "fatenv: {")
		if !ok {
			continue
		}
		var r result
		if err := json.Unmarshal([]byte("{"+strings.TrimSpace(js)), &r); err != nil {
			t.Fatalf("console line %q: %v", line, err)
		}
		got[r.Step] = r
	}
	for _, step := range []string{"set", "print"} {
		r, ok := got[step]
		if !ok || r.Code != 0 {
			t.Fatalf("env %s: exit %d: %s", step, r.Code, r.Stderr)
		}
		t.Logf("MEASURE env %s in the guest: %s", step, r.Took)
	}
	if p := got["print"].Stdout; !strings.Contains(p, "lifeboat_txn=42\n") || !strings.Contains(p, "keep=me\n") {
		t.Errorf("env print in the guest:\n%s", p)
	}
	if m := got["mounts"].Stdout; strings.Contains(m, "vfat") || strings.Contains(m, "lifeboat-env-") {
		t.Errorf("still mounted after the commands:\n%s", m)
	}

	out := filepath.Join(dir, "out.env")
	runTool(t, "mcopy", "-n", "-i", fmt.Sprintf("%s@@%d", disk, partStart), "::uboot.env", out)
	checkUBootEnv(t, out, "lifeboat_txn=42", "bootcmd=run rescue", "keep=me", "bootdelay=2")
	b, _ := os.ReadFile(disk)
	os.WriteFile(part, b[partStart:partStart+4<<20], 0o644)
	runTool(t, "fsck.vfat", "-n", part)
	if fi, err := os.Stat(out); err != nil || fi.Size() != 16384 {
		t.Errorf("uboot.env after the change: %v, %v; want 16384 bytes", fi, err)
	}
}
