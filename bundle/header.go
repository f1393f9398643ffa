package bundle

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

// Magic starts every bundle.
const Magic = "LIFEBOAT"

// HeaderSize is the size of the fixed header at the start of a bundle.
const HeaderSize = 64

// Limits on the variable-size sections, so that a corrupt or hostile
// bundle cannot make a reader allocate without bound: the manifest and
// signature block are read before anything is verified, and even a
// manifest a trusted key signed may come from a broken build pipeline.
// What a reader holds is bounded by these, whatever the input, and it
// allocates no more than the bytes that have actually arrived.
const (
	MaxManifestSize  = 16 << 20
	MaxSignatureSize = 1 << 20

	// MaxManifestValues bounds the JSON values (objects, arrays, strings,
	// numbers...) of a manifest, and so the memory its decoding takes.
	// A real manifest holds a few hundred.
	MaxManifestValues = 1 << 16

	// MaxSignatures bounds the signatures of a signature block.
	MaxSignatures = 16

	// MaxChunks bounds the chunks of a bundle, and so what a reader holds
	// of the index: a chunk list of 20 MiB at most (80 bytes a chunk),
	// read from 12 MiB of index. That is 256 GiB of images at the default
	// chunk size, 16 TiB at the largest; a small rescue system keeps most
	// of its memory for the install.
	MaxChunks = 1 << 18

	// MaxIndexSize is the largest chunk index.
	MaxIndexSize = MaxChunks * IndexEntrySize

	// MaxPayloadSize is the largest payload.
	MaxPayloadSize = 1 << 62
)

// header is the fixed 64-byte start of a bundle. All integers are
// little-endian. The header is not signed: every length in it is repeated in
// the signed manifest and checked against it, and the CRC only serves to
// report a damaged header as such.
//
//	0  [8]byte magic "LIFEBOAT"
//	8  uint16  format version (1)
//	10 uint16  header size (64)
//	12 uint32  flags (0)
//	16 uint32  manifest size
//	20 uint32  signature block size
//	24 uint64  index size
//	32 uint64  payload size
//	40 [20]byte reserved, zero
//	60 uint32  CRC-32 (IEEE) of bytes 0..59
type header struct {
	ManifestSize  uint32
	SignatureSize uint32
	IndexSize     uint64
	PayloadSize   uint64
}

func (h *header) marshal() []byte {
	b := make([]byte, HeaderSize)
	copy(b, Magic)
	binary.LittleEndian.PutUint16(b[8:], FormatVersion)
	binary.LittleEndian.PutUint16(b[10:], HeaderSize)
	binary.LittleEndian.PutUint32(b[16:], h.ManifestSize)
	binary.LittleEndian.PutUint32(b[20:], h.SignatureSize)
	binary.LittleEndian.PutUint64(b[24:], h.IndexSize)
	binary.LittleEndian.PutUint64(b[32:], h.PayloadSize)
	binary.LittleEndian.PutUint32(b[60:], crc32.ChecksumIEEE(b[:60]))
	return b
}

func parseHeader(b []byte) (*header, error) {
	if len(b) < HeaderSize {
		return nil, fmt.Errorf("%w: header is %d bytes", ErrTruncated, len(b))
	}
	if string(b[:8]) != Magic {
		return nil, fmt.Errorf("%w: not a Lifeboat bundle (bad magic %q)", ErrFormat, b[:8])
	}
	if v := binary.LittleEndian.Uint16(b[8:]); v != FormatVersion {
		return nil, fmt.Errorf("%w: bundle format version %d, this build reads %d", ErrFormat, v, FormatVersion)
	}
	if got, want := binary.LittleEndian.Uint32(b[60:]), crc32.ChecksumIEEE(b[:60]); got != want {
		return nil, fmt.Errorf("%w: header CRC %08x, want %08x (damaged header)", ErrFormat, got, want)
	}
	if s := binary.LittleEndian.Uint16(b[10:]); s != HeaderSize {
		return nil, fmt.Errorf("%w: header size %d", ErrFormat, s)
	}
	if f := binary.LittleEndian.Uint32(b[12:]); f != 0 {
		return nil, fmt.Errorf("%w: unknown header flags %#x", ErrFormat, f)
	}
	if !isZero(b[40:60]) {
		return nil, fmt.Errorf("%w: reserved header bytes are not zero", ErrFormat)
	}
	h := &header{
		ManifestSize:  binary.LittleEndian.Uint32(b[16:]),
		SignatureSize: binary.LittleEndian.Uint32(b[20:]),
		IndexSize:     binary.LittleEndian.Uint64(b[24:]),
		PayloadSize:   binary.LittleEndian.Uint64(b[32:]),
	}
	switch {
	case h.ManifestSize == 0 || h.ManifestSize > MaxManifestSize:
		return nil, fmt.Errorf("%w: manifest size %d out of range", ErrFormat, h.ManifestSize)
	case h.SignatureSize == 0 || h.SignatureSize > MaxSignatureSize:
		return nil, fmt.Errorf("%w: signature block size %d out of range", ErrFormat, h.SignatureSize)
	case h.IndexSize%IndexEntrySize != 0 || h.IndexSize > MaxIndexSize:
		return nil, fmt.Errorf("%w: index size %d: want a multiple of %d, at most %d", ErrFormat, h.IndexSize, IndexEntrySize, MaxIndexSize)
	case h.PayloadSize > MaxPayloadSize:
		return nil, fmt.Errorf("%w: payload size %d, at most %d", ErrFormat, h.PayloadSize, uint64(MaxPayloadSize))
	}
	return h, nil
}

// payloadOffset is where the payload starts in the bundle file.
func (h *header) payloadOffset() uint64 {
	return HeaderSize + uint64(h.ManifestSize) + uint64(h.SignatureSize) + h.IndexSize
}
