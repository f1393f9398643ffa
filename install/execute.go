package install

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/lifeboat-updater/lifeboat/boards"
	"github.com/lifeboat-updater/lifeboat/bundle"
	"github.com/lifeboat-updater/lifeboat/handlers"
	"github.com/lifeboat-updater/lifeboat/partitions"
)

// progressInterval is the least time between two progress events of a
// step: a few a second are plenty for a person or a program, and more
// would cost more than they show on a slow serial console.
const progressInterval = 250 * time.Millisecond

// Result is what an install did.
type Result struct {
	Steps        []StepStats
	WrittenBytes int64
	SkippedBytes int64
	ZeroedBytes  int64
	Duration     time.Duration
	// SecurityVersion is the device's security version afterwards.
	SecurityVersion uint64
	// PeakRSS is the process's peak resident memory in bytes at the end
	// of the install (0 where the system does not say).
	PeakRSS int64
}

// Execute runs the plan's steps in order and, once all succeeded, records
// the bundle's security version. It emits step-start, progress, step-done
// and, on success, done events; on failure it emits nothing more, and the
// caller reports the error (ErrorEvent). A Plan is executed once.
//
// A failed image step returns a *ChunkError naming the step, image, chunk
// and target offset; other failures a *StepError.
func (p *Plan) Execute(ctx context.Context) (*Result, error) {
	defer p.Close()
	start := time.Now()
	res := &Result{SecurityVersion: p.deviceSV}
	for _, ps := range p.steps {
		st, err := p.run(ctx, ps)
		if st != nil {
			res.Steps = append(res.Steps, *st)
			res.WrittenBytes += st.WrittenBytes
			res.SkippedBytes += st.SkippedBytes
			res.ZeroedBytes += st.ZeroedBytes
		}
		if err != nil {
			var ce *ChunkError
			if !errors.As(err, &ce) {
				err = &StepError{Step: ps.n, Type: ps.step.Type, Target: ps.step.Target, Err: err}
			}
			res.Duration = time.Since(start)
			return res, err
		}
	}
	if p.br == nil {
		// A plan of the device's own (NewWipePlan) installs no bundle.
	} else if v := p.br.Manifest().SecurityVersion; p.svFile != "" && v > p.deviceSV {
		if err := WriteSecurityVersion(p.svFile, v); err != nil {
			return res, fmt.Errorf("%w: recording the new security version: %w", ErrTargetIO, err)
		}
		res.SecurityVersion = v
	}
	res.Duration = time.Since(start)
	res.PeakRSS = peakRSS()
	p.emit(Event{Type: EventDone, Done: &DoneInfo{
		Steps: len(p.steps), WrittenBytes: res.WrittenBytes, SkippedBytes: res.SkippedBytes,
		ZeroedBytes: res.ZeroedBytes, Seconds: res.Duration.Seconds(), SecurityVersion: res.SecurityVersion,
		PeakRSSBytes: res.PeakRSS,
	}})
	return res, nil
}

// tracker turns a step's counts into throttled progress events.
type tracker struct {
	p     *Plan
	ps    *planned
	total int64
	start time.Time
	last  time.Time
}

func (p *Plan) startStep(ps *planned, total int64) *tracker {
	info := &StepInfo{Step: ps.n, Steps: len(p.steps), Type: string(ps.step.Type), Target: ps.step.Target, Path: ps.path, Bytes: total}
	if ps.image != nil {
		info.Image = ps.image.Name
	}
	p.emit(Event{Type: EventStepStart, Step: info})
	now := time.Now()
	return &tracker{p: p, ps: ps, total: total, start: now, last: now}
}

func (tr *tracker) update(c counts) {
	now := time.Now()
	if now.Sub(tr.last) < progressInterval {
		return
	}
	tr.last = now
	done := c.done()
	pr := &Progress{Step: tr.ps.n, Steps: len(tr.p.steps), DoneBytes: done, TotalBytes: tr.total,
		WrittenBytes: c.written, SkippedBytes: c.skipped, ZeroedBytes: c.zeroed, SkippedChunks: c.nSkipped, ETASeconds: -1}
	if tr.total > 0 {
		pr.Percent = 100 * float64(done) / float64(tr.total)
	}
	if s := now.Sub(tr.start).Seconds(); s > 0 {
		pr.BytesPerSec = float64(done) / s
		if pr.BytesPerSec > 0 {
			pr.ETASeconds = float64(tr.total-done) / pr.BytesPerSec
		}
	}
	tr.p.emit(Event{Type: EventProgress, Progress: pr})
}

func (tr *tracker) finish(c counts, verified bool, note string) *StepStats {
	st := &StepStats{Step: tr.ps.n, Steps: len(tr.p.steps), Type: string(tr.ps.step.Type), Target: tr.ps.step.Target,
		WrittenBytes: c.written, SkippedBytes: c.skipped, ZeroedBytes: c.zeroed,
		WrittenChunks: c.nWritten, SkippedChunks: c.nSkipped, ZeroedChunks: c.nZeroed,
		Verified: verified, Seconds: time.Since(tr.start).Seconds(), Note: note}
	tr.p.emit(Event{Type: EventStepDone, StepDone: st})
	return st
}

func (p *Plan) run(ctx context.Context, ps *planned) (*StepStats, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	switch ps.step.Type {
	case bundle.StepImage:
		if ps.flash != nil {
			return p.runFlash(ctx, ps)
		}
		return p.runImage(ctx, ps)
	case bundle.StepWipe:
		return p.runWipe(ctx, ps)
	case bundle.StepPartition:
		return p.runPartition(ps)
	case bundle.StepEnv:
		return p.runEnv(ps)
	}
	return nil, fmt.Errorf("%w: unknown step type %q", bundle.ErrFormat, ps.step.Type)
}

// runEnv changes a bootloader environment in one durable update. One
// that lives in a partition this bundle made is opened and checked now,
// before anything is written to it.
func (p *Plan) runEnv(ps *planned) (*StepStats, error) {
	tr := p.startStep(ps, 0)
	if ps.envLater != nil {
		st, err := p.cfg.Env(*ps.envLater)
		if err != nil {
			return nil, fmt.Errorf("%w: bootloader environment %q: %w", ErrTargetMissing, ps.step.Target, err)
		}
		ps.env = st
		if err := st.Check(ps.step.Set, ps.step.Unset); err != nil {
			return nil, envError(ps.step.Target, err)
		}
	}
	if err := ps.env.Apply(ps.step.Set, ps.step.Unset); err != nil {
		return nil, envError(ps.step.Target, err)
	}
	return tr.finish(counts{}, false, ""), nil
}

// openTarget opens a planned step's target for writing.
func (p *Plan) openTarget(ps *planned) (handlers.Target, error) {
	t, err := p.openTarget1(ps)
	if err == nil && p.wrap != nil {
		t = p.wrap(t)
	}
	return t, err
}

func (p *Plan) openTarget1(ps *planned) (handlers.Target, error) {
	d, err := handlers.Open(ps.path, handlers.Options{Write: true, Direct: !p.cfg.Buffered})
	if err != nil {
		return nil, targetError(ps.step.Target, err)
	}
	if !ps.window {
		if d.Size() != ps.size {
			d.Close()
			return nil, fmt.Errorf("%w: %s changed size since the plan (%d bytes, was %d)", ErrTargetIO, ps.path, d.Size(), ps.size)
		}
		return d, nil
	}
	w, err := handlers.NewWindow(d, ps.off, ps.size)
	if err != nil {
		d.Close()
		return nil, fmt.Errorf("%w: %w", ErrTargetTooSmall, err)
	}
	return w, nil
}

func (p *Plan) runImage(ctx context.Context, ps *planned) (*StepStats, error) {
	t, err := p.openTarget(ps)
	if err != nil {
		return nil, err
	}
	defer t.Close()
	tr := p.startStep(ps, int64(ps.image.Size))
	pl, err := p.newPipeline(ps, t, !p.cfg.NoSkip, tr)
	if err != nil {
		return nil, err
	}
	cnt, err := pl.run(ctx)
	if err != nil {
		// What was written so far is made durable anyway: a resumed
		// install then skips it.
		t.Sync()
		return nil, err
	}
	if err := t.Sync(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrTargetIO, err)
	}
	verified := false
	if p.cfg.Verify || ps.step.Verify {
		if err := t.DropCache(pl.base, int64(ps.image.Size)); err != nil {
			return nil, fmt.Errorf("%w: dropping cached pages before the read-back: %w", ErrTargetIO, err)
		}
		bad, err := compare(ctx, t, pl.base, pl.chunks, p.cfg.Workers, pl.size, func(i int) bool { return pl.touched[i] }, nil)
		if err != nil {
			return nil, err
		}
		if len(bad) > 0 {
			return nil, pl.chunkError(&pl.chunks[bad[0]], fmt.Errorf("%w (%d chunks differ)", ErrReadBack, len(bad)))
		}
		verified = true
	}
	return tr.finish(cnt, verified, ""), nil
}

// newPipeline sets up the chunk pipeline of image step ps into t, at the
// step's offset, reporting progress to tr: the one place a pipeline is
// made, for block devices (runImage) and raw flash (runStream) alike.
// skip turns on skip-unchanged, which reads t.
func (p *Plan) newPipeline(ps *planned, t handlers.Target, skip bool, tr *tracker) (*pipeline, error) {
	chunks, err := p.br.Chunks(ps.image.Name)
	if err != nil {
		return nil, err
	}
	return &pipeline{
		br: p.br, t: t, base: int64(ps.step.Offset), chunks: chunks, workers: p.cfg.Workers,
		skip: skip, size: p.br.Manifest().ChunkSize,
		step: ps.n, image: ps.image.Name, target: fmt.Sprintf("%s (%v)", ps.step.Target, t),
		progress: tr.update,
	}, nil
}

func (p *Plan) runWipe(ctx context.Context, ps *planned) (*StepStats, error) {
	t, err := p.openTarget(ps)
	if err != nil {
		return nil, err
	}
	defer t.Close()
	tr := p.startStep(ps, ps.size)
	if err := handlers.Wipe(ctx, t, ps.step.Mode, func(done int64) { tr.update(counts{zeroed: done}) }); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrTargetIO, err)
	}
	return tr.finish(counts{zeroed: ps.size}, false, ps.info.Mode), nil
}

func (p *Plan) runPartition(ps *planned) (*StepStats, error) {
	tr := p.startStep(ps, 0)
	res, err := partitions.Apply(ps.path, ps.step.Table)
	note := "table unchanged"
	if res.Wrote {
		note = "table written"
	}
	if err != nil {
		if !errors.Is(err, partitions.ErrReread) || res.Layout == nil {
			if errors.Is(err, partitions.ErrTooSmall) {
				return nil, fmt.Errorf("%w: %w", ErrTargetTooSmall, err)
			}
			if errors.Is(err, partitions.ErrDevice) {
				return nil, fmt.Errorf("%w: %w", ErrTargetIO, err)
			}
			return nil, err
		}
		// Images go through the whole disk at the table's offsets, so
		// the kernel's stale view of the partitions does not matter
		// here; it sees the new table after the reboot.
		note += "; the kernel keeps the old partitions until reboot"
	}
	// The plan placed partition targets with the layout Check computed;
	// Apply must have written the same places.
	for _, want := range ps.layout.Partitions {
		got, ok := res.Layout.Find(want.Name)
		if !ok || got.Start != want.Start || got.Size != want.Size {
			return nil, fmt.Errorf("%w: partition %q placed at [%d, +%d), planned at [%d, +%d)", ErrTargetIO, want.Name, got.Start, got.Size, want.Start, want.Size)
		}
	}
	return tr.finish(counts{}, false, note), nil
}

// Difference is a chunk that Verify found different on the device.
type Difference struct {
	Step   int    // 1-based
	Image  string //
	Target string //
	Chunk  int    //
	Offset int64  // of the chunk, in bytes from the target's start
}

// VerifyResult is what Verify compared.
type VerifyResult struct {
	Chunks  int // chunks compared
	Differs int // chunks that differ
	// Differences lists the first differing chunks of each step, at most
	// MaxDifferences in all.
	Differences []Difference
}

// MaxDifferences bounds VerifyResult.Differences.
const MaxDifferences = 20

// Verify compares the device with the bundle: the target range of every
// image step is read and hashed against the chunks. Nothing is written
// and no payload is read, so a stream needs only its header. It returns an
// error wrapping ErrDiffers when a chunk differs.
func (p *Plan) Verify(ctx context.Context) (*VerifyResult, error) {
	defer p.Close()
	res := &VerifyResult{}
	for _, ps := range p.steps {
		if ps.step.Type != bundle.StepImage {
			continue
		}
		if ps.flash != nil {
			if err := p.verifyFlashStep(ctx, ps, res); err != nil {
				return res, err
			}
			continue
		}
		d, err := handlers.Open(ps.path, handlers.Options{})
		if err != nil {
			return res, targetError(ps.step.Target, err)
		}
		var t handlers.Target = d
		if ps.window {
			if t, err = handlers.NewWindow(d, ps.off, ps.size); err != nil {
				d.Close()
				return res, fmt.Errorf("%w: %w", ErrTargetTooSmall, err)
			}
		}
		chunks, err := p.br.Chunks(ps.image.Name)
		if err != nil {
			t.Close()
			return res, err
		}
		tr := p.startStep(ps, int64(ps.image.Size))
		bad, err := compare(ctx, t, int64(ps.step.Offset), chunks, p.cfg.Workers, p.br.Manifest().ChunkSize, nil,
			func(done int64) { tr.update(counts{skipped: done}) })
		t.Close()
		if err != nil {
			return res, &StepError{Step: ps.n, Type: ps.step.Type, Target: ps.step.Target, Err: err}
		}
		p.recordDifferences(ps, chunks, bad, tr, res, "")
	}
	if res.Differs > 0 {
		return res, fmt.Errorf("%w: %d of %d chunks", ErrDiffers, res.Differs, res.Chunks)
	}
	return res, nil
}

func (p *Plan) verifyFlashStep(ctx context.Context, ps *planned, res *VerifyResult) error {
	chunks, err := p.br.Chunks(ps.image.Name)
	if err != nil {
		return err
	}
	tr := p.startStep(ps, int64(ps.image.Size))
	bad, note, err := p.verifyFlash(ctx, ps, chunks, tr)
	if err != nil {
		return &StepError{Step: ps.n, Type: ps.step.Type, Target: ps.step.Target, Err: err}
	}
	if note != "" && len(bad) == 0 && ps.flash.kind == boards.KindUBIImage {
		tr.finish(counts{}, false, note)
		return nil
	}
	p.recordDifferences(ps, chunks, bad, tr, res, note)
	return nil
}

// recordDifferences adds a verified step's differing chunks to res and
// ends the step.
func (p *Plan) recordDifferences(ps *planned, chunks []bundle.Chunk, bad []int, tr *tracker, res *VerifyResult, note string) {
	res.Chunks += len(chunks)
	res.Differs += len(bad)
	var differ int64
	for _, i := range bad {
		differ += int64(chunks[i].Size)
		if len(res.Differences) < MaxDifferences {
			res.Differences = append(res.Differences, Difference{Step: ps.n, Image: ps.image.Name, Target: ps.step.Target,
				Chunk: chunks[i].Index, Offset: int64(ps.step.Offset) + int64(chunks[i].Offset)})
		}
	}
	if note == "" {
		note = "matches"
		if len(bad) > 0 {
			note = fmt.Sprintf("%d of %d chunks differ", len(bad), len(chunks))
		}
	}
	tr.finish(counts{skipped: int64(ps.image.Size) - differ, nSkipped: len(chunks) - len(bad), written: differ, nWritten: len(bad)}, true, note)
}
