package pid1

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/lifeboat-updater/lifeboat/kmod"
	"golang.org/x/sys/unix"
)

func TestModuleLoaderOrder(t *testing.T) {
	dir := t.TempDir()
	// Dependencies listed in any order; a soft dependency appended last,
	// as the image's trimmed modules.dep has it.
	dep := "kernel/a/virtio_blk.ko: kernel/a/virtio.ko kernel/a/virtio_ring.ko\n" +
		"kernel/a/virtio.ko: kernel/a/virtio_ring.ko\n" +
		"kernel/a/virtio_ring.ko:\n" +
		"kernel/fs/ext4.ko: kernel/fs/jbd2.ko kernel/crypto/crc32c_generic.ko\n" +
		"kernel/fs/jbd2.ko:\n" +
		"kernel/crypto/crc32c_generic.ko:\n" +
		"kernel/b/usb-storage.ko: kernel/b/usbcore.ko\n" +
		"kernel/b/usbcore.ko:\n" +
		"kernel/c/loop1.ko: kernel/c/loop2.ko\n" +
		"kernel/c/loop2.ko: kernel/c/loop1.ko\n"
	if err := os.WriteFile(filepath.Join(dir, "modules.dep"), []byte(dep), 0o644); err != nil {
		t.Fatal(err)
	}
	d, err := kmod.ReadDep(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	l := &moduleLoader{
		dir: dir, dep: d, builtin: map[string]bool{"crc32c": true}, loaded: map[string]error{},
		load: func(p string) error {
			got = append(got, filepath.Base(p))
			if filepath.Base(p) == "usbcore.ko" {
				return unix.EEXIST // already loaded: fine
			}
			return nil
		},
	}
	for _, tt := range []struct {
		name    string
		wantErr error
	}{
		{"virtio_blk", nil},
		{"ext4", nil},
		{"virtio", nil}, // loaded already, not again
		{"usb-storage", nil},
		{"crc32c", nil}, // built in
		{"nope", ErrModuleNotFound},
	} {
		if err := l.Load(tt.name); !errors.Is(err, tt.wantErr) {
			t.Errorf("Load(%q) = %v, want %v", tt.name, err, tt.wantErr)
		}
	}
	if err := l.Load("loop1"); err == nil {
		t.Errorf("Load(loop1) = nil, want a dependency cycle error")
	}
	want := []string{"virtio_ring.ko", "virtio.ko", "virtio_blk.ko", "jbd2.ko", "crc32c_generic.ko", "ext4.ko", "usbcore.ko", "usb-storage.ko"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("modules loaded (-want +got):\n%s", diff)
	}
}
