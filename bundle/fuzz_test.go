package bundle

import (
	"bytes"
	"encoding/json"
	"io"
	"testing"
)

// FuzzReader feeds arbitrary bytes to the stream reader. Whatever it is
// given, it must not panic or allocate without bound, and any image bytes
// it hands out must be the bytes a trusted key signed.
func FuzzReader(f *testing.F) {
	b, _ := defaultBundle(f)
	f.Add(b)
	f.Add(b[:HeaderSize])
	f.Add(b[:len(b)/2])
	f.Add(makeBundle(f, 64<<10, []Signer{Ed25519Signer{testKey(1)}}, testImg{"boot", []byte("x")}, testImg{"rootfs", nil}))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := NewReader(bytes.NewReader(data), trust(1))
		if err != nil {
			return
		}
		for {
			if _, err := r.Next(); err != nil {
				return
			}
			if _, err := io.Copy(io.Discard, r); err != nil {
				return
			}
		}
	})
}

// FuzzManifestIndex reaches the manifest and index parsers directly, past
// the signature check that guards them in NewReader.
func FuzzManifestIndex(f *testing.F) {
	b, _ := defaultBundle(f)
	r, err := NewReader(bytes.NewReader(b), trust(1))
	if err != nil {
		f.Fatal(err)
	}
	mb, _ := json.Marshal(r.Manifest())
	h, _ := parseHeader(b)
	idx := b[HeaderSize+int(h.ManifestSize)+int(h.SignatureSize) : h.payloadOffset()]
	f.Add(mb, idx)
	f.Add([]byte(`{"format":1}`), []byte{})
	f.Fuzz(func(t *testing.T, mb, idx []byte) {
		m, err := parseManifest(mb)
		if err != nil {
			return
		}
		if uint64(len(idx)) != m.IndexSize {
			return
		}
		chunks, err := parseIndex(m, idx)
		if err != nil {
			return
		}
		var pos uint64
		for _, c := range chunks {
			if c.Size == 0 || c.Size > m.ChunkSize {
				t.Fatalf("%v: size %d with chunk size %d", &c, c.Size, m.ChunkSize)
			}
			pos += uint64(c.StoredSize)
		}
		if pos != m.PayloadSize {
			t.Fatalf("chunks fill %d, payload %d", pos, m.PayloadSize)
		}
	})
}

// FuzzDecode checks that no stored bytes make Decode panic, overrun its
// buffer, or accept data that does not hash to the chunk's hash.
func FuzzDecode(f *testing.F) {
	var c Chunk
	data := bytes.Repeat([]byte("abcd"), 1000)
	var comp [8192]byte
	var lc lzCompressor
	h, enc, st := encodeChunk(&lc, data, comp[:])
	f.Add(st, uint8(enc), uint32(len(data)))
	f.Add([]byte{0xff, 0x00}, uint8(EncodingLZ4), uint32(100))
	f.Fuzz(func(t *testing.T, stored []byte, enc uint8, size uint32) {
		if size > 1<<20 {
			return
		}
		c = Chunk{Size: size, Encoding: Encoding(enc), Hash: h, StoredSize: uint32(len(stored))}
		out, err := c.Decode(stored, nil)
		if err == nil && (len(out) != int(size) || !c.Matches(out)) {
			t.Fatalf("Decode accepted %d bytes that do not match", len(out))
		}
	})
}
