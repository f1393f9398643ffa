package bundletool

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/lifeboat-updater/lifeboat/bundle"
)

func TestSpecUnitData(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "rootfs.img"), make([]byte, 4096), 0o644)
	spec := `product: demo-os
version: "1.0"
compatible: [qemu-x86_64]
steps:
  - {type: image, file: rootfs.img, target: rootfs}
unit_data:
  - name: serial
    from: serial
    format: serial
    pattern: "LB-[0-9]{6}"
    to:
      - {type: env, target: bootenv, variable: "serial#"}
      - {type: raw, target: disk, offset: 1KiB, size: 32}
  - {name: mac0, from: mac, index: 0, format: mac, to: [{type: file, target: boot, path: factory/mac0}]}
`
	p := filepath.Join(dir, "spec.yaml")
	os.WriteFile(p, []byte(spec), 0o644)
	s, err := LoadSpec(p)
	if err != nil {
		t.Fatal(err)
	}
	m, _, err := s.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	want := []bundle.UnitField{
		{Name: "serial", From: "serial", Format: "serial", Pattern: "LB-[0-9]{6}", To: []bundle.UnitDest{
			{Type: "env", Target: "bootenv", Variable: "serial#"}, {Type: "raw", Target: "disk", Offset: 1024, Size: 32}}},
		{Name: "mac0", From: "mac", Format: "mac", To: []bundle.UnitDest{{Type: "file", Target: "boot", Path: "factory/mac0"}}},
	}
	if diff := cmp.Diff(want, m.UnitData); diff != "" {
		t.Errorf("unit_data mismatch (-want +got):\n%s", diff)
	}
	if err := m.ValidateUnitData(); err != nil {
		t.Errorf("ValidateUnitData() = %v", err)
	}
}

// TestCreateRefusesStationKey: a key marked for unit data never signs a
// bundle.
func TestCreateRefusesStationKey(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "rootfs.img"), make([]byte, 4096), 0o644)
	p := filepath.Join(dir, "spec.yaml")
	os.WriteFile(p, []byte("product: x\nversion: \"1\"\ncompatible: [b]\nsteps: [{type: image, file: rootfs.img, target: rootfs}]\n"), 0o644)
	_, priv, _ := bundle.GenerateKey(nil)
	kb, _ := bundle.MarshalPrivateKey(priv)
	// Marked as unitdata.MarshalPrivateKey marks it.
	marked := []byte(string(kb[:len("-----BEGIN PRIVATE KEY-----\n")]) + bundle.KeyUsageHeader + ": " + bundle.KeyUsageUnitData + "\n\n" + string(kb[len("-----BEGIN PRIVATE KEY-----\n"):]))
	if bundle.KeyUsage(marked) != bundle.KeyUsageUnitData {
		t.Fatalf("test key not marked:\n%s", marked)
	}
	key := filepath.Join(dir, "station.key")
	os.WriteFile(key, marked, 0o600)
	var stdout, stderr strings.Builder
	code := Main(t.Context(), []string{"create", "-spec", p, "-key", key, "-o", filepath.Join(dir, "out.lfb")}, nil, &stdout, &stderr)
	if code == 0 || !strings.Contains(stderr.String(), "never bundles") {
		t.Errorf("create with a station key: exit %d, %q", code, stderr.String())
	}
	if _, err := os.Stat(filepath.Join(dir, "out.lfb")); err == nil {
		t.Errorf("a bundle was written")
	}
}
