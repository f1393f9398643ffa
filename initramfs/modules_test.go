package initramfs

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// fakeKernel writes a lib/modules/KVER tree shaped like Debian's: mixed
// '-'/'_' file names, soft dependencies through aliases, a CPU-specific and
// a generic provider, built-in modules.
func fakeKernel(t *testing.T) (root, kver string) {
	t.Helper()
	root, kver = t.TempDir(), "6.1.0-99-amd64"
	dir := filepath.Join(root, "lib", "modules", kver)
	files := map[string]string{
		"modules.dep": `kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/fs/nls/nls_iso8859-1.ko:
kernel/lib/crc16.ko:
kernel/fs/jbd2/jbd2.ko:
kernel/fs/ext4/ext4.ko: kernel/lib/crc16.ko kernel/fs/jbd2/jbd2.ko
kernel/crypto/crc32c_generic.ko:
kernel/arch/x86/crypto/crc32c-intel.ko:
kernel/drivers/usb/storage/usb-storage.ko: kernel/drivers/usb/core/usbcore.ko
kernel/drivers/usb/core/usbcore.ko:
kernel/drivers/loop/a.ko:
kernel/drivers/loop/b.ko: kernel/drivers/loop/a.ko
kernel/drivers/ipmi/ipmi_msghandler.ko:
kernel/drivers/ipmi/ipmi_devintf.ko: kernel/drivers/ipmi/ipmi_msghandler.ko
`,
		"modules.builtin": "kernel/lib/zstd/zstd_decompress.ko\nkernel/drivers/tty/serial/8250/8250-core.ko\n",
		"modules.softdep": `# comment
softdep ext4 pre: crypto-crc32c
softdep jbd2 pre: crypto-crc32c
softdep a pre: b
softdep ipmi_msghandler post: ipmi_devintf
softdep usb_storage pre: nothing-provides-this
`,
		"modules.alias": `alias crypto-crc32c crc32c_intel
alias crypto-crc32c crc32c_generic
alias pci:v00001AF4d00001001sv*sd*bc*sc*i* virtio_blk
`,
	}
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, line := range strings.Split(files["modules.dep"], "\n") {
		f, _, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		p := filepath.Join(dir, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("\x7fELF module "+f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root, kver
}

func TestResolve(t *testing.T) {
	root, kver := fakeKernel(t)
	ix, err := loadModuleIndex(filepath.Join(root, "lib", "modules", kver))
	if err != nil {
		t.Fatalf("loadModuleIndex = %v", err)
	}
	for _, tt := range []struct {
		name        string
		mods        []string
		wantDep     string
		wantBuiltin []string
		wantSkipped []string
		wantErr     error
	}{
		{
			name: "deps come along",
			mods: []string{"virtio_blk"},
			wantDep: `kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_ring.ko:
`,
		},
		{
			name: "mixed dashes renamed, either spelling asked",
			mods: []string{"nls_iso8859_1", "nls-iso8859-1", "usb-storage"},
			wantDep: `kernel/drivers/usb/core/usbcore.ko:
kernel/drivers/usb/storage/usb_storage.ko: kernel/drivers/usb/core/usbcore.ko
kernel/fs/nls/nls_iso8859_1.ko:
`,
			wantSkipped: []string{"nothing-provides-this"},
		},
		{
			name: "soft pre deps folded in, generic provider",
			mods: []string{"ext4"},
			wantDep: `kernel/crypto/crc32c_generic.ko:
kernel/fs/ext4/ext4.ko: kernel/lib/crc16.ko kernel/fs/jbd2/jbd2.ko kernel/crypto/crc32c_generic.ko
kernel/fs/jbd2/jbd2.ko: kernel/crypto/crc32c_generic.ko
kernel/lib/crc16.ko:
`,
		},
		{
			name: "no cycle from a soft dep",
			mods: []string{"b"},
			wantDep: `kernel/drivers/loop/a.ko:
kernel/drivers/loop/b.ko: kernel/drivers/loop/a.ko
`,
		},
		{
			name: "soft post deps carried, not folded",
			mods: []string{"ipmi_msghandler"},
			wantDep: `kernel/drivers/ipmi/ipmi_devintf.ko: kernel/drivers/ipmi/ipmi_msghandler.ko
kernel/drivers/ipmi/ipmi_msghandler.ko:
`,
		},
		{
			name:        "builtin noted",
			mods:        []string{"8250_core", "zstd_decompress"},
			wantBuiltin: []string{"8250_core", "zstd_decompress"},
		},
		{
			name:    "missing",
			mods:    []string{"virtio_blk", "nandsim"},
			wantErr: ErrModuleNotFound,
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			set, err := ix.resolve(tt.mods)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("resolve(%q) = %v, want %v", tt.mods, err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if diff := cmp.Diff(tt.wantDep, string(set.depFile())); diff != "" {
				t.Errorf("resolve(%q) modules.dep mismatch (-want +got):\n%s", tt.mods, diff)
			}
			if diff := cmp.Diff(tt.wantBuiltin, set.Builtin); diff != "" {
				t.Errorf("resolve(%q) builtin mismatch (-want +got):\n%s", tt.mods, diff)
			}
			if diff := cmp.Diff(tt.wantSkipped, set.Skipped); diff != "" {
				t.Errorf("resolve(%q) skipped mismatch (-want +got):\n%s", tt.mods, diff)
			}
		})
	}
}

func TestLoadModuleIndexNoDep(t *testing.T) {
	if _, err := loadModuleIndex(t.TempDir()); !errors.Is(err, ErrNoModulesDep) {
		t.Errorf("loadModuleIndex(empty dir) = %v, want ErrNoModulesDep", err)
	}
}

func TestImagePath(t *testing.T) {
	for in, want := range map[string]string{
		"kernel/fs/nls/nls_iso8859-1.ko":        "kernel/fs/nls/nls_iso8859_1.ko",
		"kernel/drivers/usb/host/xhci-pci.ko":   "kernel/drivers/usb/host/xhci_pci.ko",
		"kernel/drivers/block/virtio_blk.ko":    "kernel/drivers/block/virtio_blk.ko",
		"kernel/drivers/block/zram-x.ko.xz":     "kernel/drivers/block/zram_x.ko.xz",
		"kernel/some-dir/with-dash/mod-name.ko": "kernel/some-dir/with-dash/mod_name.ko",
	} {
		if got := imagePath(in); got != want {
			t.Errorf("imagePath(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestBuiltinFile(t *testing.T) {
	got := string(builtinFile([]byte("kernel/a/8250-core.ko\n\nkernel/b/c_d.ko\n")))
	if want := "kernel/a/8250_core.ko\nkernel/b/c_d.ko\n"; got != want {
		t.Errorf("builtinFile = %q, want %q", got, want)
	}
}

func TestFindModules(t *testing.T) {
	root, kver := fakeKernel(t)
	modDir := filepath.Join(root, "lib", "modules", kver)
	two := t.TempDir()
	for _, v := range []string{"5.10", "6.1"} {
		if err := os.MkdirAll(filepath.Join(two, "lib", "modules", v), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, tt := range []struct {
		name, dir, kver string
		wantDir         string
		wantKVer        string
		wantErr         error
	}{
		{"root, only version", root, "", modDir, kver, nil},
		{"root, version named", root, kver, modDir, kver, nil},
		{"modules dir itself", modDir, "", modDir, kver, nil},
		{"no dir", "", "", "", "", ErrNoKernel},
		{"two versions", two, "", "", "", ErrNoKernel},
		{"wrong version", root, "4.19", "", "", ErrNoKernel},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d, v, err := findModules(tt.dir, tt.kver)
			if d != tt.wantDir || v != tt.wantKVer || !errors.Is(err, tt.wantErr) {
				t.Errorf("findModules(%q, %q) = %q, %q, %v, want %q, %q, %v", tt.dir, tt.kver, d, v, err, tt.wantDir, tt.wantKVer, tt.wantErr)
			}
		})
	}
}
