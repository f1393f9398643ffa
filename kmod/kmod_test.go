package kmod

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const dep = `kernel/fs/ext4/ext4.ko: kernel/lib/crc16.ko kernel/fs/mbcache.ko kernel/fs/jbd2/jbd2.ko
kernel/fs/jbd2/jbd2.ko:
kernel/fs/mbcache.ko:
kernel/lib/crc16.ko:
kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/block/virtio_blk.ko.xz: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/usb/usb-storage.ko.zst:
kernel/a.ko: kernel/b.ko
kernel/b.ko: kernel/a.ko
`

func TestName(t *testing.T) {
	for file, want := range map[string]string{
		"kernel/fs/ext4/ext4.ko":                     "ext4",
		"kernel/drivers/usb/usb-storage.ko.zst":      "usb_storage",
		"kernel/drivers/block/virtio_blk.ko.xz":      "virtio_blk",
		"nls_iso8859-1":                              "nls_iso8859_1",
		"kernel/drivers/net/ethernet/intel/e1000.ko": "e1000",
	} {
		if got := Name(file); got != want {
			t.Errorf("Name(%q) = %q, want %q", file, got, want)
		}
	}
}

func TestResolve(t *testing.T) {
	d, err := ParseDep(strings.NewReader(dep))
	if err != nil {
		t.Fatal(err)
	}
	builtin := map[string]bool{"sd_mod": true}
	tests := []struct {
		names []string
		want  []string
		err   error
	}{
		{[]string{"ext4"}, []string{"kernel/lib/crc16.ko", "kernel/fs/mbcache.ko", "kernel/fs/jbd2/jbd2.ko", "kernel/fs/ext4/ext4.ko"}, nil},
		{[]string{"virtio_blk", "virtio-ring", "sd_mod"}, []string{"kernel/drivers/virtio/virtio_ring.ko", "kernel/drivers/virtio/virtio.ko", "kernel/drivers/block/virtio_blk.ko.xz"}, nil},
		{[]string{"usb-storage"}, []string{"kernel/drivers/usb/usb-storage.ko.zst"}, nil},
		{[]string{"nope"}, nil, ErrNotFound},
		{[]string{"a"}, nil, errors.New("cycle")},
	}
	for _, tt := range tests {
		got, err := d.Resolve(tt.names, builtin)
		if tt.err != nil {
			if err == nil || (errors.Is(tt.err, ErrNotFound) && !errors.Is(err, ErrNotFound)) {
				t.Errorf("Resolve(%v) = %v, %v; want an error like %v", tt.names, got, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("Resolve(%v) = %v", tt.names, err)
			continue
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("Resolve(%v) (-want +got):\n%s", tt.names, diff)
		}
	}
	if diff := cmp.Diff([]string{"virtio", "virtio_ring"}, d.Needs("virtio_blk")); diff != "" {
		t.Errorf("Needs(virtio_blk) (-want +got):\n%s", diff)
	}
	if d.Order[0] != "ext4" || len(d.Order) != 10 {
		t.Errorf("Order = %v", d.Order)
	}
}

func TestReadDir(t *testing.T) {
	dir := t.TempDir()
	if _, err := ReadDep(dir); !errors.Is(err, ErrNoDep) {
		t.Errorf("ReadDep(empty dir) = %v, want ErrNoDep", err)
	}
	if b, err := ReadBuiltin(dir); err != nil || len(b) != 0 {
		t.Errorf("ReadBuiltin(empty dir) = %v, %v; want none", b, err)
	}
	os.WriteFile(filepath.Join(dir, "modules.dep"), []byte(dep), 0o644)
	os.WriteFile(filepath.Join(dir, "modules.builtin"), []byte("kernel/drivers/scsi/sd_mod.ko\nkernel/fs/nls/nls-base.ko\n"), 0o644)
	d, err := ReadDep(dir)
	if err != nil || d.Files["ext4"] != "kernel/fs/ext4/ext4.ko" {
		t.Errorf("ReadDep = %v, %v", d, err)
	}
	b, err := ReadBuiltin(dir)
	if diff := cmp.Diff(map[string]bool{"sd_mod": true, "nls_base": true}, b); err != nil || diff != "" {
		t.Errorf("ReadBuiltin = %v (-want +got):\n%s", err, diff)
	}
}
