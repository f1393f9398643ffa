package bundle_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/lifeboat-updater/lifeboat/bundle"
	"github.com/lifeboat-updater/lifeboat/bundle/bundletest"
)

// The tests in this file open bundles that a trusted key signed but that
// a buggy or compromised build pipeline made: each must be refused when it
// is opened, before a device acts on any of it.

const hcs = bundle.MinChunkSize

func hostileKey() bundle.Ed25519Signer {
	return bundle.Ed25519Signer{Key: ed25519.NewKeyFromSeed(bytes.Repeat([]byte{9}, ed25519.SeedSize))}
}

func hostileTrust() *bundle.TrustStore {
	return bundle.NewTrustStore(hostileKey().Key.Public().(ed25519.PublicKey))
}

// pattern returns n bytes no chunk of which is zero or compressible.
func pattern(n int) []byte {
	b := make([]byte, n)
	x := uint32(2463534242)
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x) | 1
	}
	return b
}

// base is a good bundle: a GPT with a 1 MiB "boot" and a "rootfs" taking
// the rest, a 3-chunk image of raw chunks into rootfs, an env step.
func base(t testing.TB, data []byte) []byte {
	t.Helper()
	m := bundle.Manifest{Product: "demo", Version: "1", Compatible: []string{"board"}, Steps: []bundle.Step{
		{Type: bundle.StepPartition, Target: "disk", Table: &bundle.Table{Type: "gpt", Partitions: []bundle.Partition{
			{Name: "boot", Type: "linux", Size: 1 << 20}, {Name: "rootfs", Type: "linux"}}}},
		{Type: bundle.StepImage, Image: "rootfs", Target: "rootfs"},
		{Type: bundle.StepEnv, Target: "bootenv", Set: map[string]string{"bootcount": "0"}},
	}}
	var buf bytes.Buffer
	w := bundle.NewWriter(&buf, m, bundle.WriterOptions{ChunkSize: hcs, Signers: []bundle.Signer{hostileKey()}, TempDir: t.TempDir(), Created: time.Unix(0, 0)})
	if _, err := w.AddImage("rootfs", bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func split(t testing.TB, b []byte) *bundletest.Parts {
	t.Helper()
	p, err := bundletest.Split(b)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// resign signs p's manifest as it is, with the trusted key, and returns
// the bundle.
func resign(t testing.TB, p *bundletest.Parts) []byte {
	t.Helper()
	if err := p.Sign(hostileKey()); err != nil {
		t.Fatal(err)
	}
	return p.Bytes()
}

// open opens b as a stream and with random access, and returns the
// errors; both must agree on the kind.
func open(t *testing.T, b []byte) (error, error) {
	t.Helper()
	_, serr := bundle.NewReader(bytes.NewReader(b), hostileTrust())
	_, aerr := bundle.NewReaderAt(bytes.NewReader(b), int64(len(b)), hostileTrust())
	return serr, aerr
}

func wantOpenError(t *testing.T, b []byte, want error, text string) {
	t.Helper()
	serr, aerr := open(t, b)
	for _, e := range []struct {
		how string
		err error
	}{{"NewReader", serr}, {"NewReaderAt", aerr}} {
		if !errors.Is(e.err, want) || !strings.Contains(fmt.Sprint(e.err), text) {
			t.Errorf("%s() = %v, want %v mentioning %q", e.how, e.err, want, text)
		}
	}
}

// TestZeroChunkWithForeignHash is a chunk whose index entry says "zero"
// while its signed hash is that of other bytes. Before, the install wrote
// zeros without checking the hash and verify called the zeros a match.
func TestZeroChunkWithForeignHash(t *testing.T) {
	data := pattern(3 * hcs)
	p := split(t, base(t, data))
	// Chunk 1 becomes "zero": its stored bytes leave the payload and the
	// next chunk moves up; its hash stays that of its real bytes.
	if err := p.MakeZero(1); err != nil {
		t.Fatal(err)
	}
	rec := p.Record(1)
	wantOpenError(t, resign(t, p), bundle.ErrFormat, "marked zero")

	// The same with the hash of zero bytes of the wrong length.
	zeros := sha256.Sum256(make([]byte, hcs-1))
	copy(rec[:32], zeros[:])
	if err := p.Edit(func(m *bundle.Manifest) { m.IndexSHA256 = p.IndexSHA256() }); err != nil {
		t.Fatal(err)
	}
	wantOpenError(t, resign(t, p), bundle.ErrFormat, "marked zero")

	// With the hash of the zeros it stands for, it is a good bundle.
	zeros = sha256.Sum256(make([]byte, hcs))
	copy(rec[:32], zeros[:])
	if err := p.Edit(func(m *bundle.Manifest) {
		m.IndexSHA256 = p.IndexSHA256()
		sum := sha256.Sum256(append(append(bytes.Clone(data[:hcs]), make([]byte, hcs)...), data[2*hcs:]...))
		m.Images[0].SHA256 = fmt.Sprintf("%x", sum)
	}); err != nil {
		t.Fatal(err)
	}
	if serr, aerr := open(t, resign(t, p)); serr != nil || aerr != nil {
		t.Errorf("a zero chunk with the zero hash: NewReader() = %v, NewReaderAt() = %v", serr, aerr)
	}
}

// TestHandMadeZeroChunk checks that a Chunk that says zero but was not
// made by a Reader is still held to its hash.
func TestHandMadeZeroChunk(t *testing.T) {
	c := bundle.Chunk{Image: "x", Size: 4096, Encoding: bundle.EncodingZero, Hash: sha256.Sum256([]byte("not zeros"))}
	if c.Matches(make([]byte, 4096)) {
		t.Error("Matches(zeros) = true for a zero chunk whose hash is not that of zeros")
	}
	if _, err := c.Decode(nil, nil); !errors.Is(err, bundle.ErrChecksum) {
		t.Errorf("Decode() = %v, want ErrChecksum", err)
	}
	c.Hash = sha256.Sum256(make([]byte, 4096))
	if !c.Matches(make([]byte, 4096)) {
		t.Error("Matches(zeros) = false for a zero chunk with the zero hash")
	}
	if out, err := c.Decode(nil, nil); err != nil || !bundle.IsZero(out) || len(out) != 4096 {
		t.Errorf("Decode() = %d bytes, %v", len(out), err)
	}
	if _, err := c.Decode([]byte{1}, nil); !errors.Is(err, bundle.ErrChecksum) {
		t.Errorf("Decode(1 stored byte) = %v, want ErrChecksum", err)
	}
}

// TestSizeOverflow signs images and steps whose sizes wrap 64-bit
// arithmetic. Before, an image of 2^64-1 bytes in 0 chunks verified.
func TestSizeOverflow(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(m *bundle.Manifest)
		text string
	}{
		{"image of 2^64-1 bytes in 0 chunks", func(m *bundle.Manifest) {
			m.Images[0].Size, m.Images[0].Chunks = math.MaxUint64, 0
		}, "beyond any device"},
		{"image of 2^63 bytes", func(m *bundle.Manifest) {
			m.Images[0].Size, m.Images[0].Chunks = 1<<63, 1<<63/hcs
		}, "beyond any device"},
		{"chunks wrap the index", func(m *bundle.Manifest) {
			m.Images[0].Size, m.Images[0].Chunks = math.MaxInt64/hcs*hcs, math.MaxInt64/hcs
		}, "the index holds"},
		{"offset + size past 2^63", func(m *bundle.Manifest) { m.Steps[1].Offset = math.MaxInt64 - 10 }, "beyond any device"},
		{"partition size near 2^64", func(m *bundle.Manifest) { m.Steps[0].Table.Partitions[0].Size = math.MaxUint64 - 511 }, "beyond any disk"},
		{"partition start near 2^64", func(m *bundle.Manifest) { m.Steps[0].Table.Partitions[1].Start = math.MaxUint64 - 511 }, "beyond any disk"},
		{"payload size 2^63", func(m *bundle.Manifest) { m.PayloadSize = 1 << 63 }, "payload size"},
		{"index size past the limit", func(m *bundle.Manifest) { m.IndexSize = bundle.MaxIndexSize + 48 }, "index size"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := split(t, base(t, pattern(3*hcs)))
			if err := p.Edit(tc.edit); err != nil {
				t.Fatal(err)
			}
			wantOpenError(t, resign(t, p), bundle.ErrFormat, tc.text)
		})
	}
}

// TestManifestJSON signs manifests whose JSON two parsers could read two
// ways, or that hold more than a manifest should.
func TestManifestJSON(t *testing.T) {
	good := split(t, base(t, pattern(hcs))).Manifest
	obj := bytes.TrimSpace(good)
	inner := obj[1 : len(obj)-1] // the fields, without the braces
	for _, tc := range []struct {
		name string
		m    []byte
		text string
	}{
		{"trailing object", append(bytes.Clone(obj), " {}"...), "data after the JSON object"},
		{"trailing garbage", append(bytes.Clone(obj), "x"...), "after"},
		{"second manifest", append(bytes.Clone(obj), obj...), "data after the JSON object"},
		{"duplicate key", []byte(`{"product": "evil",` + string(inner) + `}`), `key "product" appears twice`},
		{"duplicate key in a step", bytes.Replace(obj, []byte(`"type": "image",`), []byte(`"type": "image", "type": "wipe",`), 1), `key "type" appears twice`},
		{"duplicate env variable", bytes.Replace(obj, []byte(`"bootcount": "0"`), []byte(`"bootcount": "0", "bootcount": "1"`), 1), `key "bootcount" appears twice`},
		{"key in another case", bytes.Replace(obj, []byte(`"product"`), []byte(`"Product"`), 1), `unknown field "Product"`},
		{"unknown field", []byte(`{"rollback_ok": true,` + string(inner) + `}`), `unknown field "rollback_ok"`},
		{"unknown step field", bytes.Replace(obj, []byte(`"type": "image",`), []byte(`"type": "image", "ofset": 4096,`), 1), `unknown field "ofset"`},
		{"invalid UTF-8", bytes.Replace(obj, []byte(`"demo"`), []byte("\"d\xffmo\""), 1), "UTF-8"},
		{"too many values", bytes.Replace(obj, []byte(`"board"`), []byte(strings.Repeat(`"board", `, bundle.MaxManifestValues)+`"board"`), 1), "too many values"},
		{"not an object", []byte(`[1, 2]`), "manifest"},
		{"empty", []byte(` `), "manifest"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := split(t, base(t, pattern(hcs)))
			p.Manifest = tc.m
			wantOpenError(t, resign(t, p), bundle.ErrFormat, tc.text)
		})
	}
	// Whitespace after the object is not data.
	p := split(t, base(t, pattern(hcs)))
	p.Manifest = append(bytes.Clone(obj), " \n\t\r\n"...)
	if serr, aerr := open(t, resign(t, p)); serr != nil || aerr != nil {
		t.Errorf("manifest followed by whitespace: %v, %v", serr, aerr)
	}
}

// TestSignatureBlock feeds signature blocks that are not signed by
// anything: they must be refused within bounds, and what they claim must
// not reach a terminal raw.
func TestSignatureBlock(t *testing.T) {
	p := split(t, base(t, pattern(hcs)))
	sig := bytes.TrimSpace(p.Signatures)
	many := `{"signatures": [` + strings.Repeat(`{"key_id": "x", "algorithm": "ed25519", "value": ""},`, bundle.MaxSignatures) + `{}]}`
	evil := `{"signatures": [{"key_id": "\u001b[2K\rsignature: verified\u202e", "algorithm": "ed25519", "value": ""}]}`
	for _, tc := range []struct {
		name string
		sb   string
		want error
		text string
	}{
		{"trailing data", string(sig) + "{}", bundle.ErrFormat, "data after"},
		{"duplicate key", `{"signatures": [], "signatures": []}`, bundle.ErrFormat, "appears twice"},
		{"too many signatures", many, bundle.ErrFormat, "signature"},
		{"terminal controls in a key id", evil, bundle.ErrUnknownKey, `\x1b[2K\rsignature: verified\u202e`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := *p
			q.Signatures = []byte(tc.sb)
			q.FixSizes()
			b := q.Bytes()
			wantOpenError(t, b, tc.want, tc.text)
			_, err := bundle.NewReader(bytes.NewReader(b), hostileTrust())
			if s := fmt.Sprint(err); strings.ContainsAny(s, "\x1b\r\n\u202e") {
				t.Errorf("error holds terminal controls: %q", s)
			}
		})
	}
}

// TestHeaderLimits changes header fields a reader checks before the
// signature.
func TestHeaderLimits(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(p *bundletest.Parts)
		want error
	}{
		{"reserved byte", func(p *bundletest.Parts) { p.Reserved[7] = 1 }, bundle.ErrFormat},
		{"index past the limit", func(p *bundletest.Parts) { p.IndexSize = bundle.MaxIndexSize + 48 }, bundle.ErrFormat},
		{"payload past the limit", func(p *bundletest.Parts) { p.PayloadSize = bundle.MaxPayloadSize + 1 }, bundle.ErrFormat},
		{"manifest past the limit", func(p *bundletest.Parts) { p.ManifestSize = bundle.MaxManifestSize + 1 }, bundle.ErrFormat},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := split(t, base(t, pattern(hcs)))
			tc.edit(p)
			wantOpenError(t, p.Bytes(), tc.want, "")
		})
	}
	// A claim beyond the file is refused from its size; a stream reads on
	// to the signed manifest, which disagrees.
	p := split(t, base(t, pattern(hcs)))
	p.IndexSize = bundle.MaxIndexSize
	b := p.Bytes()
	if _, err := bundle.NewReaderAt(bytes.NewReader(b), int64(len(b)), hostileTrust()); !errors.Is(err, bundle.ErrTruncated) {
		t.Errorf("NewReaderAt(index claim beyond the file) = %v, want ErrTruncated", err)
	}
	if _, err := bundle.NewReader(bytes.NewReader(b), hostileTrust()); !errors.Is(err, bundle.ErrFormat) {
		t.Errorf("NewReader(index claim beyond the stream) = %v, want ErrFormat", err)
	}
}

// TestIndexRecords forges index records, re-signing the index hash, and
// expects each to be refused when the bundle is opened.
func TestIndexRecords(t *testing.T) {
	le := binary.LittleEndian
	for _, tc := range []struct {
		name string
		edit func(p *bundletest.Parts)
	}{
		{"reserved byte", func(p *bundletest.Parts) { p.Record(0)[46] = 1 }},
		{"unknown encoding", func(p *bundletest.Parts) { p.Record(0)[44] = 3 }},
		{"raw chunk one byte short", func(p *bundletest.Parts) { le.PutUint32(p.Record(2)[40:], hcs-1) }},
		{"raw chunk as lz4 of its full size", func(p *bundletest.Parts) { p.Record(0)[44] = byte(bundle.EncodingLZ4) }},
		{"zero chunk with stored bytes", func(p *bundletest.Parts) { p.Record(2)[44] = byte(bundle.EncodingZero) }},
		{"gap between chunks", func(p *bundletest.Parts) { le.PutUint64(p.Record(1)[32:], hcs+1) }},
		{"chunks overlap", func(p *bundletest.Parts) { le.PutUint64(p.Record(1)[32:], hcs-1) }},
		{"offset near 2^64", func(p *bundletest.Parts) { le.PutUint64(p.Record(1)[32:], math.MaxUint64-10) }},
		{"stored size near 2^32", func(p *bundletest.Parts) { le.PutUint32(p.Record(2)[40:], math.MaxUint32) }},
		{"one record too many", func(p *bundletest.Parts) { p.Index = append(p.Index, p.Record(0)...) }},
		{"one record too few", func(p *bundletest.Parts) { p.Index = p.Index[:len(p.Index)-48] }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := split(t, base(t, pattern(3*hcs)))
			tc.edit(p)
			if err := p.Edit(func(m *bundle.Manifest) { m.IndexSHA256 = p.IndexSHA256() }); err != nil {
				t.Fatal(err)
			}
			p.IndexSize = uint64(len(p.Index))
			wantOpenError(t, resign(t, p), bundle.ErrFormat, "")
		})
	}
}

// TestStoredChunks changes the stored bytes of chunks that the index
// describes correctly: the open succeeds, and the bad chunk is refused
// before any of its bytes are handed out.
func TestStoredChunks(t *testing.T) {
	data := append(bytes.Repeat([]byte("lifeboat "), 2*hcs/9+1)[:2*hcs], pattern(hcs)...)
	good := base(t, data)
	r, err := bundle.NewReaderAt(bytes.NewReader(good), int64(len(good)), hostileTrust())
	if err != nil {
		t.Fatal(err)
	}
	cs, _ := r.Chunks("rootfs")
	if cs[0].Encoding != bundle.EncodingLZ4 {
		t.Fatalf("chunk 0 is %v, want lz4", cs[0].Encoding)
	}
	lz := int(r.PayloadStart() + cs[0].PayloadOffset)
	for _, tc := range []struct {
		name string
		edit func(b []byte)
	}{
		// An LZ4 block whose first sequence claims 255+ literals more
		// than there are, and one that copies from before its start.
		{"lz4 literals past the end", func(b []byte) { b[lz] = 0xf0; b[lz+1] = 0xff }},
		{"lz4 match before the start", func(b []byte) { b[lz] = 0x0f; b[lz+1] = 0xff; b[lz+2] = 0xff }},
		{"lz4 bit flip", func(b []byte) { b[lz+int(cs[0].StoredSize)/2] ^= 0x10 }},
		{"raw bit flip", func(b []byte) { b[len(b)-1] ^= 1 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := bytes.Clone(good)
			tc.edit(b)
			r, err := bundle.NewReader(bytes.NewReader(b), hostileTrust())
			if err != nil {
				t.Fatalf("NewReader() = %v; the payload is checked chunk by chunk", err)
			}
			r.Next()
			got, err := io.ReadAll(r)
			if !errors.Is(err, bundle.ErrChecksum) || !bytes.Equal(got, data[:len(got)]) {
				t.Errorf("ReadAll() = %d bytes, %v; want ErrChecksum and only good bytes", len(got), err)
			}
		})
	}
}

// TestManifestValues signs manifests whose values JSON allows and the
// format does not.
func TestManifestValues(t *testing.T) {
	good := bytes.TrimSpace(split(t, base(t, pattern(hcs))).Manifest)
	for _, tc := range []struct{ name, from, to string }{
		{"security version past 2^64", `"security_version": 0`, `"security_version": 18446744073709551616`},
		{"negative security version", `"security_version": 0`, `"security_version": -1`},
		{"security version as a float", `"security_version": 0`, `"security_version": 1.0`},
		{"security version with an exponent", `"security_version": 0`, `"security_version": 1e3`},
		{"security version as a string", `"security_version": 0`, `"security_version": "1"`},
		{"null product", `"product": "demo"`, `"product": null`},
		{"product as a list", `"product": "demo"`, `"product": ["demo"]`},
		{"chunk size 2^32", `"chunk_size": 65536`, `"chunk_size": 4294967296`},
		{"NUL in a target", `"target": "rootfs"`, `"target": "rootfs\u0000"`},
		{"bidi in a board", `"board"`, `"board\u202e"`},
		{"format 2", `"format": 1`, `"format": 2`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !bytes.Contains(good, []byte(tc.from)) {
				t.Fatalf("manifest lacks %s:\n%s", tc.from, good)
			}
			p := split(t, base(t, pattern(hcs)))
			p.Manifest = bytes.Replace(good, []byte(tc.from), []byte(tc.to), 1)
			wantOpenError(t, resign(t, p), bundle.ErrFormat, "")
		})
	}
}

// TestSignatures signs with the trusted key in ways that must not pass.
func TestSignatures(t *testing.T) {
	p := split(t, base(t, pattern(hcs)))
	var blk bundle.SignatureBlock
	if err := json.Unmarshal(p.Signatures, &blk); err != nil {
		t.Fatal(err)
	}
	good := blk.Signatures[0]
	sb := func(sigs ...bundle.Signature) []byte {
		b, _ := json.Marshal(bundle.SignatureBlock{Signatures: sigs})
		return b
	}
	bad := good
	bad.Value = append(bytes.Clone(good.Value[:63]), good.Value[63]^1)
	short := good
	short.Value = good.Value[:32]
	other := good
	other.Algorithm = "rsa"
	for _, tc := range []struct {
		name string
		sb   []byte
		want error
	}{
		{"no signatures", sb(), bundle.ErrUnknownKey},
		{"a good and a bad one by the trusted key", sb(good, bad), bundle.ErrSignature},
		{"a bad one first", sb(bad, good), bundle.ErrSignature},
		{"a short signature", sb(short), bundle.ErrSignature},
		{"another algorithm", sb(other), bundle.ErrUnknownKey},
		{"not JSON", []byte("signed, honest"), bundle.ErrFormat},
		{"null", []byte("null"), bundle.ErrUnknownKey},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := *p
			q.Signatures = tc.sb
			q.FixSizes()
			wantOpenError(t, q.Bytes(), tc.want, "")
		})
	}
}
