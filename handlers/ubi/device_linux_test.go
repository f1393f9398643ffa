package ubi

import (
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// TestIoctlSizes checks the request structs against the sizes the ioctl
// numbers encode (_IOC_SIZE, bits 16-29), which come from ubi-user.h.
func TestIoctlSizes(t *testing.T) {
	tests := []struct {
		name string
		req  uint
		size uintptr
	}{
		{"UBI_IOCATT", unix.UBI_IOCATT, unsafe.Sizeof(attachReq{})},
		{"UBI_IOCMKVOL", unix.UBI_IOCMKVOL, unsafe.Sizeof(mkvolReq{})},
		{"UBI_IOCRSVOL", unix.UBI_IOCRSVOL, unsafe.Sizeof(rsvolReq{})},
		{"UBI_IOCRNVOL", unix.UBI_IOCRNVOL, unsafe.Sizeof(rnvolReq{})},
		{"UBI_IOCRMVOL", unix.UBI_IOCRMVOL, unsafe.Sizeof(int32(0))},
		{"UBI_IOCDET", unix.UBI_IOCDET, unsafe.Sizeof(int32(0))},
		{"UBI_IOCVOLUP", unix.UBI_IOCVOLUP, unsafe.Sizeof(int64(0))},
	}
	for _, tt := range tests {
		if got := uintptr(tt.req>>16) & 0x3fff; got != tt.size {
			t.Errorf("%s: struct has %d bytes, the ioctl number says %d", tt.name, tt.size, got)
		}
	}
	// Field offsets that padding rules could move (ubi-user.h is packed).
	var mk mkvolReq
	if off := unsafe.Offsetof(mk.Name); off != 24 {
		t.Errorf("ubi_mkvol_req.name at %d, want 24", off)
	}
	var rn rnvolReq
	if off := unsafe.Offsetof(rn.Ents); off != 16 {
		t.Errorf("ubi_rnvol_req.ents at %d, want 16", off)
	}
}
