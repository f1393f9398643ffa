package bundle

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
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
// payload chunks must then be read in payload order. Memory grows with the
// bytes that arrive, never with a size the bundle claims.
func NewReader(r io.Reader, trust *TrustStore) (*Reader, error) {
	br := &Reader{r: r}
	if err := br.open(trust, func(off uint64, b []byte) error { return readFull(r, b) }, -1); err != nil {
		return nil, err
	}
	return br, nil
}

// NewReaderAt reads a bundle with random access (a file, an HTTP Range
// reader). size is the bundle's size; a smaller size than the header
// announces is reported as ErrTruncated at once, before anything is
// allocated for the sections.
func NewReaderAt(ra io.ReaderAt, size int64, trust *TrustStore) (*Reader, error) {
	if size < 0 {
		return nil, fmt.Errorf("%w: size %d", ErrTruncated, size)
	}
	br := &Reader{ra: ra}
	err := br.open(trust, func(off uint64, b []byte) error {
		if off > math.MaxInt64-uint64(len(b)) {
			return fmt.Errorf("%w: offset %d", ErrFormat, off)
		}
		n, err := ra.ReadAt(b, int64(off))
		if n == len(b) {
			return nil
		}
		if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return wrapEOF(err)
	}, size)
	if err != nil {
		return nil, err
	}
	return br, nil
}

// readAtFunc is the sequential or random read used while opening: it
// fills b with the bytes at off.
type readAtFunc func(off uint64, b []byte) error

// open reads and checks everything before the payload. size is the
// bundle's size, or -1 for a stream of unknown length.
func (br *Reader) open(trust *TrustStore, read readAtFunc, size int64) error {
	h, mb, sb, err := readHead(read, size)
	if err != nil {
		return err
	}
	br.hdr = h
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
	chunks, err := readIndex(read, m, HeaderSize+uint64(h.ManifestSize)+uint64(h.SignatureSize), size >= 0)
	if err != nil {
		return err
	}
	br.m, br.signers, br.chunks = m, signers, chunks
	return nil
}

// readHead reads the header, the manifest and the signature block. With
// a known size, every section the header announces must fit in it before
// anything is allocated for them; on a stream, the sections are read as
// they arrive, so a short stream that claims a large manifest costs only
// what it holds.
func readHead(read readAtFunc, size int64) (*header, []byte, []byte, error) {
	hb := make([]byte, HeaderSize)
	if err := read(0, hb); err != nil {
		return nil, nil, nil, fmt.Errorf("reading header: %w", err)
	}
	h, err := parseHeader(hb)
	if err != nil {
		return nil, nil, nil, err
	}
	// No overflow: every term is bounded by parseHeader.
	if want := h.payloadOffset() + h.PayloadSize; size >= 0 && uint64(size) < want {
		return nil, nil, nil, fmt.Errorf("%w: %d bytes, the bundle needs %d", ErrTruncated, size, want)
	}
	mb, err := readSection(read, HeaderSize, uint64(h.ManifestSize), size >= 0)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("reading manifest: %w", err)
	}
	sb, err := readSection(read, HeaderSize+uint64(h.ManifestSize), uint64(h.SignatureSize), size >= 0)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("reading signatures: %w", err)
	}
	return h, mb, sb, nil
}

// sectionStep is how much of a section is read at a time when its size
// has not been checked against the source's: the buffer then grows with
// the bytes that have arrived.
const sectionStep = 64 << 10

// readSection reads the n bytes at off. sized says that n has been
// checked against the source's size, so the buffer can be allocated at
// once.
func readSection(read readAtFunc, off, n uint64, sized bool) ([]byte, error) {
	if sized {
		b := make([]byte, n)
		return b, read(off, b)
	}
	b := make([]byte, 0, min(n, sectionStep))
	for uint64(len(b)) < n {
		k := min(n-uint64(len(b)), max(sectionStep, uint64(len(b))))
		b = slices.Grow(b, int(k))
		part := b[len(b) : len(b)+int(k)]
		if err := read(off+uint64(len(b)), part); err != nil {
			return nil, err
		}
		b = b[:len(b)+int(k)]
	}
	return b, nil
}

func parseManifest(b []byte) (*Manifest, error) {
	var m Manifest
	if err := decodeStrict(b, &m, MaxManifestValues, true); err != nil {
		return nil, fmt.Errorf("%w: manifest: %v", ErrFormat, err)
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return &m, nil
}

// indexBlock is how much of the index is read at a time: whole records.
const indexBlock = 1365 * IndexEntrySize

// readIndex reads the m.IndexSize bytes of index at off, a block at a
// time, hashing and parsing as it goes, so that what it holds is the
// chunk list (bounded by MaxChunks and by the bytes that have arrived) and
// one block. A malformed record is reported only once the whole index
// has matched the signed hash: an index that was changed is a checksum
// error, not a format one. sized says the source's size has been checked,
// so the chunk list can be allocated at once.
func readIndex(read readAtFunc, m *Manifest, off uint64, sized bool) ([]Chunk, error) {
	p := newIndexParser(m, sized)
	h := sha256.New()
	buf := make([]byte, min(m.IndexSize, indexBlock))
	for done := uint64(0); done < m.IndexSize; {
		b := buf[:min(m.IndexSize-done, indexBlock)]
		if err := read(off+done, b); err != nil {
			return nil, fmt.Errorf("reading chunk index: %w", err)
		}
		h.Write(b)
		p.add(b)
		done += uint64(len(b))
	}
	if hex.EncodeToString(h.Sum(nil)) != m.IndexSHA256 {
		return nil, fmt.Errorf("%w: chunk index does not match the signed manifest", ErrChecksum)
	}
	return p.finish()
}

// parseIndex parses a whole index held in memory (the fuzzers' way in).
func parseIndex(m *Manifest, ib []byte) ([]Chunk, error) {
	if uint64(len(ib)) != m.IndexSize {
		return nil, fmt.Errorf("%w: index of %d bytes, manifest says %d", ErrFormat, len(ib), m.IndexSize)
	}
	p := newIndexParser(m, true)
	p.add(ib)
	return p.finish()
}

// indexParser turns index records into chunks and checks that the stored
// chunks lie back to back in payload order and fill the payload exactly,
// which is what lets a stream be read in one pass, and that every zero
// chunk's hash is the hash of zero bytes, so that no code that writes
// zeros for a zero chunk writes anything but what the manifest signed.
type indexParser struct {
	m      *Manifest
	chunks []Chunk
	img    int    // image of the next record
	i      uint64 // chunk of that image
	pos    uint64 // payload offset of the next stored chunk
	zeros  map[uint32]bool
	err    error // the first malformed record
}

func newIndexParser(m *Manifest, sized bool) *indexParser {
	n := m.IndexSize / IndexEntrySize
	if !sized {
		// Grow with the records that arrive.
		n = min(n, indexBlock/IndexEntrySize)
	}
	return &indexParser{m: m, chunks: make([]Chunk, 0, n), zeros: map[uint32]bool{}}
}

func (p *indexParser) add(recs []byte) {
	// Grow by doubling up to the signed count, never past it.
	if need := len(p.chunks) + len(recs)/IndexEntrySize; need > cap(p.chunks) {
		total := int(p.m.IndexSize / IndexEntrySize)
		p.chunks = slices.Grow(p.chunks, min(total, max(need, 2*cap(p.chunks)))-len(p.chunks))
	}
	cs := uint64(p.m.ChunkSize)
	for ; len(recs) >= IndexEntrySize && p.err == nil; recs = recs[IndexEntrySize:] {
		for p.img < len(p.m.Images) && p.i == p.m.Images[p.img].Chunks {
			p.img, p.i = p.img+1, 0
		}
		if p.img == len(p.m.Images) {
			p.err = fmt.Errorf("%w: more index records than the images have chunks", ErrFormat)
			return
		}
		im := &p.m.Images[p.img]
		// Made in place: a Chunk on its own would escape to the heap.
		p.chunks = append(p.chunks, Chunk{Image: im.Name, Index: int(p.i), Offset: p.i * cs, Size: uint32(min(cs, im.Size-p.i*cs))})
		c := &p.chunks[len(p.chunks)-1]
		p.i++
		if err := c.unmarshal(recs[:IndexEntrySize]); err != nil {
			p.err = fmt.Errorf("%v: %w", c, err)
			return
		}
		switch {
		case c.Encoding == EncodingZero:
			c.PayloadOffset = p.pos
			p.zeros[c.Size] = true
		case c.PayloadOffset != p.pos:
			p.err = fmt.Errorf("%w: %v stored at %d, want %d", ErrFormat, c, c.PayloadOffset, p.pos)
		case c.Encoding == EncodingRaw && c.StoredSize != c.Size,
			c.Encoding == EncodingLZ4 && (c.StoredSize == 0 || c.StoredSize >= c.Size):
			p.err = fmt.Errorf("%w: %v: %d stored bytes as %v", ErrFormat, c, c.StoredSize, c.Encoding)
		}
		p.pos += uint64(c.StoredSize)
	}
}

func (p *indexParser) finish() ([]Chunk, error) {
	if p.err != nil {
		return nil, p.err
	}
	if n := uint64(len(p.chunks)); n != p.m.IndexSize/IndexEntrySize {
		return nil, fmt.Errorf("%w: %d index records, manifest says %d", ErrFormat, n, p.m.IndexSize/IndexEntrySize)
	}
	if p.pos != p.m.PayloadSize {
		return nil, fmt.Errorf("%w: chunks fill %d payload bytes, manifest says %d", ErrFormat, p.pos, p.m.PayloadSize)
	}
	if len(p.zeros) > 0 {
		sums := zeroHashes(p.zeros)
		for i := range p.chunks {
			c := &p.chunks[i]
			if c.Encoding != EncodingZero {
				continue
			}
			if c.Hash != sums[c.Size] {
				return nil, fmt.Errorf("%w: %v is marked zero but its hash is not that of %d zero bytes", ErrFormat, c, c.Size)
			}
			c.zeroHash = true
		}
	}
	return p.chunks, nil
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
	return br.chunks[im.FirstChunk : im.FirstChunk+im.Chunks : im.FirstChunk+im.Chunks], nil
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
// wrapping ErrChecksum. The image's whole SHA-256 is not checked here (it
// would double the hashing); a reader that wants it, as
// lifeboat-bundle verify does, hashes what Read returns.
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
// claims to be and who signed it. Nothing it returns may be acted on, and
// every string in it must go through Printable before it is shown. It
// holds to the same limits as NewReader: memory grows with the bytes that
// arrive.
func ReadUnverified(r io.Reader) (*Unverified, error) {
	h, mb, sb, err := readHead(func(off uint64, b []byte) error { return readFull(r, b) }, -1)
	if err != nil {
		return nil, err
	}
	u := &Unverified{Size: h.payloadOffset() + h.PayloadSize}
	blk, err := parseSignatureBlock(sb)
	if err != nil {
		return nil, err
	}
	u.Signatures = *blk
	u.Manifest, u.ParseError = parseManifest(mb)
	if u.Manifest == nil {
		// Show what can be shown of a manifest that does not validate,
		// within the same bounds.
		var m Manifest
		if decodeStrict(mb, &m, MaxManifestValues, false) == nil {
			u.Manifest = &m
		}
	}
	return u, nil
}
