package mtd_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/lifeboat-updater/lifeboat/handlers/mtd"
)

const procMTD = `dev:    size   erasesize  name
mtd0: 00100000 00020000 "u-boot"
mtd1: 00040000 00020000 "u-boot env"
mtd2: 0fec0000 00020000 "rootfs"
`

func TestParseProcMTD(t *testing.T) {
	got, err := mtd.ParseProcMTD(strings.NewReader(procMTD))
	if err != nil {
		t.Fatal(err)
	}
	want := []mtd.Partition{
		{Index: 0, Size: 0x100000, EraseSize: 0x20000, Name: "u-boot"},
		{Index: 1, Size: 0x40000, EraseSize: 0x20000, Name: "u-boot env"},
		{Index: 2, Size: 0xfec0000, EraseSize: 0x20000, Name: "rootfs"},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("ParseProcMTD() (-want +got):\n%s", d)
	}
}

func TestLookup(t *testing.T) {
	dir := t.TempDir()
	sys := filepath.Join(dir, "sys")
	for n, name := range map[string]string{"mtd0": "u-boot", "mtd0ro": "u-boot", "mtd3": "kernel"} {
		if err := os.MkdirAll(filepath.Join(sys, n), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(sys, n, "name"), []byte(name+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	proc := filepath.Join(dir, "mtd")
	if err := os.WriteFile(proc, []byte(procMTD), 0o644); err != nil {
		t.Fatal(err)
	}
	f := mtd.Finder{SysClass: sys, Proc: proc, Dev: "/dev"}
	tests := []struct {
		name, want string
		err        error
	}{
		{name: "/dev/mtd7", want: "/dev/mtd7"},
		{name: "mtd5", want: "/dev/mtd5"},
		{name: "u-boot", want: "/dev/mtd0"},
		{name: "kernel", want: "/dev/mtd3"},
		{name: "rootfs", want: "/dev/mtd2"}, // only in /proc/mtd
		{name: "u-boot env", want: "/dev/mtd1"},
		{name: "nothing", err: mtd.ErrNotFound},
	}
	for _, tt := range tests {
		got, err := f.Lookup(tt.name)
		if got != tt.want || !errors.Is(err, tt.err) {
			t.Errorf("Lookup(%q) = %q, %v, want %q, %v", tt.name, got, err, tt.want, tt.err)
		}
	}
}

func TestIndex(t *testing.T) {
	for _, tt := range []struct {
		path string
		want int
		err  error
	}{
		{"/dev/mtd3", 3, nil},
		{"mtd12", 12, nil},
		{"/dev/mtd3ro", 0, mtd.ErrNotFound},
		{"/dev/sda", 0, mtd.ErrNotFound},
	} {
		got, err := mtd.Index(tt.path)
		if got != tt.want || !errors.Is(err, tt.err) {
			t.Errorf("Index(%q) = %d, %v, want %d, %v", tt.path, got, err, tt.want, tt.err)
		}
	}
}
