package install

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/lifeboat-updater/lifeboat/bundle"
	"github.com/lifeboat-updater/lifeboat/handlers"
)

// memBudget bounds the chunk buffers of one image step: with the default
// 1 MiB chunks that is up to 16 chunks in flight, a few per core on small
// boards, and the whole install stays far below 64 MiB of RSS whatever the
// image size. Bundles with huge chunks still get two in flight, so memory
// then grows with the chunk size (at most 2 × 2 × 64 MiB).
const memBudget = 32 << 20

// maxZeroRun bounds one ZeroRange call: storage that cannot zero cheaply
// writes zeros at its write speed, and progress should still move.
const maxZeroRun = 64 << 20

// jobsPerWorker chunks in flight per worker keep every core busy while the
// writer and the reader wait on I/O.
const jobsPerWorker = 3

// inflight is how many chunks an image step holds at once.
func inflight(workers int, chunkSize uint32) int {
	per := 2 * int(chunkSize) // decoded bytes + stored bytes
	return max(2, min(jobsPerWorker*workers, memBudget/per))
}

type jobKind int

const (
	jobWrite   jobKind = iota // data holds verified bytes to write
	jobZero                   // an all-zero chunk to write
	jobSkip                   // the target already holds the chunk
	jobFailed                 // err says why
	jobDropped                // not looked at: the install is stopping
)

// chunkJob is one chunk travelling through the pipeline. Its buffers are
// reused from chunk to chunk.
type chunkJob struct {
	c      *bundle.Chunk
	seq    int    // position in the image's chunk list
	stored []byte // buffer for compressed stored bytes read from a stream
	in     []byte // this chunk's stored bytes: in stored, or in data if raw
	data   []byte // aligned, so that O_DIRECT can write it
	out    []byte // verified bytes, within data
	kind   jobKind
	err    error
	done   chan struct{}
}

// counts is the progress of one image step.
type counts struct {
	written, skipped, zeroed    int64 // bytes
	nWritten, nSkipped, nZeroed int
}

func (c counts) done() int64 { return c.written + c.skipped + c.zeroed }

// pipeline writes one image to one target.
//
// A dispatcher goroutine takes the chunks in payload order. On a stream it
// reads each chunk's stored bytes itself, since a stream can only be read
// in order; on a seekable bundle the workers read them, and only for the
// chunks they do not skip. Workers compare the target with the chunk
// (skip-unchanged), then verify and decompress it. The calling goroutine
// writes the chunks strictly in order as they become ready, so the first
// chunk that fails to verify stops the step with every chunk before it
// written and nothing from it on.
type pipeline struct {
	br      *bundle.Reader
	t       handlers.Target
	base    int64 // where the image starts in the target
	chunks  []bundle.Chunk
	workers int
	skip    bool
	size    uint32 // the bundle's chunk size

	step   int
	image  string
	target string

	progress func(counts)
	touched  []bool // chunks written or zeroed, for the read-back

	// misses counts chunks in a row that differed from the target; see
	// check.
	misses atomic.Int64
}

// The skip check reads the target before writing. On a blank or foreign
// disk every read is wasted, and it costs as much as the write on a loop
// device (docs/BENCHMARKS.md). After missRun chunks in a row differ, only
// every probeStride-th chunk is checked, until one matches again: a resume
// after a power cut (a written prefix, then nothing) and an update that
// changes a few chunks still skip everything they can, while a first
// install reads only 1/probeStride of the target.
const (
	missRun     = 16
	probeStride = 16
)

// check says whether chunk seq should be compared with the target.
func (p *pipeline) check(seq int) bool {
	return p.misses.Load() < missRun || seq%probeStride == 0
}

func (p *pipeline) checked(match bool) {
	if match {
		p.misses.Store(0)
	} else {
		p.misses.Add(1)
	}
}

func (p *pipeline) chunkError(c *bundle.Chunk, err error) *ChunkError {
	return &ChunkError{Step: p.step, Image: p.image, Chunk: c.Index, Offset: p.base + int64(c.Offset), Target: p.target, Err: err}
}

func (p *pipeline) run(ctx context.Context) (counts, error) {
	p.touched = make([]bool, len(p.chunks))
	seek := p.br.Seekable()
	n := inflight(p.workers, p.size)
	free := make(chan *chunkJob, n)
	for range n {
		free <- &chunkJob{done: make(chan struct{}, 1)}
	}
	work := make(chan *chunkJob, n)
	ordered := make(chan *chunkJob, n)
	stop := make(chan struct{})
	stopped := func() bool {
		select {
		case <-stop:
			return true
		default:
			return false
		}
	}

	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(ordered)
		defer close(work)
		for i := range p.chunks {
			var j *chunkJob
			select {
			case j = <-free:
			case <-stop:
				return
			}
			j.c, j.seq, j.kind, j.err, j.out, j.in = &p.chunks[i], i, jobWrite, nil, nil, nil
			if j.data == nil {
				j.data = handlers.AlignedBuffer(int(p.size))
			}
			if !seek && j.c.StoredSize > 0 {
				var err error
				// The skip check reads the target into data: only
				// without it may a raw chunk wait there.
				if j.in, err = p.readStored(j, &j.stored, !p.skip); err != nil {
					j.kind, j.err = jobFailed, err
					j.done <- struct{}{}
					ordered <- j
					return
				}
			}
			ordered <- j
			work <- j
		}
	}()
	for range p.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// On a seekable bundle a worker reads and decodes a chunk
			// in one go: its buffer for compressed bytes is its own,
			// not one per chunk in flight.
			var stored []byte
			for j := range work {
				if stopped() {
					j.kind = jobDropped
				} else {
					p.process(j, seek, &stored)
				}
				j.done <- struct{}{}
			}
		}()
	}

	var (
		cnt  counts
		err  error
		zoff int64 = -1 // pending run of zero chunks: start, length, first chunk
		zlen int64
		zfst *bundle.Chunk
		zidx int
		zcnt int
	)
	flushZeros := func() error {
		if zlen == 0 {
			return nil
		}
		if e := p.t.ZeroRange(zoff, zlen); e != nil {
			return p.chunkError(zfst, fmt.Errorf("%w: zeroing %d bytes: %w", ErrTargetIO, zlen, e))
		}
		for i := zidx; i < zidx+zcnt; i++ {
			p.touched[i] = true
		}
		cnt.zeroed += zlen
		cnt.nZeroed += zcnt
		zoff, zlen, zcnt = -1, 0, 0
		return nil
	}
	for j := range ordered {
		<-j.done
		if err == nil {
			err = p.consume(j, &cnt, flushZeros, func() error {
				// Extend the pending run, or start one.
				off := p.base + int64(j.c.Offset)
				if zlen > 0 && zoff+zlen == off && zlen < maxZeroRun {
					zlen += int64(j.c.Size)
					zcnt++
					return nil
				}
				if err := flushZeros(); err != nil {
					return err
				}
				zoff, zlen, zfst, zidx, zcnt = off, int64(j.c.Size), j.c, j.seq, 1
				return nil
			})
			if err == nil {
				err = ctx.Err()
			}
			if err != nil {
				close(stop)
			}
			if p.progress != nil {
				p.progress(cnt)
			}
		}
		free <- j
	}
	wg.Wait()
	if err == nil {
		err = flushZeros()
	}
	return cnt, err
}

// process runs on a worker: skip check, then read (seekable bundles),
// verify and decompress.
func (p *pipeline) process(j *chunkJob, seek bool, stored *[]byte) {
	c := j.c
	if p.skip && p.check(j.seq) {
		buf := j.data[:c.Size]
		n, _ := p.t.ReadAt(buf, p.base+int64(c.Offset))
		match := n == len(buf) && c.Matches(buf)
		p.checked(match)
		if match {
			j.kind = jobSkip
			return
		}
	}
	if c.Zero() {
		j.kind = jobZero
		return
	}
	var err error
	if seek {
		if j.in, err = p.readStored(j, stored, true); err != nil {
			j.kind, j.err = jobFailed, err
			return
		}
	}
	if j.out, err = c.Decode(j.in, j.data); err != nil {
		j.kind, j.err = jobFailed, err
		return
	}
	j.kind = jobWrite
}

// readStored reads a chunk's stored bytes. A raw chunk is read straight
// into the aligned buffer it is written from: incompressible images are
// then copied once, from the bundle to the device, not twice.
func (p *pipeline) readStored(j *chunkJob, buf *[]byte, intoData bool) ([]byte, error) {
	if intoData && j.c.Encoding == bundle.EncodingRaw && int(j.c.StoredSize) <= len(j.data) {
		return p.br.ReadStored(j.c, j.data[:0])
	}
	if *buf == nil {
		// Sized once for any chunk, so that it is not grown (and the
		// old one left to the collector) as larger chunks come.
		*buf = make([]byte, 0, p.size)
	}
	b, err := p.br.ReadStored(j.c, *buf)
	if err == nil {
		*buf = b
	}
	return b, err
}

// consume handles the next chunk in order, on the writing goroutine.
func (p *pipeline) consume(j *chunkJob, cnt *counts, flushZeros, addZero func() error) error {
	c := j.c
	switch j.kind {
	case jobFailed:
		// Everything before this chunk is written, this chunk and
		// everything after it is not.
		if err := flushZeros(); err != nil {
			return err
		}
		return p.chunkError(c, j.err)
	case jobSkip:
		if err := flushZeros(); err != nil {
			return err
		}
		cnt.skipped += int64(c.Size)
		cnt.nSkipped++
	case jobZero:
		return addZero()
	case jobWrite:
		if err := flushZeros(); err != nil {
			return err
		}
		if _, err := p.t.WriteAt(j.out, p.base+int64(c.Offset)); err != nil {
			return p.chunkError(c, fmt.Errorf("%w: %w", ErrTargetIO, err))
		}
		p.touched[j.seq] = true
		cnt.written += int64(c.Size)
		cnt.nWritten++
	case jobDropped:
		return context.Canceled
	}
	return nil
}

// compare reads the target range of every chunk that sel selects, on
// `workers` goroutines, and returns the positions of those that differ
// from the bundle, in order.
func compare(ctx context.Context, t handlers.Target, base int64, chunks []bundle.Chunk, workers int, size uint32, sel func(i int) bool, progress func(done int64)) ([]int, error) {
	// Each worker holds one chunk: keep them within the memory budget.
	workers = max(1, min(workers, memBudget/int(size)))
	differ := make([]bool, len(chunks))
	idx := make(chan int)
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var done int64
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, size)
			for i := range idx {
				c := &chunks[i]
				b := buf[:c.Size]
				n, err := t.ReadAt(b, base+int64(c.Offset))
				if n < len(b) {
					errs <- fmt.Errorf("%w: reading %v at %d: %w", ErrTargetIO, t, base+int64(c.Offset), err)
					return
				}
				differ[i] = !c.Matches(b)
				if progress != nil {
					mu.Lock()
					done += int64(c.Size)
					progress(done)
					mu.Unlock()
				}
			}
		}()
	}
	var err error
feed:
	for i := range chunks {
		if sel != nil && !sel(i) {
			continue
		}
		select {
		case idx <- i:
		case err = <-errs:
			break feed
		case <-ctx.Done():
			err = ctx.Err()
			break feed
		}
	}
	close(idx)
	wg.Wait()
	if err == nil {
		select {
		case err = <-errs:
		default:
		}
	}
	if err != nil {
		return nil, err
	}
	var out []int
	for i, d := range differ {
		if d {
			out = append(out, i)
		}
	}
	return out, nil
}
