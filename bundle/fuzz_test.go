package bundle

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"io"
	"math"
	"runtime"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
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
		var r *Reader
		var err error
		openBounded(t, len(data), func() { r, err = NewReader(bytes.NewReader(data), trust(1)) })
		if err != nil {
			return
		}
		checkZeroChunks(t, r)
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

// FuzzReaderAt feeds arbitrary bytes to the random-access reader, with
// the size of the input as the bundle's size.
func FuzzReaderAt(f *testing.F) {
	b, _ := defaultBundle(f)
	f.Add(b)
	f.Add(b[:HeaderSize])
	f.Add(b[:len(b)-1])
	f.Fuzz(func(t *testing.T, data []byte) {
		var r *Reader
		var err error
		openBounded(t, len(data), func() { r, err = NewReaderAt(bytes.NewReader(data), int64(len(data)), trust(1)) })
		if err != nil {
			return
		}
		checkZeroChunks(t, r)
		for _, im := range r.Manifest().Images {
			cs, err := r.Chunks(im.Name)
			if err != nil {
				t.Fatal(err)
			}
			for i := range cs {
				c := &cs[i]
				st, err := r.ReadStored(c, nil)
				if err != nil {
					t.Fatalf("ReadStored(%v) = %v on a bundle whose size was checked", c, err)
				}
				if out, err := c.Decode(st, nil); err == nil && !c.Matches(out) {
					t.Fatalf("%v decoded to bytes it does not match", c)
				}
			}
		}
	})
}

// FuzzReadUnverified feeds arbitrary bytes to the inspection reader: it
// must stay within the same bounds as the verifying one.
func FuzzReadUnverified(f *testing.F) {
	b, _ := defaultBundle(f)
	f.Add(b)
	f.Add(b[:HeaderSize+10])
	f.Fuzz(func(t *testing.T, data []byte) {
		var u *Unverified
		var err error
		openBounded(t, len(data), func() { u, err = ReadUnverified(bytes.NewReader(data)) })
		if err != nil {
			return
		}
		if len(u.Signatures.Signatures) > MaxSignatures {
			t.Fatalf("%d signatures", len(u.Signatures.Signatures))
		}
	})
}

// FuzzManifest reaches the manifest parser directly. A manifest it takes
// must say the same thing once re-encoded (no field read two ways) and
// keep to the rules a device relies on.
func FuzzManifest(f *testing.F) {
	b, _ := defaultBundle(f)
	h, _ := parseHeader(b)
	f.Add(b[HeaderSize : HeaderSize+int(h.ManifestSize)])
	m := validManifest()
	mb, _ := json.Marshal(&m)
	f.Add(mb)
	f.Add([]byte(`{"format":1,"format":1}`))
	f.Add([]byte(`{"format":1} {}`))
	f.Fuzz(func(t *testing.T, mb []byte) {
		m, err := parseManifest(mb)
		if err != nil {
			return
		}
		again, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		m2, err := parseManifest(again)
		if err != nil {
			t.Fatalf("re-encoded manifest refused: %v\n%s", err, again)
		}
		if diff := cmp.Diff(m, m2, cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("manifest reads differently re-encoded (-first +second):\n%s", diff)
		}
		for _, im := range m.Images {
			if im.Size > math.MaxInt64 || !isPrintable(im.Name) {
				t.Fatalf("image %+v taken", im)
			}
		}
		for _, s := range m.Steps {
			if !isPrintable(s.Target) {
				t.Fatalf("target %q taken", s.Target)
			}
		}
	})
}

// FuzzSignatureBlock reaches the signature block parser, which runs
// before anything is verified.
func FuzzSignatureBlock(f *testing.F) {
	b, _ := defaultBundle(f)
	h, _ := parseHeader(b)
	f.Add(b[HeaderSize+int(h.ManifestSize) : HeaderSize+int(h.ManifestSize)+int(h.SignatureSize)])
	f.Add([]byte(`{"signatures":[{"key_id":"x","algorithm":"ed25519","value":"AAAA","certificates":["AAAA"],"extra":{"a":[1,{"b":2}]}}]}`))
	f.Fuzz(func(t *testing.T, sb []byte) {
		blk, err := parseSignatureBlock(sb)
		if err != nil {
			return
		}
		if len(blk.Signatures) > MaxSignatures {
			t.Fatalf("%d signatures taken", len(blk.Signatures))
		}
		if _, err := trust(1).verify([]byte("{}"), sb); err == nil {
			t.Fatal("a signature over another manifest verified")
		}
	})
}

// openBounded runs open, which opens a bundle of n bytes, and fails t if
// it allocated more than the bundle's bytes can account for: a header or
// manifest that claims more than is there must cost nothing extra. The
// bound is generous (a chunk list takes 80 bytes per 48 of index, and
// buffers grow by doubling), and far below what an unchecked claim
// allocates.
func openBounded(t *testing.T, n int, open func()) {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	open()
	runtime.ReadMemStats(&after)
	if got, limit := after.TotalAlloc-before.TotalAlloc, uint64(8*n+4<<20); got > limit {
		t.Fatalf("opening %d bytes allocated %d bytes, more than %d", n, got, limit)
	}
}

// checkZeroChunks fails t if r hands out a zero chunk whose hash is not
// that of its size in zero bytes: the install writes zeros for it
// unhashed.
func checkZeroChunks(t *testing.T, r *Reader) {
	for _, c := range r.chunks {
		if c.Zero() && c.Hash != sha256.Sum256(make([]byte, c.Size)) {
			t.Fatalf("%v: a zero chunk whose hash is not that of zeros", &c)
		}
	}
}
