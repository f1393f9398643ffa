// Package bundletest takes bundles apart and puts them back together
// without the checks of bundle.Writer, so that tests and fuzzers can make
// the bundles a buggy or compromised build pipeline would: a header that
// lies about its sizes, a manifest or index that a trusted key re-signed
// after changing it.
//
// The header is written here from docs/bundle-format.md, not with the
// bundle package's own code, so that a reader and a writer that drift from
// the documented layout together are caught.
package bundletest

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"

	"github.com/lifeboat-updater/lifeboat/bundle"
)

// headerSize and the signed-message prefix, as docs/bundle-format.md gives
// them.
const (
	headerSize   = 64
	signedPrefix = "lifeboat bundle manifest v1\n"
	recordSize   = 48
)

// Parts is a bundle taken apart. Bytes writes the header fields as they
// are, so a test can make them disagree with the sections.
type Parts struct {
	Version       uint16
	HeaderSize    uint16
	Flags         uint32
	ManifestSize  uint32
	SignatureSize uint32
	IndexSize     uint64
	PayloadSize   uint64
	Reserved      [20]byte

	Manifest   []byte
	Signatures []byte
	Index      []byte
	Payload    []byte
}

// Split takes a well-formed bundle apart.
func Split(b []byte) (*Parts, error) {
	if len(b) < headerSize || string(b[:8]) != bundle.Magic {
		return nil, fmt.Errorf("bundletest: not a bundle")
	}
	le := binary.LittleEndian
	p := &Parts{
		Version:       le.Uint16(b[8:]),
		HeaderSize:    le.Uint16(b[10:]),
		Flags:         le.Uint32(b[12:]),
		ManifestSize:  le.Uint32(b[16:]),
		SignatureSize: le.Uint32(b[20:]),
		IndexSize:     le.Uint64(b[24:]),
		PayloadSize:   le.Uint64(b[32:]),
	}
	copy(p.Reserved[:], b[40:60])
	off := uint64(headerSize)
	for _, s := range []struct {
		dst *[]byte
		n   uint64
	}{{&p.Manifest, uint64(p.ManifestSize)}, {&p.Signatures, uint64(p.SignatureSize)}, {&p.Index, p.IndexSize}, {&p.Payload, p.PayloadSize}} {
		if off+s.n > uint64(len(b)) {
			return nil, fmt.Errorf("bundletest: bundle of %d bytes ends before its sections", len(b))
		}
		*s.dst = bytes.Clone(b[off : off+s.n])
		off += s.n
	}
	return p, nil
}

// Header returns the 64-byte header of p's fields, with a correct CRC.
func (p *Parts) Header() []byte {
	b := make([]byte, headerSize)
	le := binary.LittleEndian
	copy(b, bundle.Magic)
	le.PutUint16(b[8:], p.Version)
	le.PutUint16(b[10:], p.HeaderSize)
	le.PutUint32(b[12:], p.Flags)
	le.PutUint32(b[16:], p.ManifestSize)
	le.PutUint32(b[20:], p.SignatureSize)
	le.PutUint64(b[24:], p.IndexSize)
	le.PutUint64(b[32:], p.PayloadSize)
	copy(b[40:60], p.Reserved[:])
	le.PutUint32(b[60:], crc32.ChecksumIEEE(b[:60]))
	return b
}

// Bytes returns the header followed by the sections.
func (p *Parts) Bytes() []byte {
	var b bytes.Buffer
	b.Write(p.Header())
	b.Write(p.Manifest)
	b.Write(p.Signatures)
	b.Write(p.Index)
	b.Write(p.Payload)
	return b.Bytes()
}

// FixSizes sets the header's sizes to the sections' lengths.
func (p *Parts) FixSizes() {
	p.ManifestSize = uint32(len(p.Manifest))
	p.SignatureSize = uint32(len(p.Signatures))
	p.IndexSize = uint64(len(p.Index))
	p.PayloadSize = uint64(len(p.Payload))
}

// Sign replaces the signature block with signatures by signers over the
// manifest bytes as they are, and fixes the header's manifest and
// signature sizes.
func (p *Parts) Sign(signers ...bundle.Signer) error {
	var blk bundle.SignatureBlock
	msg := append([]byte(signedPrefix), p.Manifest...)
	for _, s := range signers {
		v, err := s.Sign(msg)
		if err != nil {
			return err
		}
		blk.Signatures = append(blk.Signatures, bundle.Signature{KeyID: s.KeyID(), Algorithm: s.Algorithm(), Value: v})
	}
	sb, err := json.Marshal(blk)
	if err != nil {
		return err
	}
	p.Signatures = sb
	p.ManifestSize, p.SignatureSize = uint32(len(p.Manifest)), uint32(len(sb))
	return nil
}

// Edit decodes the manifest into a bundle.Manifest, lets f change it and
// encodes it back. Fields the Manifest type does not have are lost.
func (p *Parts) Edit(f func(m *bundle.Manifest)) error {
	var m bundle.Manifest
	if err := json.Unmarshal(p.Manifest, &m); err != nil {
		return err
	}
	f(&m)
	b, err := json.MarshalIndent(&m, "", "  ")
	if err != nil {
		return err
	}
	p.Manifest = b
	return nil
}

// Record returns index record i, a slice of p.Index to change in place.
func (p *Parts) Record(i int) []byte { return p.Index[i*recordSize : (i+1)*recordSize] }

// Records is the number of index records.
func (p *Parts) Records() int { return len(p.Index) / recordSize }

// IndexSHA256 is the hex SHA-256 of the index as it is, for the manifest's
// index_sha256.
func (p *Parts) IndexSHA256() string {
	return fmt.Sprintf("%x", sha256.Sum256(p.Index))
}

// MakeZero marks chunk record i as a zero chunk, as a broken or hostile
// build pipeline could: its stored bytes leave the payload, the records
// after it move up, and its hash stays what it was. The manifest's
// index_sha256 and payload_size and the header's sizes follow; the
// manifest is not re-signed (call Sign).
func (p *Parts) MakeZero(i int) error {
	le := binary.LittleEndian
	rec := p.Record(i)
	if rec[44] == 0 {
		return nil
	}
	off, n := le.Uint64(rec[32:]), uint64(le.Uint32(rec[40:]))
	rec[44] = 0
	le.PutUint64(rec[32:], 0)
	le.PutUint32(rec[40:], 0)
	for j := i + 1; j < p.Records(); j++ {
		r := p.Record(j)
		if r[44] != 0 {
			le.PutUint64(r[32:], le.Uint64(r[32:])-n)
		}
	}
	p.Payload = append(p.Payload[:off:off], p.Payload[off+n:]...)
	p.FixSizes()
	return p.Edit(func(m *bundle.Manifest) {
		m.IndexSHA256 = p.IndexSHA256()
		m.PayloadSize = uint64(len(p.Payload))
	})
}

// ClaimIndex makes a bundle of one image claim an index of n bytes (a
// multiple of 48), in its manifest and header, without the index or a
// payload behind the claim: the image becomes n/48 chunks long. The
// manifest is not re-signed (call Sign, then Bytes).
func (p *Parts) ClaimIndex(n uint64) error {
	err := p.Edit(func(m *bundle.Manifest) {
		chunks := n / recordSize
		m.IndexSize, m.PayloadSize = n, 0
		m.Images[0].Size = chunks * uint64(m.ChunkSize)
		m.Images[0].Chunks = chunks
	})
	p.Index, p.Payload = nil, nil
	p.FixSizes()
	p.IndexSize = n
	return err
}
