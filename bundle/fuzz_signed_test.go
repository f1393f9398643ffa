package bundle_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"testing"

	"github.com/lifeboat-updater/lifeboat/bundle"
	"github.com/lifeboat-updater/lifeboat/bundle/bundletest"
)

// FuzzSignedBundle gets past the signature: it signs whatever manifest,
// index and payload it is given with the trusted key, as a compromised
// build pipeline would, after making the manifest's index hash and sizes
// agree with them (nothing else could get a random index past the hash).
// Whatever the reader then hands out must be what the signed hashes say:
// every image read to its end has its size, every chunk decoded matches
// its hash, and a zero chunk is zeros with the hash of zeros.
func FuzzSignedBundle(f *testing.F) {
	for _, b := range [][]byte{base(f, pattern(3*hcs)), base(f, append(pattern(hcs), make([]byte, 2*hcs+5)...))} {
		p, err := bundletest.Split(b)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(p.Manifest, p.Index, p.Payload)
	}
	f.Fuzz(func(t *testing.T, mb, idx, payload []byte) {
		var m bundle.Manifest
		if json.Unmarshal(mb, &m) == nil {
			sum := sha256.Sum256(idx)
			m.IndexSHA256 = hex.EncodeToString(sum[:])
			m.IndexSize, m.PayloadSize = uint64(len(idx)), uint64(len(payload))
			mb, _ = json.Marshal(&m)
		}
		p := &bundletest.Parts{Version: bundle.FormatVersion, HeaderSize: bundle.HeaderSize, Manifest: mb, Index: idx, Payload: payload}
		if err := p.Sign(hostileKey()); err != nil {
			t.Fatal(err)
		}
		p.FixSizes()
		b := p.Bytes()

		r, err := bundle.NewReader(bytes.NewReader(b), hostileTrust())
		if err != nil {
			return
		}
		for {
			im, err := r.Next()
			if err != nil {
				break
			}
			got, err := io.ReadAll(r)
			if err != nil {
				break
			}
			if uint64(len(got)) != im.Size {
				t.Fatalf("image %q read whole: %d bytes, want %d", im.Name, len(got), im.Size)
			}
		}

		ra, err := bundle.NewReaderAt(bytes.NewReader(b), int64(len(b)), hostileTrust())
		if err != nil {
			t.Fatalf("NewReader took the bundle, NewReaderAt = %v", err)
		}
		for _, im := range ra.Manifest().Images {
			cs, _ := ra.Chunks(im.Name)
			for i := range cs {
				c := &cs[i]
				if c.Zero() && c.Hash != sha256.Sum256(make([]byte, c.Size)) {
					t.Fatalf("%v: a zero chunk whose hash is not that of zeros", c)
				}
				st, err := ra.ReadStored(c, nil)
				if err != nil {
					t.Fatalf("ReadStored(%v) = %v", c, err)
				}
				out, err := c.Decode(st, nil)
				if err != nil {
					continue
				}
				if sha256.Sum256(out) != c.Hash {
					t.Fatalf("%v decoded to bytes that are not its hash's", c)
				}
				if c.Zero() && !bundle.IsZero(out) {
					t.Fatalf("%v is zero but decoded to other bytes", c)
				}
				if c.Zero() && !c.Matches(make([]byte, c.Size)) {
					t.Fatalf("%v is zero but does not match zeros", c)
				}
			}
		}
	})
}
