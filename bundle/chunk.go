package bundle

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/pierrec/lz4/v4"
)

// IndexEntrySize is the size of one chunk record in the index.
const IndexEntrySize = 48

// Encoding says how a chunk is stored in the payload.
type Encoding uint8

// The chunk encodings.
const (
	EncodingZero Encoding = 0 // all zero bytes; nothing stored
	EncodingRaw  Encoding = 1 // stored as is
	EncodingLZ4  Encoding = 2 // one LZ4 block (no frame)
)

func (e Encoding) String() string {
	switch e {
	case EncodingZero:
		return "zero"
	case EncodingRaw:
		return "raw"
	case EncodingLZ4:
		return "lz4"
	}
	return fmt.Sprintf("encoding(%d)", uint8(e))
}

// Chunk describes one chunk of an image: where its bytes go in the image,
// where its stored form is in the payload, and the SHA-256 of its
// uncompressed bytes.
type Chunk struct {
	Image         string   // image name
	Index         int      // chunk number within the image
	Offset        uint64   // offset of the chunk in the uncompressed image
	Size          uint32   // uncompressed size
	Hash          [32]byte // SHA-256 of the uncompressed bytes
	Encoding      Encoding //
	PayloadOffset uint64   // offset of the stored bytes from the payload start
	StoredSize    uint32   // stored bytes in the payload (0 for zero chunks)

	// zeroHash is set by the Reader on zero chunks whose Hash it has
	// checked to be the SHA-256 of Size zero bytes, so that Matches and
	// Decode may compare bytes with zero instead of hashing them.
	zeroHash bool
}

// index record layout, little-endian:
//
//	0  [32]byte SHA-256 of the uncompressed chunk
//	32 uint64   payload offset
//	40 uint32   stored size
//	44 uint8    encoding
//	45 [3]byte  reserved, zero
func (c *Chunk) marshal(b []byte) {
	copy(b[0:32], c.Hash[:])
	binary.LittleEndian.PutUint64(b[32:], c.PayloadOffset)
	binary.LittleEndian.PutUint32(b[40:], c.StoredSize)
	b[44] = byte(c.Encoding)
	b[45], b[46], b[47] = 0, 0, 0
}

func (c *Chunk) unmarshal(b []byte) error {
	copy(c.Hash[:], b[0:32])
	c.PayloadOffset = binary.LittleEndian.Uint64(b[32:])
	c.StoredSize = binary.LittleEndian.Uint32(b[40:])
	c.Encoding = Encoding(b[44])
	if b[45]|b[46]|b[47] != 0 {
		return fmt.Errorf("%w: reserved index bytes set", ErrFormat)
	}
	switch c.Encoding {
	case EncodingZero:
		if c.StoredSize != 0 {
			return fmt.Errorf("%w: zero chunk with %d stored bytes", ErrFormat, c.StoredSize)
		}
	case EncodingRaw, EncodingLZ4:
	default:
		return fmt.Errorf("%w: unknown chunk encoding %d", ErrFormat, c.Encoding)
	}
	return nil
}

// Zero reports whether the chunk is all zero bytes.
func (c *Chunk) Zero() bool { return c.Encoding == EncodingZero }

func (c *Chunk) String() string {
	return fmt.Sprintf("image %q chunk %d (offset %d, %d bytes)", c.Image, c.Index, c.Offset, c.Size)
}

// Decode turns the chunk's stored bytes into its uncompressed bytes, written
// to dst (which must hold c.Size bytes; it is allocated if too small), and
// checks them against the chunk's hash. It returns an error wrapping
// ErrChecksum if they do not match, so no caller can use unverified bytes by
// mistake. Decode is safe to call from several goroutines at once.
func (c *Chunk) Decode(stored, dst []byte) ([]byte, error) {
	if cap(dst) < int(c.Size) {
		dst = make([]byte, c.Size)
	}
	dst = dst[:c.Size]
	switch c.Encoding {
	case EncodingZero:
		if len(stored) != 0 {
			return nil, fmt.Errorf("%w: %v: %d stored bytes for a zero chunk", ErrChecksum, c, len(stored))
		}
		clear(dst)
		if c.zeroHash {
			return dst, nil
		}
	case EncodingRaw:
		if len(stored) != int(c.Size) {
			return nil, fmt.Errorf("%w: %v: %d stored bytes for a raw chunk", ErrChecksum, c, len(stored))
		}
		// A caller may read a raw chunk straight into dst (the
		// pipeline does, saving a copy of every incompressible byte).
		if len(dst) > 0 && &dst[0] != &stored[0] {
			copy(dst, stored)
		}
	case EncodingLZ4:
		// lz4's assembly decoder dereferences an empty dst (found by
		// FuzzDecode), so an empty chunk never reaches it.
		if len(dst) == 0 || len(stored) == 0 {
			return nil, fmt.Errorf("%w: %v: empty lz4 chunk", ErrChecksum, c)
		}
		n, err := lz4.UncompressBlock(stored, dst)
		if err != nil || n != int(c.Size) {
			return nil, fmt.Errorf("%w: %v: does not decompress", ErrChecksum, c)
		}
	default:
		return nil, fmt.Errorf("%w: %v: encoding %v", ErrFormat, c, c.Encoding)
	}
	if sha256.Sum256(dst) != c.Hash {
		return nil, fmt.Errorf("%w: %v", ErrChecksum, c)
	}
	return dst, nil
}

// Matches reports whether data holds exactly the chunk's uncompressed bytes.
// It is how skip-unchanged and verification compare a target with a bundle.
// A zero chunk from a Reader is compared with zero bytes, which is faster
// than hashing and the same, since the Reader has checked its hash; any
// other chunk is compared by its hash, whatever its encoding says.
func (c *Chunk) Matches(data []byte) bool {
	if len(data) != int(c.Size) {
		return false
	}
	if c.Encoding == EncodingZero && c.zeroHash {
		return isZero(data)
	}
	return sha256.Sum256(data) == c.Hash
}

// zeroHashes returns the SHA-256 of n zero bytes for each n in sizes,
// hashing the zeros once, up to the largest size: Sum does not change the
// running hash, so each size's hash is taken on the way.
func zeroHashes(sizes map[uint32]bool) map[uint32][32]byte {
	ns := make([]uint32, 0, len(sizes))
	for n := range sizes {
		ns = append(ns, n)
	}
	slices.Sort(ns)
	out := make(map[uint32][32]byte, len(ns))
	h := sha256.New()
	var done uint32
	for _, n := range ns {
		for done < n {
			k := min(n-done, uint32(len(zeroPage)))
			h.Write(zeroPage[:k])
			done += k
		}
		var sum [32]byte
		h.Sum(sum[:0])
		out[n] = sum
	}
	return out
}

var zeroPage [64 << 10]byte

func isZero(b []byte) bool {
	for len(b) > 0 {
		n := min(len(b), len(zeroPage))
		if !bytes.Equal(b[:n], zeroPage[:n]) {
			return false
		}
		b = b[n:]
	}
	return true
}

// IsZero reports whether every byte of b is zero.
func IsZero(b []byte) bool { return isZero(b) }

// encodeChunk hashes data and chooses its stored form: nothing for zeros,
// LZ4 when that is smaller, raw otherwise. scratch is reused when big enough.
func encodeChunk(c *lz4.Compressor, data, scratch []byte) (hash [32]byte, enc Encoding, stored []byte) {
	hash = sha256.Sum256(data)
	if isZero(data) {
		return hash, EncodingZero, nil
	}
	bound := lz4Bound(len(data))
	if cap(scratch) < bound {
		scratch = make([]byte, bound)
	}
	scratch = scratch[:bound]
	n, err := c.CompressBlock(data, scratch)
	if err != nil || n == 0 || n >= len(data) {
		return hash, EncodingRaw, data
	}
	return hash, EncodingLZ4, scratch[:n]
}

type lzCompressor = lz4.Compressor

func lz4Bound(n int) int { return lz4.CompressBlockBound(n) }
