package mtd

import (
	"os"
	"path/filepath"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// TestIoctlSizes checks the request structs against the sizes the ioctl
// numbers encode (_IOC_SIZE, bits 16-29).
func TestIoctlSizes(t *testing.T) {
	tests := []struct {
		name string
		req  uint
		size uintptr
	}{
		{"MEMGETINFO", unix.MEMGETINFO, unsafe.Sizeof(mtdInfoUser{})},
		{"MEMERASE64", unix.MEMERASE64, unsafe.Sizeof(eraseInfoUser64{})},
		{"ECCGETSTATS", unix.ECCGETSTATS, unsafe.Sizeof(ECCStats{})},
		{"MEMGETBADBLOCK", unix.MEMGETBADBLOCK, unsafe.Sizeof(int64(0))},
		{"MEMSETBADBLOCK", unix.MEMSETBADBLOCK, unsafe.Sizeof(int64(0))},
	}
	for _, tt := range tests {
		if got := uintptr(tt.req>>16) & 0x3fff; got != tt.size {
			t.Errorf("%s: struct has %d bytes, the ioctl number says %d", tt.name, tt.size, got)
		}
	}
}

// TestIsCharDevice tells /dev/mtdN nodes from files and other character
// devices. The node is made with mknod (MTD's major number, 90), which
// needs root: the test runs as root on CI.
func TestIsCharDevice(t *testing.T) {
	dir := t.TempDir()
	node := filepath.Join(dir, "mtd3")
	if err := unix.Mknod(node, unix.S_IFCHR|0o600, int(unix.Mkdev(90, 6))); err != nil {
		t.Skipf("cannot make a character device node (needs root): %v", err)
	}
	file := filepath.Join(dir, "mtd4")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]bool{
		node:                          true,
		file:                          false, // named like one, but a file
		"/dev/null":                   false, // a character device of another name
		filepath.Join(dir, "missing"): false,
	} {
		if got := IsCharDevice(path); got != want {
			t.Errorf("IsCharDevice(%q) = %v, want %v", path, got, want)
		}
	}
}
