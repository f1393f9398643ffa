package ubi

import (
	"bytes"
	"testing"
)

// FuzzECHeader: whatever ParseECHeader accepts, Put writes back with the
// same field bytes, and it parses to the same header.
func FuzzECHeader(f *testing.F) {
	b := make([]byte, ECHeaderSize)
	ECHeader{Version: 1, EC: 7, VIDHdrOffset: 512, DataOffset: 2048, ImageSeq: 42}.Put(b)
	f.Add(b)
	f.Add(bytes.Repeat([]byte{0xFF}, ECHeaderSize))
	f.Fuzz(func(t *testing.T, p []byte) {
		h, ok := ParseECHeader(p)
		if !ok {
			return
		}
		q := make([]byte, ECHeaderSize)
		h.Put(q)
		h2, ok := ParseECHeader(q)
		if !ok || h2 != h {
			t.Fatalf("ParseECHeader(Put(%+v)) = %+v, %v", h, h2, ok)
		}
		// The fields' bytes come back; the padding is zeroed.
		if !bytes.Equal(p[:5], q[:5]) || !bytes.Equal(p[8:28], q[8:28]) {
			t.Fatalf("Put(%+v) = %x, parsed from %x", h, q, p[:ECHeaderSize])
		}
	})
}
