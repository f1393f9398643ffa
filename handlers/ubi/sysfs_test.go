package ubi

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func writeTree(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestSysfs(t *testing.T) {
	root := t.TempDir()
	writeTree(t, root, map[string]string{
		"ubi0/mtd_num": "2", "ubi0/eraseblock_size": "126976", "ubi0/total_eraseblocks": "1000",
		"ubi0/avail_eraseblocks": "90", "ubi0/min_io_size": "2048", "ubi0/bad_peb_count": "3",
		"ubi0/max_vol_count": "128",
		"ubi0_1/name":        "rootfs", "ubi0_1/type": "dynamic", "ubi0_1/reserved_ebs": "800",
		"ubi0_1/usable_eb_size": "126976", "ubi0_1/data_bytes": "101580800", "ubi0_1/alignment": "1",
		"ubi0_1/corrupted": "0", "ubi0_1/upd_marker": "0",
		"ubi0_0/name": "kernel", "ubi0_0/type": "static", "ubi0_0/reserved_ebs": "40",
		"ubi0_0/usable_eb_size": "126976", "ubi0_0/data_bytes": "4000000", "ubi0_0/alignment": "1",
		"ubi0_0/corrupted": "0", "ubi0_0/upd_marker": "1",
		"ubi1/mtd_num": "5",
		"ubi1_0/name":  "other",
	})
	s := Sysfs(root)
	info, err := s.Device(0)
	if err != nil {
		t.Fatal(err)
	}
	wantInfo := DeviceInfo{Num: 0, MTDNum: 2, LEBSize: 126976, TotalLEBs: 1000, FreeLEBs: 90, MinIOSize: 2048, BadPEBs: 3, MaxVolumes: 128}
	if d := cmp.Diff(wantInfo, info); d != "" {
		t.Errorf("Device(0) (-want +got):\n%s", d)
	}
	vols, err := s.Volumes(0)
	if err != nil {
		t.Fatal(err)
	}
	wantVols := []Volume{
		{ID: 0, Name: "kernel", Type: Static, LEBs: 40, LEBSize: 126976, DataBytes: 4000000, Alignment: 1, Corrupted: true},
		{ID: 1, Name: "rootfs", Type: Dynamic, LEBs: 800, LEBSize: 126976, DataBytes: 101580800, Alignment: 1},
	}
	if d := cmp.Diff(wantVols, vols); d != "" {
		t.Errorf("Volumes(0) (-want +got):\n%s", d)
	}
	if n, ok := s.Attached(5); !ok || n != 1 {
		t.Errorf("Attached(5) = %d, %v, want 1, true", n, ok)
	}
	if _, ok := s.Attached(3); ok {
		t.Error("Attached(3) = true, want false")
	}
	if _, err := s.Device(7); !errors.Is(err, ErrNotFound) {
		t.Errorf("Device(7) = %v, want %v", err, ErrNotFound)
	}
}
