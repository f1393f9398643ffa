package bundle

import (
	"bytes"
	"io"
	"testing"
)

// benchBundle is a bundle of a 64 MiB image of mixed chunks at 64 KiB, so
// 1024 chunks: text (LZ4), random (raw) and zero.
func benchBundle(b *testing.B) []byte {
	return makeBundle(b, 64<<10, []Signer{Ed25519Signer{testKey(1)}}, testImg{"boot", testImage(1<<10, 1)}, testImg{"rootfs", testImage(64<<20, 2)})
}

// BenchmarkNewReader opens a bundle from a stream: header, signature,
// manifest, index.
func BenchmarkNewReader(b *testing.B) {
	bb := benchBundle(b)
	ts := trust(1)
	b.ResetTimer()
	for b.Loop() {
		if _, err := NewReader(bytes.NewReader(bb), ts); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRead reads every image of the bundle through Read, as
// lifeboat-bundle verify does: every chunk and every image checked.
func BenchmarkRead(b *testing.B) {
	bb := benchBundle(b)
	ts := trust(1)
	b.SetBytes(64<<20 + 1<<10)
	b.ResetTimer()
	for b.Loop() {
		r, err := NewReader(bytes.NewReader(bb), ts)
		if err != nil {
			b.Fatal(err)
		}
		for {
			if _, err := r.Next(); err == io.EOF {
				break
			} else if err != nil {
				b.Fatal(err)
			}
			if _, err := io.Copy(io.Discard, r); err != nil {
				b.Fatal(err)
			}
		}
	}
}
