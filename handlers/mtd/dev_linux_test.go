package mtd

import (
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
