package demo

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/lifeboat-updater/lifeboat/bundle"
	"github.com/lifeboat-updater/lifeboat/install"
	"github.com/lifeboat-updater/lifeboat/internal/bundletool"
	"github.com/lifeboat-updater/lifeboat/internal/vm"
)

// fakeBootImg is a boot.img stand-in: a sector with 0x55AA and a marker.
func fakeBootImg() []byte {
	b := make([]byte, SectorSize)
	for i := range b {
		b[i] = byte(i)
	}
	b[510], b[511] = 0x55, 0xaa
	return b
}

func TestBootImage(t *testing.T) {
	got, err := BootImage(fakeBootImg(), 2048)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != MBRCodeSize {
		t.Fatalf("BootImage: %d bytes, want %d", len(got), MBRCodeSize)
	}
	if v := binary.LittleEndian.Uint64(got[0x5c:]); v != 2048 {
		t.Errorf("BootImage kernel sector = %d, want 2048", v)
	}
	if got[0x64] != 0xff || got[0x66] != 0x90 || got[0x67] != 0x90 {
		t.Errorf("BootImage boot drive/check = %#x %#x %#x, want 0xff 0x90 0x90", got[0x64], got[0x66], got[0x67])
	}
	want := fakeBootImg()
	for _, r := range [][2]int{{0, 0x5c}, {0x68, MBRCodeSize}} {
		if !bytes.Equal(got[r[0]:r[1]], want[r[0]:r[1]]) {
			t.Errorf("BootImage changed bytes %#x..%#x", r[0], r[1])
		}
	}

	for _, bad := range [][]byte{make([]byte, SectorSize), fakeBootImg()[:400]} {
		if _, err := BootImage(bad, 1); !errors.Is(err, ErrGRUBImage) {
			t.Errorf("BootImage(bad %d bytes) = %v, want ErrGRUBImage", len(bad), err)
		}
	}
}

// fakeCore is a core.img stand-in: diskboot's blocklist as grub-mkimage
// leaves it (start 2, no sectors, segment 0x820) and n bytes in all.
func fakeCore(n int) []byte {
	b := bytes.Repeat([]byte{0xc3}, n)
	binary.LittleEndian.PutUint64(b[0x1f4:], 2)
	binary.LittleEndian.PutUint16(b[0x1fc:], 0)
	binary.LittleEndian.PutUint16(b[0x1fe:], 0x820)
	return b
}

func TestCoreImage(t *testing.T) {
	tests := []struct {
		name    string
		core    []byte
		lba     uint64
		max     int
		sectors int
		err     error
	}{
		{"whole sectors", fakeCore(40 * SectorSize), 2048, mib, 40, nil},
		{"padded", fakeCore(40*SectorSize + 3), 2048, mib, 41, nil},
		{"exactly full", fakeCore(4 * SectorSize), 100, 4 * SectorSize, 4, nil},
		{"too big", fakeCore(5 * SectorSize), 100, 4 * SectorSize, 0, ErrGRUBImage},
		{"too short", fakeCore(SectorSize), 100, mib, 0, ErrGRUBImage},
		{"not diskboot", make([]byte, 4*SectorSize), 100, mib, 0, ErrGRUBImage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := CoreImage(tt.core, tt.lba, tt.max)
			if !errors.Is(err, tt.err) {
				t.Fatalf("CoreImage() error = %v, want %v", err, tt.err)
			}
			if err != nil {
				return
			}
			if len(got) != tt.sectors*SectorSize {
				t.Errorf("CoreImage() = %d bytes, want %d", len(got), tt.sectors*SectorSize)
			}
			start := binary.LittleEndian.Uint64(got[0x1f4:])
			n := binary.LittleEndian.Uint16(got[0x1fc:])
			seg := binary.LittleEndian.Uint16(got[0x1fe:])
			if start != tt.lba+1 || int(n) != tt.sectors-1 || seg != 0x820 {
				t.Errorf("CoreImage() blocklist = start %d, %d sectors, segment %#x; want %d, %d, 0x820", start, n, seg, tt.lba+1, tt.sectors-1)
			}
			if !bytes.Equal(got[SectorSize:len(tt.core)], tt.core[SectorSize:]) {
				t.Error("CoreImage() changed the sectors after the first")
			}
		})
	}
}

func TestLayout(t *testing.T) {
	var end uint64
	names := map[string]bool{}
	for i, p := range Layout {
		if p.Start%mib != 0 || p.Size%mib != 0 {
			t.Errorf("partition %s is not MiB-aligned", p.Name)
		}
		if p.Start < end {
			t.Errorf("partition %s starts at %d, inside the one before (ends %d)", p.Name, p.Start, end)
		}
		if p.Size == 0 && i != len(Layout)-1 {
			t.Errorf("partition %s takes the rest of the disk but is not last", p.Name)
		}
		if _, ok := gptTypes[p.Type]; !ok {
			t.Errorf("partition %s: type %q has no GPT GUID", p.Name, p.Type)
		}
		if got := p.Number(); got != i+1 {
			t.Errorf("%s.Number() = %d, want %d", p.Name, got, i+1)
		}
		names[p.Name] = true
		end = p.Start + p.Size
	}
	for _, n := range []string{PartBIOSBoot, PartRescue, PartGRUBEnv, PartBoot, PartRootfs, PartData} {
		if !names[n] {
			t.Errorf("Layout has no partition %q", n)
		}
	}
	if MinDiskSize < end+16*mib {
		t.Errorf("MinDiskSize = %d, want at least %d", MinDiskSize, end+16*mib)
	}
	if _, err := Part("nope"); !errors.Is(err, ErrNoPartition) {
		t.Errorf("Part(nope) = %v, want ErrNoPartition", err)
	}
	// GRUB finds its configuration by partition number.
	if got, want := grubPrefix(), "(hd0,gpt2)/grub"; got != want {
		t.Errorf("grubPrefix() = %q, want %q", got, want)
	}
}

func TestResolveModules(t *testing.T) {
	dir := t.TempDir()
	dep := `kernel/fs/ext4/ext4.ko: kernel/lib/crc16.ko kernel/fs/mbcache.ko kernel/fs/jbd2/jbd2.ko
kernel/fs/jbd2/jbd2.ko:
kernel/fs/mbcache.ko:
kernel/lib/crc16.ko:
kernel/crypto/crc32c_generic.ko:
kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_pci-legacy.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
`
	if err := os.WriteFile(filepath.Join(dir, "modules.dep"), []byte(dep), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "modules.builtin"), []byte("kernel/fs/vfat/vfat.ko\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		names []string
		want  []string
		err   error
	}{
		{[]string{"virtio_blk", "ext4"}, []string{
			"kernel/drivers/virtio/virtio_ring.ko", "kernel/drivers/virtio/virtio.ko", "kernel/drivers/block/virtio_blk.ko",
			"kernel/lib/crc16.ko", "kernel/fs/mbcache.ko", "kernel/fs/jbd2/jbd2.ko", "kernel/fs/ext4/ext4.ko",
		}, nil},
		{[]string{"virtio-pci-legacy", "virtio_blk"}, []string{
			"kernel/drivers/virtio/virtio_ring.ko", "kernel/drivers/virtio/virtio.ko",
			"kernel/drivers/virtio/virtio_pci-legacy.ko", "kernel/drivers/block/virtio_blk.ko",
		}, nil},
		{[]string{"vfat"}, nil, nil},
		{[]string{"ext4", "nosuch"}, nil, ErrModule},
	}
	for _, tt := range tests {
		got, err := ResolveModules(dir, tt.names)
		if !errors.Is(err, tt.err) {
			t.Errorf("ResolveModules(%v) error = %v, want %v", tt.names, err, tt.err)
			continue
		}
		if diff := cmp.Diff(tt.want, got); err == nil && diff != "" {
			t.Errorf("ResolveModules(%v) (-want +got):\n%s", tt.names, diff)
		}
	}
}

func TestGRUBEnvBlock(t *testing.T) {
	b, err := GRUBEnvBlock(map[string]string{"b": "2", "a": "x y"})
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != GRUBEnvSize {
		t.Fatalf("GRUBEnvBlock: %d bytes, want %d", len(b), GRUBEnvSize)
	}
	header := "# GRUB Environment Block\n# WARNING: Do not edit this file by tools other than grub-editenv!!!\n"
	if !bytes.HasPrefix(b, []byte(header+"a=x y\nb=2\n#")) {
		t.Errorf("GRUBEnvBlock = %q...", b[:len(header)+20])
	}
	for _, bad := range []map[string]string{{"a=b": "1"}, {"": "1"}, {"a": "1\x002"}, {"a": strings.Repeat("x", GRUBEnvSize)}} {
		if _, err := GRUBEnvBlock(bad); !errors.Is(err, ErrGRUBEnv) {
			t.Errorf("GRUBEnvBlock(%.20q) = %v, want ErrGRUBEnv", bad, err)
		}
	}
	// grub-editenv is the reference.
	if _, err := exec.LookPath("grub-editenv"); err != nil {
		t.Skip("no grub-editenv to compare with")
	}
	p := filepath.Join(t.TempDir(), "grubenv")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("grub-editenv", p, "list").CombinedOutput()
	if err != nil {
		t.Fatalf("grub-editenv list: %v: %s", err, out)
	}
	if got, want := string(out), "a=x y\nb=2\n"; got != want {
		t.Errorf("grub-editenv list = %q, want %q", got, want)
	}
	// An empty block is what grub-editenv create writes.
	ref := filepath.Join(t.TempDir(), "ref")
	if out, err := exec.Command("grub-editenv", ref, "create").CombinedOutput(); err != nil {
		t.Fatalf("grub-editenv create: %v: %s", err, out)
	}
	want, err := os.ReadFile(ref)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := GRUBEnvBlock(nil); !bytes.Equal(got, want) {
		t.Errorf("GRUBEnvBlock(nil) = %q, grub-editenv create wrote %q", got, want)
	}
}

// fakeArtifacts are artifacts whose files exist but hold nothing useful.
func fakeArtifacts(t *testing.T) *Artifacts {
	dir := t.TempDir()
	a := &Artifacts{Dir: dir, Version: "2.0.1", SecurityVersion: 7}
	a.Rootfs, a.Boot, a.GRUBEnv = filepath.Join(dir, "rootfs.ext4"), filepath.Join(dir, "boot.ext2"), filepath.Join(dir, "grubenv.img")
	a.Rescue, a.Core, a.MBR = filepath.Join(dir, "rescue.ext2"), filepath.Join(dir, "core.img"), filepath.Join(dir, "mbr.img")
	a.Spec = filepath.Join(dir, "bundle.yaml")
	for i, p := range []string{a.Rootfs, a.Boot, a.GRUBEnv, a.Rescue, a.Core, a.MBR} {
		if err := os.WriteFile(p, bytes.Repeat([]byte{byte(i + 1)}, 1000*(i+1)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return a
}

func TestSpec(t *testing.T) {
	a := fakeArtifacts(t)
	if err := writeSpec(a); err != nil {
		t.Fatal(err)
	}
	spec, err := bundletool.LoadSpec(a.Spec)
	if err != nil {
		t.Fatal(err)
	}
	m, imgs, err := spec.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	if m.Product != Product || m.Version != "2.0.1" || m.SecurityVersion != 7 || !m.CompatibleWith(Board, "1") {
		t.Errorf("manifest = %s %s sv %d %v", m.Product, m.Version, m.SecurityVersion, m.Compatible)
	}
	type step struct {
		Type, Target, Image string
		Offset              uint64
	}
	var got []step
	for _, s := range m.Steps {
		got = append(got, step{string(s.Type), s.Target, s.Image, s.Offset})
	}
	want := []step{
		{"partition", "disk", "", 0},
		{"image", "rootfs", "rootfs", 0},
		{"image", "boot", "boot", 0},
		{"image", "grubenv", "grubenv", 0},
		{"image", "rescue", "rescue", 0},
		{"image", "bios-boot", "bios-boot", 0},
		{"image", "disk", "mbr", 0},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("steps (-want +got):\n%s", diff)
	}
	var parts []Partition
	for _, p := range m.Steps[0].Table.Partitions {
		parts = append(parts, Partition{Name: p.Name, Type: p.Type, Start: p.Start, Size: p.Size})
	}
	if diff := cmp.Diff(Layout, parts); diff != "" {
		t.Errorf("partition table (-Layout +spec):\n%s", diff)
	}
	wantFiles := map[string]string{"rootfs": a.Rootfs, "boot": a.Boot, "grubenv": a.GRUBEnv, "rescue": a.Rescue, "bios-boot": a.Core, "mbr": a.MBR}
	for _, im := range imgs {
		if wantFiles[im.Name] != im.Path {
			t.Errorf("image %s from %s, want %s", im.Name, im.Path, wantFiles[im.Name])
		}
	}

	// The spec makes a bundle that verifies.
	pub, priv, err := bundle.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "demo.lfb")
	if err := CreateBundle(context.Background(), a.Spec, out, bundle.Ed25519Signer{Key: priv}); err != nil {
		t.Fatal(err)
	}
	checkBundle(t, out, bundle.NewTrustStore(pub), wantFiles)
}

// checkBundle opens a bundle with ts and checks that each image is the file
// named in files, by size and SHA-256.
func checkBundle(t *testing.T, path string, ts *bundle.TrustStore, files map[string]string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	r, err := bundle.NewReaderAt(f, fi.Size(), ts)
	if err != nil {
		t.Fatalf("bundle.NewReaderAt(%s) = %v", path, err)
	}
	m := r.Manifest()
	if len(m.Images) != len(files) {
		t.Errorf("bundle has %d images, want %d", len(m.Images), len(files))
	}
	for name, file := range files {
		im := m.Image(name)
		if im == nil {
			t.Errorf("bundle has no image %q", name)
			continue
		}
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(b)
		if im.Size != uint64(len(b)) || im.SHA256 != hex.EncodeToString(sum[:]) {
			t.Errorf("image %s: size %d sha256 %s, want %d %x (%s)", name, im.Size, im.SHA256, len(b), sum, file)
		}
	}
}

func TestOptionsMissing(t *testing.T) {
	_, err := Build(context.Background(), Options{KernelPath: "k"})
	if !errors.Is(err, ErrOptions) || !strings.Contains(err.Error(), "ModulesDir, OutDir, RescueInitramfs, RescueKernel") {
		t.Errorf("Build(no paths) = %v, want ErrOptions naming the missing paths", err)
	}
}

// TestBoot builds the demo device, assembles its disk by hand and boots it
// from the disk alone: SeaBIOS, GRUB's boot code in the MBR, core.img in
// the bios-boot partition, grub.cfg on the rescue partition, then the
// production kernel and initramfs, which mount the root and power off.
// A FailBoot build boots the same way and reboots instead.
func TestBoot(t *testing.T) {
	needVM(t, "grub-mkimage", "mke2fs", "sgdisk")
	k := vm.DebianKernel(t)
	vmlinuz, modules := k.Vmlinuz, k.Modules
	ctx := context.Background()
	dir := t.TempDir()

	// The rescue entry is not booted here: any kernel and initramfs stand
	// in for the rescue system.
	start := time.Now()
	good, err := Build(ctx, Options{
		KernelPath: vmlinuz, ModulesDir: modules,
		RescueKernel: vmlinuz, RescueInitramfs: filepath.Join(modules, "modules.dep"),
		OutDir: filepath.Join(dir, "good"), Version: "1.0.0", SecurityVersion: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("Build: %s", fmtDur(time.Since(start)))
	for _, p := range []string{good.Initramfs, good.InitBinary, good.Rootfs, good.Boot, good.Rescue, good.GRUBEnv, good.MBR, good.Core} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%-12s %9d bytes", filepath.Base(p), fi.Size())
	}
	if out, err := exec.Command("e2fsck", "-fn", good.Rootfs).CombinedOutput(); err != nil {
		t.Errorf("e2fsck -fn rootfs: %v\n%s", err, out)
	}

	// The bundle spec makes a bundle holding exactly these images.
	pub, priv, err := bundle.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	lfb := filepath.Join(dir, "demo.lfb")
	if err := CreateBundle(ctx, good.Spec, lfb, bundle.Ed25519Signer{Key: priv}); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{"mbr": good.MBR}
	for part, img := range good.Images {
		files[part] = img
	}
	checkBundle(t, lfb, bundle.NewTrustStore(pub), files)
	if fi, err := os.Stat(lfb); err == nil {
		t.Logf("bundle: %d bytes, made in %s", fi.Size(), fmtDur(time.Since(start)))
	}

	// The same images laid out by hand.
	disk := filepath.Join(dir, "disk.img")
	if err := AssembleDisk(ctx, good, disk, DefaultDiskSize); err != nil {
		t.Fatal(err)
	}
	checkDisk(t, disk, good)

	// Two builds of the same version are the same bytes, so an update
	// between versions writes only the chunks that really changed.
	t.Run("reproducible", func(t *testing.T) {
		again, err := Build(ctx, Options{
			KernelPath: vmlinuz, ModulesDir: modules,
			RescueKernel: vmlinuz, RescueInitramfs: filepath.Join(modules, "modules.dep"),
			OutDir: filepath.Join(dir, "again"), Version: "1.0.0", SecurityVersion: 1,
			InitBinary: good.InitBinary,
		})
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range [][2]string{
			{good.Initramfs, again.Initramfs}, {good.Rootfs, again.Rootfs}, {good.Boot, again.Boot},
			{good.Rescue, again.Rescue}, {good.GRUBEnv, again.GRUBEnv}, {good.Core, again.Core},
			{good.MBR, again.MBR}, {good.Spec, again.Spec},
		} {
			a, err := os.ReadFile(p[0])
			if err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(p[1])
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(a, b) {
				t.Errorf("%s differs between two builds", filepath.Base(p[0]))
			}
		}
	})

	// The install engine writes the same bytes as AssembleDisk: every
	// partition, and GRUB's 440 bytes without touching the partition
	// table after them. The boot below then stands for the installed disk.
	t.Run("install", func(t *testing.T) {
		installed := filepath.Join(dir, "installed.img")
		f, err := os.Create(installed)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Truncate(DefaultDiskSize); err != nil {
			t.Fatal(err)
		}
		f.Close()
		bf, err := os.Open(lfb)
		if err != nil {
			t.Fatal(err)
		}
		defer bf.Close()
		fi, err := bf.Stat()
		if err != nil {
			t.Fatal(err)
		}
		br, err := bundle.NewReaderAt(bf, fi.Size(), bundle.NewTrustStore(pub))
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		plan, err := install.NewPlan(br, install.Config{BoardName: Board, Targets: map[string]string{"disk": installed}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := plan.Execute(ctx); err != nil {
			t.Fatal(err)
		}
		t.Logf("install to a file: %s", fmtDur(time.Since(start)))
		checkDisk(t, installed, good)
		for _, p := range Layout {
			if _, ok := good.Images[p.Name]; ok {
				compareRange(t, disk, installed, p.Name, int64(p.Start), int64(p.Size))
			}
		}
		compareRange(t, disk, installed, "boot code", 0, MBRCodeSize)
	})

	t.Run("production", func(t *testing.T) {
		v := bootDisk(t, disk)
		expect(t, v, GRUBMenu, 60*time.Second)
		expect(t, v, "production (demo-os 1.0.0)", 10*time.Second)
		expect(t, v, "rescue", 10*time.Second)
		expect(t, v, Banner("1.0.0"), 90*time.Second)
		expect(t, v, RootOK("1.0.0"), 30*time.Second)
		expect(t, v, MsgBootOK, 10*time.Second)
		waitOff(t, v, 30*time.Second)
	})

	t.Run("fail boot", func(t *testing.T) {
		// This build also asks GRUB, through its environment, to boot
		// the rescue entry once: GRUB must read the grubenv partition and
		// write it back (next_entry cleared) for the second boot to run
		// production again.
		start := time.Now()
		bad, err := Build(ctx, Options{
			KernelPath: vmlinuz, ModulesDir: modules,
			RescueKernel: vmlinuz, RescueInitramfs: good.Initramfs,
			OutDir: filepath.Join(dir, "bad"), Version: "1.0.1", FailBoot: true,
			InitBinary: good.InitBinary, RootfsFillMiB: 1,
			GRUBEnv: map[string]string{"next_entry": "rescue"},
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("Build: %s", fmtDur(time.Since(start)))
		disk := filepath.Join(dir, "bad.img")
		if err := AssembleDisk(ctx, bad, disk, MinDiskSize); err != nil {
			t.Fatal(err)
		}
		if got := readGRUBEnv(t, disk); !strings.Contains(got, "\nnext_entry=rescue\n") {
			t.Fatalf("grubenv before boot = %q, want next_entry=rescue", got)
		}

		v := bootDisk(t, disk)
		expect(t, v, "Loading the rescue system", 60*time.Second)
		if err := v.Kill(); err != nil {
			t.Fatal(err)
		}
		if got := readGRUBEnv(t, disk); strings.Contains(got, "next_entry=rescue") {
			t.Fatalf("grubenv after the rescue boot = %q, want next_entry cleared by GRUB", got)
		}

		v = bootDisk(t, disk)
		expect(t, v, "Loading demo-os 1.0.1", 60*time.Second)
		expect(t, v, Banner("1.0.1"), 90*time.Second)
		expect(t, v, MsgFailing, 10*time.Second)
		// -no-reboot: the reboot ends QEMU.
		waitOff(t, v, 30*time.Second)
	})
}

// readGRUBEnv returns the GRUB environment block of an assembled disk.
func readGRUBEnv(t *testing.T, disk string) string {
	t.Helper()
	f, err := os.Open(disk)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, GRUBEnvSize)
	if _, err := f.ReadAt(b, int64(mustPart(PartGRUBEnv).Start+GRUBEnvOffset)); err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(b, []byte("# GRUB Environment Block\n")) {
		t.Fatalf("no GRUB environment block at the grubenv partition's offset %d: %q", GRUBEnvOffset, b[:64])
	}
	return string(b)
}

// compareRange compares n bytes at off of two files.
func compareRange(t *testing.T, a, b, what string, off, n int64) {
	t.Helper()
	read := func(p string) []byte {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		buf := make([]byte, n)
		if _, err := f.ReadAt(buf, off); err != nil {
			t.Fatal(err)
		}
		return buf
	}
	if !bytes.Equal(read(a), read(b)) {
		t.Errorf("%s (%d bytes at %d) differs between %s and %s", what, n, off, a, b)
	}
}

// checkDisk checks an assembled disk: a GPT that sgdisk finds clean, the
// protective MBR intact after GRUB's 440 bytes, and the boot code there.
func checkDisk(t *testing.T, disk string, a *Artifacts) {
	t.Helper()
	if out, err := exec.Command("sgdisk", "-v", disk).CombinedOutput(); err != nil || !strings.Contains(string(out), "No problems found") {
		t.Errorf("sgdisk -v: %v\n%s", err, out)
	}
	f, err := os.Open(disk)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sector := make([]byte, SectorSize)
	if _, err := f.ReadAt(sector, 0); err != nil {
		t.Fatal(err)
	}
	mbr, err := os.ReadFile(a.MBR)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(sector[:MBRCodeSize], mbr) {
		t.Error("disk's first 440 bytes are not mbr.img")
	}
	if sector[0x1be+4] != 0xee || sector[510] != 0x55 || sector[511] != 0xaa {
		t.Errorf("protective MBR damaged: type %#x, signature %#x%x", sector[0x1be+4], sector[510], sector[511])
	}
}
