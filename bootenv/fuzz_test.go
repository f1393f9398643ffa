package bootenv

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// FuzzDecodeUBoot checks that any copy decodes or fails with a sentinel, and
// that what decodes re-encodes to the same variables. fixCRC rewrites the
// CRC first, so that the fuzzer reaches the data parser. The seed corpus in
// testdata/fuzz holds images written by mkenvimage and fw_setenv.
func FuzzDecodeUBoot(f *testing.F) {
	for _, redundant := range []bool{false, true} {
		e, _ := NewUBootEnv(64, redundant)
		e.Set("bootcmd", "run x")
		e.Set("a", "1")
		img, _ := e.Encode()
		f.Add(img, redundant, false)
	}
	f.Add(bytes.Repeat([]byte{0xFF}, 64), false, true)
	f.Fuzz(func(t *testing.T, img []byte, redundant, fixCRC bool) {
		hdr := 4
		if redundant {
			hdr = 5
		}
		if fixCRC && len(img) >= hdr {
			binary.LittleEndian.PutUint32(img, crc32.ChecksumIEEE(img[hdr:]))
		}
		e, err := DecodeUBoot(img, redundant)
		if err != nil {
			if !errors.Is(err, ErrBadCRC) && !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrSize) {
				t.Fatalf("DecodeUBoot() = %v, want a sentinel error", err)
			}
			return
		}
		out, err := e.Encode()
		if err != nil {
			t.Fatalf("Encode(Decode(img)) = %v", err)
		}
		if len(out) != len(img) {
			t.Fatalf("Encode(Decode(img)) is %d bytes, want %d", len(out), len(img))
		}
		e2, err := DecodeUBoot(out, redundant)
		if err != nil {
			t.Fatalf("Decode(Encode(Decode(img))) = %v", err)
		}
		if diff := cmp.Diff(e.Vars(), e2.Vars()); diff != "" {
			t.Fatalf("variables changed through Encode (-first +second):\n%s", diff)
		}
		if out2, _ := e2.Encode(); !bytes.Equal(out, out2) {
			t.Fatalf("Encode is not stable")
		}
	})
}

// FuzzDecodeGRUB checks that any block decodes or fails with a sentinel, and
// that what decodes re-encodes, within 1024 bytes, to the same variables. The
// seed corpus holds blocks written by grub-editenv.
func FuzzDecodeGRUB(f *testing.F) {
	f.Add(grubBlock("a=1\nb=x\\\ny\n"))
	f.Add(grubBlock("# comment\nname=v\\\\\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := DecodeGRUB(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrSize) {
				t.Fatalf("DecodeGRUB() = %v, want a sentinel error", err)
			}
			return
		}
		out, err := e.Encode()
		if err != nil {
			t.Fatalf("Encode(Decode(b)) = %v", err)
		}
		e2, err := DecodeGRUB(out)
		if err != nil {
			t.Fatalf("Decode(Encode(Decode(b))) = %v\n%q", err, out)
		}
		if diff := cmp.Diff(e.Vars(), e2.Vars()); diff != "" {
			t.Fatalf("variables changed through Encode (-first +second):\n%s", diff)
		}
		if diff := cmp.Diff(e.comments, e2.comments); diff != "" {
			t.Fatalf("comments changed through Encode (-first +second):\n%s", diff)
		}
	})
}
