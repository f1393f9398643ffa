package bundle

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"time"

	"github.com/pierrec/lz4/v4"
)

// WriterOptions tune a Writer.
type WriterOptions struct {
	ChunkSize uint32   // default DefaultChunkSize
	Workers   int      // compression goroutines; default GOMAXPROCS
	TempDir   string   // where the payload is spooled; default os.TempDir()
	Signers   []Signer // at least one
	// Created is recorded in the manifest; the zero value means now. Set it
	// for reproducible bundles.
	Created time.Time
}

// Writer writes a bundle. Because the signed manifest comes first and holds
// every chunk's hash, the payload is spooled to a temporary file while
// images are added, and the bundle is written out by Close.
type Writer struct {
	w       io.Writer
	m       Manifest
	opts    WriterOptions
	spool   *os.File
	spoolW  *bufio.Writer
	index   []byte
	payload uint64
	nchunks uint64
	err     error
}

// NewWriter returns a Writer that writes a bundle described by m to w. The
// manifest's images and sizes are filled in by AddImage and Close; its
// product, versions, compatible boards and steps are taken as given.
func NewWriter(w io.Writer, m Manifest, opts WriterOptions) *Writer {
	if opts.ChunkSize == 0 {
		opts.ChunkSize = DefaultChunkSize
	}
	if opts.Workers <= 0 {
		opts.Workers = runtime.GOMAXPROCS(0)
	}
	m.Images = nil
	return &Writer{w: w, m: m, opts: opts}
}

type encJob struct {
	seq    uint64
	data   []byte
	n      int
	hash   [32]byte
	enc    Encoding
	stored []byte
	buf    []byte // compression output; stored points into data or buf
	done   chan struct{}
}

// AddImage reads r to its end and adds it as the next image of the bundle.
// Chunks are hashed and compressed on all workers; the image's order in the
// payload is the order of the AddImage calls.
func (bw *Writer) AddImage(name string, r io.Reader) (*Image, error) {
	if bw.err != nil {
		return nil, bw.err
	}
	if bw.m.Image(name) != nil {
		return nil, fmt.Errorf("bundle: image %s added twice", Printable(name))
	}
	if name == "" || !isPrintable(name) {
		return nil, fmt.Errorf("bundle: image name %s: want a printable name", Printable(name))
	}
	if bw.opts.ChunkSize < MinChunkSize || bw.opts.ChunkSize > MaxChunkSize || bw.opts.ChunkSize&(bw.opts.ChunkSize-1) != 0 {
		return nil, fmt.Errorf("bundle: chunk size %d is not a power of two in [%d, %d]", bw.opts.ChunkSize, MinChunkSize, MaxChunkSize)
	}
	if bw.spool == nil {
		f, err := os.CreateTemp(bw.opts.TempDir, "lifeboat-payload-*")
		if err != nil {
			bw.err = fmt.Errorf("bundle: payload spool: %w", err)
			return nil, bw.err
		}
		// The spool is unlinked at once: nothing is left behind if the
		// process dies.
		os.Remove(f.Name())
		bw.spool, bw.spoolW = f, bufio.NewWriterSize(f, 1<<20)
	}

	cs := int(bw.opts.ChunkSize)
	inflight := 2 * bw.opts.Workers
	free := make(chan *encJob, inflight)
	for range inflight {
		free <- &encJob{data: make([]byte, cs), buf: make([]byte, lz4Bound(cs)), done: make(chan struct{}, 1)}
	}
	work := make(chan *encJob, inflight)
	ordered := make(chan *encJob, inflight)
	for range bw.opts.Workers {
		go func() {
			var c lz4.Compressor
			for j := range work {
				j.hash, j.enc, j.stored = encodeChunk(&c, j.data[:j.n], j.buf)
				j.done <- struct{}{}
			}
		}()
	}

	// The reader goroutine cuts the input into chunks; this goroutine
	// collects them in order.
	readErr := make(chan error, 1)
	go func() {
		defer close(work)
		defer close(ordered)
		for seq := uint64(0); ; seq++ {
			j := <-free
			n, err := io.ReadFull(r, j.data)
			if n == 0 {
				if err == io.EOF {
					err = nil
				}
				readErr <- err
				return
			}
			j.seq, j.n = seq, n
			ordered <- j
			work <- j
			if err != nil {
				if err == io.ErrUnexpectedEOF {
					err = nil
				}
				readErr <- err
				return
			}
		}
	}()

	im := Image{Name: name, FirstChunk: bw.nchunks}
	whole := sha256.New()
	var werr error
	rec := make([]byte, IndexEntrySize)
	for j := range ordered {
		<-j.done
		if werr == nil && bw.nchunks+im.Chunks >= MaxChunks {
			// A reader would refuse the index; say so now, with the way out.
			werr = fmt.Errorf("bundle: image %s: more than %d chunks in the bundle; use a larger chunk size than %d", Printable(name), MaxChunks, bw.opts.ChunkSize)
		}
		if werr == nil {
			whole.Write(j.data[:j.n])
			c := Chunk{Hash: j.hash, Encoding: j.enc, PayloadOffset: bw.payload, StoredSize: uint32(len(j.stored))}
			if _, err := bw.spoolW.Write(j.stored); err != nil {
				werr = fmt.Errorf("bundle: payload spool: %w", err)
			}
			bw.payload += uint64(len(j.stored))
			c.marshal(rec)
			bw.index = append(bw.index, rec...)
			im.Size += uint64(j.n)
			im.Chunks++
		}
		free <- j
	}
	if err := <-readErr; err != nil && werr == nil {
		werr = fmt.Errorf("bundle: reading image %q: %w", name, err)
	}
	if werr != nil {
		bw.err = werr
		return nil, werr
	}
	bw.nchunks += im.Chunks
	im.SHA256 = hex.EncodeToString(whole.Sum(nil))
	bw.m.Images = append(bw.m.Images, im)
	return &bw.m.Images[len(bw.m.Images)-1], nil
}

// Close signs the manifest and writes the bundle. It does not close the
// underlying writer.
func (bw *Writer) Close() error {
	if bw.err != nil {
		return bw.err
	}
	bw.err = ErrWriteAfterClose
	if bw.spool != nil {
		defer bw.spool.Close()
		if err := bw.spoolW.Flush(); err != nil {
			return fmt.Errorf("bundle: payload spool: %w", err)
		}
	}
	if len(bw.opts.Signers) == 0 {
		return errors.New("bundle: no signing key")
	}
	m := bw.m
	m.Format = FormatVersion
	m.ChunkSize = bw.opts.ChunkSize
	m.IndexSize = uint64(len(bw.index))
	sum := sha256.Sum256(bw.index)
	m.IndexSHA256 = hex.EncodeToString(sum[:])
	m.PayloadSize = bw.payload
	if m.Created == "" {
		t := bw.opts.Created
		if t.IsZero() {
			t = time.Now()
		}
		m.Created = t.UTC().Format(time.RFC3339)
	}
	if err := m.Validate(); err != nil {
		return err
	}
	mb, err := json.MarshalIndent(&m, "", "  ")
	if err != nil {
		return err
	}
	if len(mb) > MaxManifestSize {
		return fmt.Errorf("bundle: manifest is %d bytes, at most %d", len(mb), MaxManifestSize)
	}
	// What the Writer makes, its Reader must take: the same parser, with
	// its limits, checks the bytes about to be signed.
	if _, err := parseManifest(mb); err != nil {
		return err
	}
	sb, err := signManifest(mb, bw.opts.Signers)
	if err != nil {
		return err
	}
	if len(sb) > MaxSignatureSize || len(bw.opts.Signers) > MaxSignatures {
		return fmt.Errorf("bundle: %d signatures (%d bytes), at most %d (%d bytes)", len(bw.opts.Signers), len(sb), MaxSignatures, MaxSignatureSize)
	}
	h := header{ManifestSize: uint32(len(mb)), SignatureSize: uint32(len(sb)), IndexSize: m.IndexSize, PayloadSize: m.PayloadSize}
	for _, b := range [][]byte{h.marshal(), mb, sb, bw.index} {
		if _, err := bw.w.Write(b); err != nil {
			return fmt.Errorf("bundle: writing: %w", err)
		}
	}
	if bw.spool != nil {
		if _, err := bw.spool.Seek(0, io.SeekStart); err != nil {
			return err
		}
		if _, err := io.Copy(bw.w, bw.spool); err != nil {
			return fmt.Errorf("bundle: writing payload: %w", err)
		}
	}
	return nil
}
