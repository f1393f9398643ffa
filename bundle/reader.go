package bundle

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// Reader reads a bundle. NewReader and NewReaderAt check the signature, the
// manifest and the chunk index before they return, so every method of a
// Reader works from data a trusted key signed.
//
// A Reader offers two levels. Next and Read walk the images in payload order
// like archive/tar, returning verified bytes and ErrChecksum from Read
// itself. Chunks, ReadStored and Chunk.Decode give the install engine the
// chunk-level access it needs to verify and decompress on several cores
// while reading the stream once.
type Reader struct {
	m       *Manifest
	signers []string
	chunks  []Chunk // every chunk, in payload order
	hdr     *header
	err     error // sticky error of the underlying stream

	// Exactly one of r and ra is set.
	r   io.Reader
	pos uint64 // stream position, relative to the payload start
	ra  io.ReaderAt

	// Next/Read state.
	img     int // index+1 of the current image in m.Images, 0 before Next
	next    int // next chunk of the current image to decode
	pending []byte
	buf     []byte
	stored  []byte
}

// NewReader reads a bundle from a stream, front to back. The header,
// manifest, signatures and index are read and checked before it returns;
// payload chunks must then be read in payload order.
func NewReader(r io.Reader, trust *TrustStore) (*Reader, error) {
	br := &Reader{r: r}
	if err := br.open(trust, func(off uint64, b []byte) error { return readFull(r, b) }); err != nil {
		return nil, err
	}
	return br, nil
}

// NewReaderAt reads a bundle with random access (a file, an HTTP Range
// reader). size is the bundle's size; a smaller size than the header
// announces is reported as ErrTruncated at once.
func NewReaderAt(ra io.ReaderAt, size int64, trust *TrustStore) (*Reader, error) {
	br := &Reader{ra: ra}
	err := br.open(trust, func(off uint64, b []byte) error {
		n, err := ra.ReadAt(b, int64(off))
		if n == len(b) {
			return nil
		}
		if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return wrapEOF(err)
	})
	if err != nil {
		return nil, err
	}
	if want := br.hdr.payloadOffset() + br.hdr.PayloadSize; uint64(size) < want {
		return nil, fmt.Errorf("%w: %d bytes, the bundle needs %d", ErrTruncated, size, want)
	}
	return br, nil
}

// readAt is the sequential or random read used while opening.
type readAtFunc func(off uint64, b []byte) error

func (br *Reader) open(trust *TrustStore, read readAtFunc) error {
	hb := make([]byte, HeaderSize)
	if err := read(0, hb); err != nil {
		return fmt.Errorf("reading header: %w", err)
	}
	h, err := parseHeader(hb)
	if err != nil {
		return err
	}
	br.hdr = h
	mb := make([]byte, h.ManifestSize)
	if err := read(HeaderSize, mb); err != nil {
		return fmt.Errorf("reading manifest: %w", err)
	}
	sb := make([]byte, h.SignatureSize)
	if err := read(HeaderSize+uint64(h.ManifestSize), sb); err != nil {
		return fmt.Errorf("reading signatures: %w", err)
	}
	// Authenticate before parsing: nothing in the manifest is looked at
	// until a trusted key's signature over its exact bytes has verified.
	signers, err := trust.verify(mb, sb)
	if err != nil {
		return err
	}
	m, err := parseManifest(mb)
	if err != nil {
		return err
	}
	if m.IndexSize != h.IndexSize || m.PayloadSize != h.PayloadSize {
		return fmt.Errorf("%w: header sizes (index %d, payload %d) differ from the signed manifest (%d, %d)",
			ErrFormat, h.IndexSize, h.PayloadSize, m.IndexSize, m.PayloadSize)
	}
	ib := make([]byte, h.IndexSize)
	if err := read(HeaderSize+uint64(h.ManifestSize)+uint64(h.SignatureSize), ib); err != nil {
		return fmt.Errorf("reading chunk index: %w", err)
	}
	if sum := sha256.Sum256(ib); hex.EncodeToString(sum[:]) != m.IndexSHA256 {
		return fmt.Errorf("%w: chunk index does not match the signed manifest", ErrChecksum)
	}
	chunks, err := parseIndex(m, ib)
	if err != nil {
		return err
	}
	br.m, br.signers, br.chunks = m, signers, chunks
	return nil
}

func parseManifest(b []byte) (*Manifest, error) {
	var m Manifest
	d := json.NewDecoder(bytes.NewReader(b))
	if err := d.Decode(&m); err != nil {
		return nil, fmt.Errorf("%w: manifest: %v", ErrFormat, err)
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return &m, nil
}

// parseIndex turns the index into chunks and checks that the stored chunks
// lie back to back in payload order and fill the payload exactly, which is
// what lets a stream be read in one pass.
func parseIndex(m *Manifest, ib []byte) ([]Chunk, error) {
	chunks := make([]Chunk, 0, len(ib)/IndexEntrySize)
	var pos uint64
	cs := uint64(m.ChunkSize)
	for _, im := range m.Images {
		for i := uint64(0); i < im.Chunks; i++ {
			n := im.FirstChunk + i
			c := Chunk{Image: im.Name, Index: int(i), Offset: i * cs, Size: uint32(min(cs, im.Size-i*cs))}
			if err := c.unmarshal(ib[n*IndexEntrySize : (n+1)*IndexEntrySize]); err != nil {
				return nil, fmt.Errorf("%v: %w", &c, err)
			}
			switch {
			case c.Encoding == EncodingZero:
				c.PayloadOffset = pos
			case c.PayloadOffset != pos:
				return nil, fmt.Errorf("%w: %v stored at %d, want %d", ErrFormat, &c, c.PayloadOffset, pos)
			case c.Encoding == EncodingRaw && c.StoredSize != c.Size,
				c.Encoding == EncodingLZ4 && (c.StoredSize == 0 || c.StoredSize >= c.Size):
				return nil, fmt.Errorf("%w: %v: %d stored bytes as %v", ErrFormat, &c, c.StoredSize, c.Encoding)
			}
			pos += uint64(c.StoredSize)
			chunks = append(chunks, c)
		}
	}
	if pos != m.PayloadSize {
		return nil, fmt.Errorf("%w: chunks fill %d payload bytes, manifest says %d", ErrFormat, pos, m.PayloadSize)
	}
	return chunks, nil
}

// Manifest returns the verified manifest. Callers must not modify it.
func (br *Reader) Manifest() *Manifest { return br.m }

// Signers returns the ids of the trusted keys whose signatures verified.
func (br *Reader) Signers() []string { return br.signers }

// Seekable reports whether chunks can be read in any order (NewReaderAt).
func (br *Reader) Seekable() bool { return br.ra != nil }

// PayloadStart is the offset of the payload in the bundle file: add a
// chunk's PayloadOffset to get its place in the file (for HTTP Range).
func (br *Reader) PayloadStart() uint64 { return br.hdr.payloadOffset() }

// Chunks returns the chunks of the named image, in order.
func (br *Reader) Chunks(image string) ([]Chunk, error) {
	im := br.m.Image(image)
	if im == nil {
		return nil, fmt.Errorf("bundle: no image %q", image)
	}
	return br.chunks[im.FirstChunk : im.FirstChunk+im.Chunks], nil
}

// ReadStored reads the stored (compressed, unverified) bytes of c into buf,
// growing it if needed, and returns them. Pass them to c.Decode before use.
// On a stream, chunks must be requested in payload order; chunks skipped
// over are read and discarded.
func (br *Reader) ReadStored(c *Chunk, buf []byte) ([]byte, error) {
	if br.err != nil {
		return nil, br.err
	}
	if cap(buf) < int(c.StoredSize) {
		buf = make([]byte, c.StoredSize)
	}
	buf = buf[:c.StoredSize]
	if c.StoredSize == 0 {
		return buf, nil
	}
	if br.ra != nil {
		n, err := br.ra.ReadAt(buf, int64(br.hdr.payloadOffset()+c.PayloadOffset))
		if n == len(buf) {
			return buf, nil
		}
		if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("reading %v: %w", c, wrapEOF(err))
	}
	if c.PayloadOffset < br.pos {
		return nil, fmt.Errorf("%w: %v at payload offset %d, stream at %d", ErrOrder, c, c.PayloadOffset, br.pos)
	}
	if gap := c.PayloadOffset - br.pos; gap > 0 {
		n, err := io.CopyN(io.Discard, br.r, int64(gap))
		br.pos += uint64(n)
		if err != nil {
			br.err = fmt.Errorf("skipping to %v: %w", c, wrapEOF(err))
			return nil, br.err
		}
	}
	n, err := io.ReadFull(br.r, buf)
	br.pos += uint64(n)
	if err != nil {
		br.err = fmt.Errorf("reading %v: %w", c, wrapEOF(err))
		return nil, br.err
	}
	return buf, nil
}

// Next advances to the next image in payload order and returns it; it
// returns io.EOF after the last one. The image's verified bytes are then
// read with Read.
func (br *Reader) Next() (*Image, error) {
	if br.img >= len(br.m.Images) {
		return nil, io.EOF
	}
	br.img++
	br.next, br.pending = 0, nil
	return &br.m.Images[br.img-1], nil
}

// Read reads the current image's bytes. Every chunk is checked against its
// hash before any of its bytes are returned; a mismatch returns an error
// wrapping ErrChecksum.
func (br *Reader) Read(p []byte) (int, error) {
	if br.img == 0 {
		return 0, errors.New("bundle: Read before Next")
	}
	for len(br.pending) == 0 {
		im := &br.m.Images[br.img-1]
		if br.next >= int(im.Chunks) {
			return 0, io.EOF
		}
		c := &br.chunks[im.FirstChunk+uint64(br.next)]
		var err error
		br.stored, err = br.ReadStored(c, br.stored)
		if err != nil {
			return 0, err
		}
		br.buf, err = c.Decode(br.stored, br.buf)
		if err != nil {
			return 0, err
		}
		br.pending = br.buf
		br.next++
	}
	n := copy(p, br.pending)
	br.pending = br.pending[n:]
	return n, nil
}

func readFull(r io.Reader, b []byte) error {
	_, err := io.ReadFull(r, b)
	return wrapEOF(err)
}

// wrapEOF turns an early end of input into ErrTruncated.
func wrapEOF(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: %v", ErrTruncated, err)
	}
	return err
}

// Unverified is what ReadUnverified returns: the bundle's description as it
// is, without any signature check. It is for inspection tools only.
type Unverified struct {
	Manifest   *Manifest // nil if the manifest does not parse
	ParseError error     // why Manifest is nil or invalid
	Signatures SignatureBlock
	Size       uint64 // header + manifest + signatures + index + payload
}

// ReadUnverified reads the header, manifest and signature block without
// checking them against a trust store, so that a tool can show what a bundle
// claims to be and who signed it. Nothing it returns may be acted on.
func ReadUnverified(r io.Reader) (*Unverified, error) {
	hb := make([]byte, HeaderSize)
	if err := readFull(r, hb); err != nil {
		return nil, fmt.Errorf("reading header: %w", err)
	}
	h, err := parseHeader(hb)
	if err != nil {
		return nil, err
	}
	mb := make([]byte, h.ManifestSize)
	if err := readFull(r, mb); err != nil {
		return nil, fmt.Errorf("reading manifest: %w", err)
	}
	sb := make([]byte, h.SignatureSize)
	if err := readFull(r, sb); err != nil {
		return nil, fmt.Errorf("reading signatures: %w", err)
	}
	u := &Unverified{Size: h.payloadOffset() + h.PayloadSize}
	if err := json.Unmarshal(sb, &u.Signatures); err != nil {
		return nil, fmt.Errorf("%w: signature block: %v", ErrFormat, err)
	}
	u.Manifest, u.ParseError = parseManifest(mb)
	if u.Manifest == nil {
		var m Manifest
		if json.Unmarshal(mb, &m) == nil {
			u.Manifest = &m
		}
	}
	return u, nil
}
