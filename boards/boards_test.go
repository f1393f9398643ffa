package boards

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParse(t *testing.T) {
	p, err := Parse([]byte(`{
		"name": "b", "revision": "2",
		"storage": {
			"one": "/dev/vda",
			"list": ["/dev/mmcblk0", "/dev/vdb"],
			"obj": {"paths": ["/dev/sda"], "match": {"name": "sd?", "attrs": {"removable": "0"}}}
		},
		"targets": {
			"rootfs": {"device": "one", "partition": "rootfs"},
			"spl": {"device": "list", "offset": 32768, "size": 65536},
			"boot0": {"path": "/dev/mmcblk0boot0"}
		},
		"bootenv": {
			"env": {"type": "uboot", "path": "/dev/mtd1", "size": 65536, "redundant_offset": 65536, "scheme": "active"},
			"fat": {"type": "uboot", "device": "one", "partition": "boot", "file": "uboot.env"}
		},
		"security_version_file": "/data/sv",
		"watchdog": {"device": "/dev/watchdog", "timeout_seconds": 30}
	}`))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]Storage{
		"one":  {Paths: []string{"/dev/vda"}},
		"list": {Paths: []string{"/dev/mmcblk0", "/dev/vdb"}},
		"obj":  {Paths: []string{"/dev/sda"}, Match: &Match{Name: "sd?", Attrs: map[string]string{"removable": "0"}}},
	}
	if diff := cmp.Diff(want, p.Storage); diff != "" {
		t.Errorf("Storage (-want +got):\n%s", diff)
	}
	wantEnv := map[string]BootEnv{
		"env": {Type: EnvUBoot, Path: "/dev/mtd1", Size: 65536, Redundant: 65536, Scheme: "active"},
		"fat": {Type: EnvUBoot, Device: "one", Partition: "boot", File: "uboot.env"},
	}
	if diff := cmp.Diff(wantEnv, p.BootEnv); diff != "" {
		t.Errorf("BootEnv (-want +got):\n%s", diff)
	}
	if p.String() != "b:2" {
		t.Errorf("String() = %q, want b:2", p.String())
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct{ name, json string }{
		{"not json", `{`},
		{"unknown field", `{"name": "b", "storage": {}, "colour": "red"}`},
		{"no name", `{"storage": {}}`},
		{"colon in name", `{"name": "b:1", "storage": {}}`},
		{"relative storage path", `{"name": "b", "storage": {"d": "vda"}}`},
		{"empty storage", `{"name": "b", "storage": {"d": {}}}`},
		{"bad glob", `{"name": "b", "storage": {"d": {"match": {"name": "["}}}}`},
		{"target without place", `{"name": "b", "storage": {}, "targets": {"t": {}}}`},
		{"target on unknown device", `{"name": "b", "storage": {}, "targets": {"t": {"device": "d"}}}`},
		{"path and device", `{"name": "b", "storage": {"d": "/dev/vda"}, "targets": {"t": {"device": "d", "path": "/x"}}}`},
		{"partition and offset", `{"name": "b", "storage": {"d": "/dev/vda"}, "targets": {"t": {"device": "d", "partition": "p", "offset": 1}}}`},
		{"target named like storage", `{"name": "b", "storage": {"d": "/dev/vda"}, "targets": {"d": {"path": "/x"}}}`},
		{"bootenv type", `{"name": "b", "storage": {}, "bootenv": {"e": {"type": "efi"}}}`},
		{"bootenv unknown field", `{"name": "b", "storage": {}, "bootenv": {"e": {"type": "uboot", "paths": ["/x"]}}}`},
		{"bootenv path and device", `{"name": "b", "storage": {"d": "/dev/vda"}, "bootenv": {"e": {"type": "uboot", "path": "/x", "device": "d"}}}`},
		{"bootenv unknown device", `{"name": "b", "storage": {}, "bootenv": {"e": {"type": "uboot", "device": "d"}}}`},
		{"bootenv partition without device", `{"name": "b", "storage": {}, "bootenv": {"e": {"type": "grub", "partition": "p"}}}`},
		{"bootenv negative offset", `{"name": "b", "storage": {}, "bootenv": {"e": {"type": "uboot", "path": "/x", "offset": -1}}}`},
		{"bootenv bad scheme", `{"name": "b", "storage": {}, "bootenv": {"e": {"type": "uboot", "path": "/x", "redundant_offset": 8192, "scheme": "boolean"}}}`},
		{"bootenv scheme single copy", `{"name": "b", "storage": {}, "bootenv": {"e": {"type": "uboot", "path": "/x", "scheme": "active"}}}`},
		{"bootenv grub redundant", `{"name": "b", "storage": {}, "bootenv": {"e": {"type": "grub", "path": "/x", "redundant_offset": 1024}}}`},
		{"bootenv grub size", `{"name": "b", "storage": {}, "bootenv": {"e": {"type": "grub", "path": "/x", "size": 4096}}}`},
		{"bootenv file redundant", `{"name": "b", "storage": {"d": "/dev/vda"}, "bootenv": {"e": {"type": "uboot", "device": "d", "file": "u.env", "redundant_offset": 8192}}}`},
		{"bootenv file outside", `{"name": "b", "storage": {"d": "/dev/vda"}, "bootenv": {"e": {"type": "uboot", "device": "d", "file": "../u.env"}}}`},
		{"bootenv file without device", `{"name": "b", "storage": {}, "bootenv": {"e": {"type": "uboot", "path": "/x", "file": "u.env"}}}`},
		{"bootenv fstype without file", `{"name": "b", "storage": {"d": "/dev/vda"}, "bootenv": {"e": {"type": "uboot", "device": "d", "fstype": "vfat"}}}`},
		{"watchdog without device", `{"name": "b", "storage": {}, "watchdog": {"timeout_seconds": 3}}`},
		{"relative security version file", `{"name": "b", "storage": {}, "security_version_file": "sv"}`},
		{"mtd and ubi_image", `{"name": "b", "storage": {}, "targets": {"t": {"mtd": "a", "ubi_image": "a"}}}`},
		{"mtd with a device", `{"name": "b", "storage": {"d": "/dev/vda"}, "targets": {"t": {"mtd": "a", "device": "d"}}}`},
		{"mtd with an offset", `{"name": "b", "storage": {}, "targets": {"t": {"mtd": "a", "offset": 4096}}}`},
		{"max_bad on a block target", `{"name": "b", "storage": {}, "targets": {"t": {"path": "/x", "max_bad": 2}}}`},
		{"max_bad below -1", `{"name": "b", "storage": {}, "targets": {"t": {"mtd": "a", "max_bad": -2}}}`},
		{"ubi without volume", `{"name": "b", "storage": {}, "targets": {"t": {"ubi": {"mtd": "a"}}}}`},
		{"ubi spare is the volume", `{"name": "b", "storage": {}, "targets": {"t": {"ubi": {"mtd": "a", "volume": "v", "spare": "v"}}}}`},
		{"ubi max_bad", `{"name": "b", "storage": {}, "targets": {"t": {"ubi": {"mtd": "a", "volume": "v"}, "max_bad": 1}}}`},
		{"ubi volume not in layout", `{"name": "b", "storage": {}, "targets": {"t": {"ubi": {"mtd": "a", "volume": "v"}}}, "ubi": {"a": {"volumes": [{"name": "w", "size": 1}]}}}`},
		{"ubi spare not in layout", `{"name": "b", "storage": {}, "targets": {"t": {"ubi": {"mtd": "a", "volume": "v", "spare": "s"}}}, "ubi": {"a": {"volumes": [{"name": "v", "size": 1}]}}}`},
		{"ubi volume without size", `{"name": "b", "storage": {}, "ubi": {"a": {"volumes": [{"name": "v"}]}}}`},
		{"ubi volume type", `{"name": "b", "storage": {}, "ubi": {"a": {"volumes": [{"name": "v", "size": 1, "type": "fast"}]}}}`},
		{"ubi duplicate name", `{"name": "b", "storage": {}, "ubi": {"a": {"volumes": [{"name": "v", "size": 1}, {"name": "v", "size": 1}]}}}`},
		{"ubi duplicate ID", `{"name": "b", "storage": {}, "ubi": {"a": {"volumes": [{"name": "v", "id": 1, "size": 1}, {"name": "w", "id": 1, "size": 1}]}}}`},
		{"ubi unknown field", `{"name": "b", "storage": {}, "ubi": {"a": {"volumes": [{"name": "v", "size": 1, "flags": 1}]}}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Parse([]byte(tt.json)); !errors.Is(err, ErrInvalid) {
				t.Errorf("Parse(%s) = %v, want ErrInvalid", tt.json, err)
			}
		})
	}
}

// fakeSys makes a sysfs with block devices vda (a virtio disk), its
// partition vda1, and mmcblk0 (an SD card).
func fakeSys(t *testing.T) Resolver {
	root := t.TempDir()
	write := func(p, s string) {
		p = filepath.Join(root, "sys", "class", "block", p)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("vda/removable", "0\n")
	write("vda1/partition", "1\n")
	write("mmcblk0/removable", "0\n")
	write("mmcblk0/device/type", "SD\n")
	return Resolver{SysRoot: filepath.Join(root, "sys"), DevRoot: "/fakedev"}
}

func TestResolve(t *testing.T) {
	r := fakeSys(t)
	existing := filepath.Join(t.TempDir(), "disk.img")
	os.WriteFile(existing, nil, 0o644)
	p := &Profile{
		Name: "b",
		Storage: map[string]Storage{
			"disk": {Paths: []string{"/nonexistent/vda", existing}},
			"sd":   {Paths: []string{"/nonexistent/mmcblk9"}, Match: &Match{Name: "mmcblk*", Attrs: map[string]string{"device/type": "S?"}}},
			"virt": {Match: &Match{Name: "vd*"}},
			"gone": {Paths: []string{"/nonexistent/x"}, Match: &Match{Attrs: map[string]string{"device/type": "MMC"}}},
		},
		Targets: map[string]TargetSpec{
			"rootfs": {Device: "disk", Partition: "rootfs"},
			"spl":    {Device: "sd", Offset: 32768, Size: 4096},
			"boot0":  {Path: "/dev/mmcblk0boot0"},
			"lost":   {Device: "gone", Partition: "x"},
		},
	}
	tests := []struct {
		name string
		want Place
		err  error
	}{
		{"rootfs", Place{Name: "rootfs", Device: "disk", Path: existing, Partition: "rootfs"}, nil},
		{"spl", Place{Name: "spl", Device: "sd", Path: "/fakedev/mmcblk0", Offset: 32768, Size: 4096}, nil},
		{"boot0", Place{Name: "boot0", Path: "/dev/mmcblk0boot0"}, nil},
		{"virt", Place{Name: "virt", Device: "virt", Path: "/fakedev/vda"}, nil},
		{"lost", Place{}, ErrNoDevice},
		{"nothing", Place{}, ErrUnknownTarget},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := r.Resolve(p, tt.name)
			if !errors.Is(err, tt.err) {
				t.Fatalf("Resolve(%q) = %v, want %v", tt.name, err, tt.err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Resolve(%q) (-want +got):\n%s", tt.name, diff)
			}
		})
	}
}

func TestBuiltin(t *testing.T) {
	if diff := cmp.Diff([]string{"qemu-x86_64"}, BuiltinNames()); diff != "" {
		t.Errorf("BuiltinNames() (-want +got):\n%s", diff)
	}
	p, err := Builtin("qemu-x86_64")
	if err != nil {
		t.Fatal(err)
	}
	if p.Name != "qemu-x86_64" || p.Storage["disk"].Paths[0] != "/dev/vda" {
		t.Errorf("Builtin(qemu-x86_64) = %+v, want disk /dev/vda", p)
	}
	for _, name := range []string{"nope", "../boards/qemu-x86_64"} {
		if _, err := Builtin(name); !errors.Is(err, ErrUnknownBoard) {
			t.Errorf("Builtin(%q) = %v, want ErrUnknownBoard", name, err)
		}
	}
}

func TestLoad(t *testing.T) {
	p := filepath.Join(t.TempDir(), "board.json")
	os.WriteFile(p, []byte(`{"name": "b", "storage": {"disk": "/dev/vda"}}`), 0o644)
	b, err := Load(p)
	if err != nil || b.Name != "b" {
		t.Fatalf("Load = %+v, %v", b, err)
	}
	if _, err := Load(filepath.Join(t.TempDir(), "none.json")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load(missing) = %v, want ErrNotExist", err)
	}
}

func TestParseFlash(t *testing.T) {
	p, err := Parse([]byte(`{
		"name": "nand-board",
		"storage": {},
		"targets": {
			"spl": {"mtd": "spl", "max_bad": -1},
			"kernel": {"mtd": "/dev/mtd2", "max_bad": 8},
			"rootfs": {"ubi": {"mtd": "ubi-part", "volume": "rootfs", "spare": "rootfs_b"}},
			"ubi": {"ubi_image": "ubi-part", "max_bad": 8}
		},
		"ubi": {
			"ubi-part": {"volumes": [
				{"name": "rootfs", "id": 0, "size": 67108864},
				{"name": "rootfs_b", "id": 1, "size": 67108864},
				{"name": "env", "size": 262144, "type": "static"}
			]}
		}
	}`))
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]string{}
	for n, ts := range p.Targets {
		kinds[n] = ts.Kind()
	}
	if diff := cmp.Diff(map[string]string{"spl": KindMTD, "kernel": KindMTD, "rootfs": KindUBI, "ubi": KindUBIImage}, kinds); diff != "" {
		t.Errorf("kinds (-want +got):\n%s", diff)
	}
	pl, err := p.Resolve("rootfs")
	if err != nil {
		t.Fatal(err)
	}
	if pl.Flash == nil || pl.Flash.UBI.Spare != "rootfs_b" || pl.Path != "" {
		t.Errorf("Resolve(rootfs) = %+v, want the flash spec and no path", pl)
	}
	if got, want := pl.String(), `UBI volume "rootfs" on MTD "ubi-part"`; got != want {
		t.Errorf("Place.String() = %q, want %q", got, want)
	}
	v, ok := p.UBI["ubi-part"].Volume("rootfs_b")
	if !ok || v.ID == nil || *v.ID != 1 || v.Size != 64<<20 {
		t.Errorf("Volume(rootfs_b) = %+v, %v", v, ok)
	}
}
