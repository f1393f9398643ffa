package bundle

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"math/rand/v2"
	"testing"
	"time"
)

// testKey is deterministic so that fixtures and fuzz seeds are stable.
func testKey(seed byte) ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))
}

// testImage returns n bytes mixing compressible text, random bytes and
// zero runs, so that every chunk encoding appears.
func testImage(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for off := 0; off < n; off += 64 << 10 {
		end := min(off+64<<10, n)
		switch (off / (64 << 10)) % 4 {
		case 0:
			for i := off; i < end; i++ {
				b[i] = byte(r.Uint32())
			}
		case 1:
			copy(b[off:end], bytes.Repeat([]byte("lifeboat rescue text "), (end-off)/20+1))
		case 2: // zeros
		case 3:
			for i := off; i < end; i++ {
				b[i] = byte(i / 512)
			}
		}
	}
	return b
}

type testImg struct {
	name string
	data []byte
}

func testManifest() Manifest {
	return Manifest{
		Product:         "demo",
		Version:         "1.0.0",
		SecurityVersion: 3,
		Compatible:      []string{"qemu-x86_64"},
		Steps: []Step{
			{Type: StepPartition, Target: "disk", Table: &Table{Type: "gpt", Partitions: []Partition{{Name: "boot", Type: "linux", Size: 4 << 20}, {Name: "rootfs", Type: "linux"}}}},
			{Type: StepImage, Image: "boot", Target: "boot"},
			{Type: StepImage, Image: "rootfs", Target: "rootfs"},
			{Type: StepEnv, Target: "bootenv", Set: map[string]string{"bootcount": "0"}},
		},
	}
}

func makeBundle(t testing.TB, chunk uint32, signers []Signer, imgs ...testImg) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := NewWriter(&buf, testManifest(), WriterOptions{ChunkSize: chunk, Signers: signers, TempDir: t.TempDir(), Created: time.Unix(1700000000, 0)})
	for _, im := range imgs {
		if _, err := w.AddImage(im.name, bytes.NewReader(im.data)); err != nil {
			t.Fatalf("AddImage(%s) = %v", im.name, err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatalf("Close() = %v", err)
	}
	return buf.Bytes()
}

func defaultBundle(t testing.TB) ([]byte, []testImg) {
	imgs := []testImg{
		{"boot", testImage(300<<10+17, 1)},
		{"rootfs", testImage(1<<20, 2)},
	}
	return makeBundle(t, 64<<10, []Signer{Ed25519Signer{testKey(1)}}, imgs...), imgs
}

func trust(seeds ...byte) *TrustStore {
	var keys []ed25519.PublicKey
	for _, s := range seeds {
		keys = append(keys, testKey(s).Public().(ed25519.PublicKey))
	}
	return NewTrustStore(keys...)
}

func readAll(t *testing.T, r *Reader) map[string][]byte {
	t.Helper()
	got := map[string][]byte{}
	for {
		im, err := r.Next()
		if err == io.EOF {
			return got
		}
		if err != nil {
			t.Fatalf("Next() = %v", err)
		}
		b, err := io.ReadAll(r)
		if err != nil {
			t.Fatalf("reading image %s: %v", im.Name, err)
		}
		got[im.Name] = b
	}
}

func TestRoundTrip(t *testing.T) {
	b, imgs := defaultBundle(t)
	for _, mode := range []string{"stream", "random"} {
		t.Run(mode, func(t *testing.T) {
			var r *Reader
			var err error
			if mode == "stream" {
				r, err = NewReader(bytes.NewReader(b), trust(1))
			} else {
				r, err = NewReaderAt(bytes.NewReader(b), int64(len(b)), trust(1))
			}
			if err != nil {
				t.Fatalf("open = %v", err)
			}
			if got, want := r.Signers(), []string{KeyID(testKey(1).Public().(ed25519.PublicKey))}; len(got) != 1 || got[0] != want[0] {
				t.Errorf("Signers() = %v, want %v", got, want)
			}
			m := r.Manifest()
			if m.Product != "demo" || m.SecurityVersion != 3 || len(m.Steps) != 4 {
				t.Errorf("Manifest() = %+v", m)
			}
			got := readAll(t, r)
			for _, im := range imgs {
				if !bytes.Equal(got[im.name], im.data) {
					t.Errorf("image %s differs after round trip", im.name)
				}
				sum := sha256.Sum256(im.data)
				if m.Image(im.name).SHA256 != hex.EncodeToString(sum[:]) {
					t.Errorf("image %s: whole-image hash wrong", im.name)
				}
			}
		})
	}
}

func TestEncodingsUsed(t *testing.T) {
	b, _ := defaultBundle(t)
	r, err := NewReader(bytes.NewReader(b), trust(1))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[Encoding]int{}
	var prevEnd uint64
	for _, im := range r.Manifest().Images {
		cs, _ := r.Chunks(im.Name)
		for i, c := range cs {
			seen[c.Encoding]++
			if c.Index != i || c.Offset != uint64(i)*64<<10 {
				t.Errorf("%v: bad index/offset", &c)
			}
			if !c.Zero() && c.PayloadOffset != prevEnd {
				t.Errorf("%v: payload offset %d, want %d", &c, c.PayloadOffset, prevEnd)
			}
			prevEnd = c.PayloadOffset + uint64(c.StoredSize)
		}
	}
	for _, e := range []Encoding{EncodingZero, EncodingRaw, EncodingLZ4} {
		if seen[e] == 0 {
			t.Errorf("no chunk stored as %v; seen %v", e, seen)
		}
	}
}

func TestLastChunkShort(t *testing.T) {
	b, imgs := defaultBundle(t)
	r, _ := NewReader(bytes.NewReader(b), trust(1))
	cs, _ := r.Chunks("boot")
	last := cs[len(cs)-1]
	if want := uint32(len(imgs[0].data) % (64 << 10)); last.Size != want {
		t.Errorf("last chunk size = %d, want %d", last.Size, want)
	}
}

func TestTrust(t *testing.T) {
	two := makeBundle(t, 64<<10, []Signer{Ed25519Signer{testKey(1)}, Ed25519Signer{testKey(2)}}, testImg{"boot", testImage(1000, 3)}, testImg{"rootfs", nil})
	one, _ := defaultBundle(t)
	for _, tc := range []struct {
		name   string
		bundle []byte
		trust  *TrustStore
		want   error
	}{
		{"trusted", one, trust(1), nil},
		{"unknown key", one, trust(9), ErrUnknownKey},
		{"empty store", one, NewTrustStore(), ErrUnknownKey},
		{"nil store", one, nil, ErrUnknownKey},
		{"second of two trusted", two, trust(2), nil},
		{"both trusted", two, trust(1, 2), nil},
		{"neither", two, trust(3), ErrUnknownKey},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewReader(bytes.NewReader(tc.bundle), tc.trust)
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Errorf("NewReader() = %v, want %v", err, tc.want)
			}
		})
	}
}

// TestManifestTamper changes every byte of the manifest in turn (a few
// bits each) and expects the signature check to refuse the bundle.
func TestManifestTamper(t *testing.T) {
	b, _ := defaultBundle(t)
	msize := binary.LittleEndian.Uint32(b[16:])
	for off := HeaderSize; off < HeaderSize+int(msize); off += 7 {
		bad := bytes.Clone(b)
		bad[off] ^= 0x20
		_, err := NewReader(bytes.NewReader(bad), trust(1))
		if !errors.Is(err, ErrSignature) {
			t.Fatalf("manifest byte %d changed: NewReader() = %v, want ErrSignature", off, err)
		}
	}
}

func TestHeaderAndIndexTamper(t *testing.T) {
	b, _ := defaultBundle(t)
	msize := binary.LittleEndian.Uint32(b[16:])
	ssize := binary.LittleEndian.Uint32(b[20:])
	idx := HeaderSize + int(msize) + int(ssize)
	for _, tc := range []struct {
		name string
		off  int
		want error
	}{
		{"magic", 0, ErrFormat},
		{"version", 8, ErrFormat},
		{"payload size", 32, ErrFormat},
		{"crc", 61, ErrFormat},
		{"index hash", idx + 3, ErrChecksum},
		{"index encoding", idx + 44, ErrChecksum},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := bytes.Clone(b)
			bad[tc.off] ^= 0x01
			_, err := NewReader(bytes.NewReader(bad), trust(1))
			if !errors.Is(err, tc.want) {
				t.Errorf("NewReader() = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestPayloadTamper(t *testing.T) {
	b, imgs := defaultBundle(t)
	r, err := NewReader(bytes.NewReader(b), trust(1))
	if err != nil {
		t.Fatal(err)
	}
	cs, _ := r.Chunks("rootfs")
	var victim Chunk
	for _, c := range cs {
		if c.Encoding == EncodingLZ4 && c.Index > 0 {
			victim = c
			break
		}
	}
	for _, delta := range []int{0, int(victim.StoredSize) / 2, int(victim.StoredSize) - 1} {
		bad := bytes.Clone(b)
		bad[int(r.PayloadStart()+victim.PayloadOffset)+delta] ^= 0x55
		r, err := NewReader(bytes.NewReader(bad), trust(1))
		if err != nil {
			t.Fatalf("NewReader() = %v (payload is not checked at open)", err)
		}
		r.Next()
		if _, err := io.ReadAll(r); err != nil {
			t.Fatalf("image boot: %v", err)
		}
		r.Next()
		got, err := io.ReadAll(r)
		if !errors.Is(err, ErrChecksum) {
			t.Fatalf("byte %d of %v changed: ReadAll() = %v, want ErrChecksum", delta, &victim, err)
		}
		// Nothing of the bad chunk or after it was handed out.
		if uint64(len(got)) > victim.Offset || !bytes.Equal(got, imgs[1].data[:len(got)]) {
			t.Errorf("Read handed out %d bytes; bad chunk starts at %d", len(got), victim.Offset)
		}
	}
}

func TestTruncated(t *testing.T) {
	b, _ := defaultBundle(t)
	for _, n := range []int{0, 10, HeaderSize, HeaderSize + 100, len(b) / 2, len(b) - 1} {
		short := b[:n]
		_, err := NewReaderAt(bytes.NewReader(short), int64(len(short)), trust(1))
		if !errors.Is(err, ErrTruncated) {
			t.Errorf("NewReaderAt(%d of %d bytes) = %v, want ErrTruncated", n, len(b), err)
		}
		r, err := NewReader(bytes.NewReader(short), trust(1))
		if err == nil {
			for err == nil {
				if _, err = r.Next(); err == nil {
					_, err = io.ReadAll(r)
				}
			}
		}
		if !errors.Is(err, ErrTruncated) {
			t.Errorf("stream of %d of %d bytes: %v, want ErrTruncated", n, len(b), err)
		}
	}
}

func TestStreamOrder(t *testing.T) {
	b, _ := defaultBundle(t)
	r, _ := NewReader(bytes.NewReader(b), trust(1))
	root, _ := r.Chunks("rootfs")
	boot, _ := r.Chunks("boot")
	if _, err := r.ReadStored(&root[3], nil); err != nil {
		t.Fatalf("ReadStored(forward) = %v", err)
	}
	if _, err := r.ReadStored(&boot[1], nil); !errors.Is(err, ErrOrder) {
		t.Errorf("ReadStored(backward) = %v, want ErrOrder", err)
	}
	ra, _ := NewReaderAt(bytes.NewReader(b), int64(len(b)), trust(1))
	for _, c := range []*Chunk{&root[3], &boot[1], &root[0]} {
		st, err := ra.ReadStored(c, nil)
		if err != nil {
			t.Fatalf("random ReadStored(%v) = %v", c, err)
		}
		if _, err := c.Decode(st, nil); err != nil {
			t.Errorf("Decode(%v) = %v", c, err)
		}
	}
}

func TestBadManifests(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*Manifest)
	}{
		{"no product", func(m *Manifest) { m.Product = "" }},
		{"no board", func(m *Manifest) { m.Compatible = nil }},
		{"missing image", func(m *Manifest) { m.Steps[1].Image = "nope" }},
		{"bad table", func(m *Manifest) { m.Steps[0].Table.Type = "apm" }},
		{"grow not last", func(m *Manifest) { m.Steps[0].Table.Partitions[0].Size = 0 }},
		{"env name with =", func(m *Manifest) { m.Steps[3].Set = map[string]string{"a=b": "c"} }},
		{"unknown step", func(m *Manifest) { m.Steps[1].Type = "format" }},
		{"bad wipe mode", func(m *Manifest) { m.Steps = append(m.Steps, Step{Type: StepWipe, Target: "data", Mode: "shred"}) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := testManifest()
			tc.edit(&m)
			w := NewWriter(io.Discard, m, WriterOptions{Signers: []Signer{Ed25519Signer{testKey(1)}}, TempDir: t.TempDir()})
			w.AddImage("boot", bytes.NewReader([]byte("x")))
			w.AddImage("rootfs", bytes.NewReader(nil))
			if err := w.Close(); !errors.Is(err, ErrFormat) {
				t.Errorf("Close() = %v, want ErrFormat", err)
			}
		})
	}
}

func TestWriterErrors(t *testing.T) {
	w := NewWriter(io.Discard, testManifest(), WriterOptions{TempDir: t.TempDir()})
	w.AddImage("boot", bytes.NewReader(nil))
	w.AddImage("rootfs", bytes.NewReader(nil))
	if err := w.Close(); err == nil {
		t.Error("Close() without a signer succeeded")
	}
	w = NewWriter(io.Discard, testManifest(), WriterOptions{Signers: []Signer{Ed25519Signer{testKey(1)}}, TempDir: t.TempDir()})
	if _, err := w.AddImage("boot", bytes.NewReader(nil)); err != nil {
		t.Fatal(err)
	}
	if _, err := w.AddImage("boot", bytes.NewReader(nil)); err == nil {
		t.Error("AddImage twice with one name succeeded")
	}
	w.AddImage("rootfs", bytes.NewReader(nil))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := w.AddImage("late", bytes.NewReader(nil)); !errors.Is(err, ErrWriteAfterClose) {
		t.Errorf("AddImage after Close = %v, want ErrWriteAfterClose", err)
	}
	if err := w.Close(); !errors.Is(err, ErrWriteAfterClose) {
		t.Errorf("Close twice = %v, want ErrWriteAfterClose", err)
	}
	if _, err := NewWriter(io.Discard, testManifest(), WriterOptions{ChunkSize: 3000}).AddImage("x", bytes.NewReader(nil)); err == nil {
		t.Error("chunk size 3000 accepted")
	}
}

func TestCompatibleWith(t *testing.T) {
	m := Manifest{Compatible: []string{"board-a", "board-b:2"}}
	for _, tc := range []struct {
		board, rev string
		want       bool
	}{
		{"board-a", "", true},
		{"board-a", "7", true},
		{"board-b", "2", true},
		{"board-b", "1", false},
		{"board-c", "", false},
	} {
		if got := m.CompatibleWith(tc.board, tc.rev); got != tc.want {
			t.Errorf("CompatibleWith(%q, %q) = %v, want %v", tc.board, tc.rev, got, tc.want)
		}
	}
}

func TestReadUnverified(t *testing.T) {
	b, _ := defaultBundle(t)
	u, err := ReadUnverified(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if u.Manifest == nil || u.Manifest.Product != "demo" || len(u.Signatures.Signatures) != 1 || u.Size != uint64(len(b)) {
		t.Errorf("ReadUnverified() = %+v", u)
	}
}

func TestKeysPEM(t *testing.T) {
	pub, priv, err := GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	pb, _ := MarshalPublicKey(pub)
	kb, _ := MarshalPrivateKey(priv)
	pub2, err := ParsePublicKey(pb)
	if err != nil || !pub.Equal(pub2) {
		t.Errorf("ParsePublicKey = %v, %v", pub2, err)
	}
	priv2, err := ParsePrivateKey(kb)
	if err != nil || !priv.Equal(priv2) {
		t.Errorf("ParsePrivateKey = %v", err)
	}
	if _, err := ParsePublicKey(kb); err == nil {
		t.Error("ParsePublicKey(private key) succeeded")
	}
}

// TestLargeOffsets checks that images past 4 GiB keep exact 64-bit offsets
// without writing gigabytes: a sparse reader of zeros produces only zero
// chunks.
func TestLargeOffsets(t *testing.T) {
	if testing.Short() {
		t.Skip("reads 4 GiB of zeros")
	}
	const size = 4<<30 + 12345
	var buf bytes.Buffer
	m := Manifest{Product: "big", Compatible: []string{"x"}, Steps: []Step{{Type: StepImage, Image: "big", Target: "disk"}}}
	w := NewWriter(&buf, m, WriterOptions{ChunkSize: 64 << 20, Signers: []Signer{Ed25519Signer{testKey(1)}}, TempDir: t.TempDir()})
	if _, err := w.AddImage("big", io.LimitReader(zeroReader{}, size)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	r, err := NewReader(&buf, trust(1))
	if err != nil {
		t.Fatal(err)
	}
	im := r.Manifest().Image("big")
	cs, _ := r.Chunks("big")
	last := cs[len(cs)-1]
	if im.Size != size || last.Offset+uint64(last.Size) != size {
		t.Errorf("size %d, last chunk ends at %d, want %d", im.Size, last.Offset+uint64(last.Size), size)
	}
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) { clear(p); return len(p), nil }
