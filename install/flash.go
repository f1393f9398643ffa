package install

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/lifeboat-updater/lifeboat/boards"
	"github.com/lifeboat-updater/lifeboat/bundle"
	"github.com/lifeboat-updater/lifeboat/handlers"
	"github.com/lifeboat-updater/lifeboat/handlers/flash"
	"github.com/lifeboat-updater/lifeboat/handlers/mtd"
	"github.com/lifeboat-updater/lifeboat/handlers/ubi"
)

// flashPlan is a planned step to raw flash.
type flashPlan struct {
	kind   string // boards.KindMTD, KindUBI, KindUBIImage
	mtd    string // the MTD device's name, as the profile gives it
	maxBad int
	es     int64 // erase block size
	ubi    *boards.UBITarget
	layout []ubi.VolumeSpec // nil: no layout in the profile
}

func (r *resolver) flash() flash.Flash { return r.cfg.flash() }

func (p *Plan) flash() flash.Flash { return p.cfg.flash() }

// flash is the raw flash the engine reaches: cfg.Flash, else the system's.
func (cfg Config) flash() flash.Flash {
	if cfg.Flash != nil {
		return cfg.Flash
	}
	return flash.System
}

// flashError gives an error of the mtd and ubi packages the install
// package's kind, so that it maps to the right exit code.
func flashError(name string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrTargetMissing), errors.Is(err, ErrTargetTooSmall), errors.Is(err, ErrTargetIO),
		errors.Is(err, ErrReadBack), errors.Is(err, ErrIncompatible):
		return err
	case errors.Is(err, mtd.ErrNotFound), errors.Is(err, mtd.ErrUnsupported), errors.Is(err, ubi.ErrUnsupported), errors.Is(err, ubi.ErrNotFound):
		return fmt.Errorf("%w: %s: %w", ErrTargetMissing, name, err)
	case errors.Is(err, mtd.ErrNoSpace), errors.Is(err, mtd.ErrTooManyBad), errors.Is(err, ubi.ErrNoSpace):
		return fmt.Errorf("%w: %s: %w", ErrTargetTooSmall, name, err)
	case errors.Is(err, mtd.ErrVerify), errors.Is(err, ubi.ErrVerify):
		return fmt.Errorf("%w: %s: %w", ErrReadBack, name, err)
	case errors.Is(err, mtd.ErrUnaligned), errors.Is(err, ubi.ErrBadImage):
		return fmt.Errorf("%w: %s: %w", ErrIncompatible, name, err)
	}
	return fmt.Errorf("%w: %s: %w", ErrTargetIO, name, err)
}

// ubiLayout turns a profile's UBI layout into the ubi package's.
func ubiLayout(d boards.UBIDevice) []ubi.VolumeSpec {
	specs := make([]ubi.VolumeSpec, 0, len(d.Volumes))
	for _, v := range d.Volumes {
		s := ubi.VolumeSpec{Name: v.Name, ID: ubi.AutoID, Size: v.Size, Type: ubi.Dynamic}
		if v.ID != nil {
			s.ID = *v.ID
		}
		if v.Type == "static" {
			s.Type = ubi.Static
		}
		specs = append(specs, s)
	}
	return specs
}

func opStrings(ops []ubi.Op) []string {
	var s []string
	for _, o := range ops {
		s = append(s, o.String())
	}
	return s
}

// planFlash checks an image step to raw flash: the device exists (and
// can be written), the image fits it once its bad blocks are passed
// over, a UBI volume is big enough, and a UBI layout can be applied.
// Nothing is written, and UBI is not attached: attaching formats blank
// flash.
func (r *resolver) planFlash(p *Plan, ps *planned, spec *boards.TargetSpec) error {
	s := ps.step
	if s.Type != bundle.StepImage {
		return fmt.Errorf("%w: %q is raw flash (%s): only image steps can write it, not %s steps", ErrTargetMissing, s.Target, spec.Kind(), s.Type)
	}
	im := p.br.Manifest().Image(s.Image)
	ps.image = im
	size := int64(im.Size)
	ps.info.Image, ps.info.ImageSize, ps.info.At, ps.info.Chunks = im.Name, size, int64(s.Offset), int(im.Chunks)
	fp := &flashPlan{kind: spec.Kind(), mtd: spec.MTD, maxBad: spec.MaxBad}
	switch fp.kind {
	case boards.KindUBI:
		fp.mtd, fp.ubi = spec.UBI.MTD, spec.UBI
		ps.info.Volume, ps.info.Spare = spec.UBI.Volume, spec.UBI.Spare
		if r.cfg.Board != nil {
			if l, ok := r.cfg.Board.UBI[fp.mtd]; ok {
				fp.layout = ubiLayout(l)
			}
		}
	case boards.KindUBIImage:
		fp.mtd = spec.UBIImage
	}
	ps.flash = fp
	ps.info.Kind = fp.kind
	if fp.kind != boards.KindMTD && s.Offset != 0 {
		return fmt.Errorf("%w: image %q at offset %d: a %s target takes images at offset 0", ErrIncompatible, im.Name, s.Offset, fp.kind)
	}

	// Volumes are written through UBI, not the MTD device.
	write := !r.cfg.ReadOnly && fp.kind != boards.KindUBI
	fl := r.flash()
	d, err := fl.OpenMTD(fp.mtd, write)
	if err != nil {
		return flashError(s.Target, err)
	}
	defer d.Close()
	info := d.Info()
	fp.es = info.EraseSize
	ps.path, ps.size = fmt.Sprint(d), info.Size
	ps.info.Path, ps.info.Size, ps.info.EraseSize = ps.path, info.Size, info.EraseSize
	u, err := fl.AttachedUBI(d)
	if err != nil {
		return flashError(s.Target, err)
	}
	if u != nil {
		defer u.Close()
	}

	switch fp.kind {
	case boards.KindMTD:
		if u != nil {
			return fmt.Errorf("%w: %s: %s is attached to UBI (%v): raw writes would corrupt it; detach it first", ErrTargetIO, s.Target, ps.path, u)
		}
		if info.EraseSize <= 0 || int64(s.Offset)%info.EraseSize != 0 {
			return fmt.Errorf("%w: image %q at offset %d of %s: not a multiple of the %d-byte erase block", ErrIncompatible, im.Name, s.Offset, ps.path, info.EraseSize)
		}
		if need := int64(s.Offset) + size; need > info.Size || need < size {
			return fmt.Errorf("%w: image %q needs %d bytes at offset %d, %s holds %d", ErrTargetTooSmall, im.Name, size, s.Offset, ps.path, info.Size)
		}
		if write {
			// Counts the bad blocks the image would pass over; writes
			// nothing.
			if _, err := mtd.NewWriter(d, mtd.Options{Offset: int64(s.Offset), Size: size, MaxBad: fp.maxBad}); err != nil {
				return flashError(s.Target, err)
			}
		}
	case boards.KindUBIImage:
		if info.EraseSize <= 0 || size%info.EraseSize != 0 {
			return fmt.Errorf("%w: image %q of %d bytes is not a whole number of %s's %d-byte eraseblocks: it was made for other flash", ErrIncompatible, im.Name, size, ps.path, info.EraseSize)
		}
		if size > info.Size {
			return fmt.Errorf("%w: UBI image %q of %d bytes, %s holds %d", ErrTargetTooSmall, im.Name, size, ps.path, info.Size)
		}
		if write {
			if _, err := mtd.NewWriter(d, mtd.Options{Size: size, MaxBad: fp.maxBad}); err != nil {
				return flashError(s.Target, err)
			}
		}
		if u != nil {
			ps.info.Changes = []string{fmt.Sprintf("detach %v", u)}
		}
	case boards.KindUBI:
		return r.planVolume(ps, fp, u, size)
	}
	return nil
}

// planVolume checks a UBI volume step: the layout (when the device is
// attached, what it would change) and the volume's size.
func (r *resolver) planVolume(ps *planned, fp *flashPlan, u flash.UBI, size int64) error {
	name := ps.step.Target
	vol, spare := fp.ubi.Volume, fp.ubi.Spare
	// The profile's layout says the volumes' sizes after it is applied.
	for _, v := range fp.layout {
		if (v.Name == vol || v.Name == spare) && v.Size < size {
			return fmt.Errorf("%w: image %q of %d bytes, UBI volume %q holds %d", ErrTargetTooSmall, ps.image.Name, size, v.Name, v.Size)
		}
	}
	if u == nil {
		ps.info.Changes = append(ps.info.Changes, fmt.Sprintf("attach %s to UBI", ps.path))
		return nil
	}
	info, err := u.Info()
	if err != nil {
		return flashError(name, err)
	}
	have, err := u.Volumes()
	if err != nil {
		return flashError(name, err)
	}
	ps.info.Path = fmt.Sprint(u)
	ps.info.Size = int64(info.TotalLEBs) * info.LEBSize
	if fp.layout != nil {
		ops, err := ubi.Diff(info, have, fp.layout)
		if err != nil {
			if errors.Is(err, ubi.ErrLayout) {
				return fmt.Errorf("%w: %s: the board's UBI layout cannot be applied: %w", ErrTargetIO, name, err)
			}
			return flashError(name, err)
		}
		ps.info.Changes = append(ps.info.Changes, opStrings(ops)...)
		return nil
	}
	for _, v := range have {
		if v.Name == vol && spare == "" && v.Size() < size {
			return fmt.Errorf("%w: image %q of %d bytes, UBI volume %q holds %d", ErrTargetTooSmall, ps.image.Name, size, vol, v.Size())
		}
		if v.Name == vol {
			return nil
		}
	}
	if spare == "" {
		return fmt.Errorf("%w: %s: no UBI volume %q on %v, and the board profile has no UBI layout that makes it", ErrTargetMissing, name, vol, u)
	}
	return nil
}

// streamTarget feeds the pipeline's verified chunks, which it writes in
// order, to a writer that takes an image front to back: the MTD Writer,
// a UBI volume update or a UBI image format. Zero chunks become zero
// bytes: erased flash reads 0xFF, so they must be written. Nothing is
// read back through it, so the pipeline runs without skip-unchanged (the
// MTD Writer compares whole erase blocks itself).
type streamTarget struct {
	w    io.Writer
	pos  int64 // where the next write must start: the image's offset at first
	end  int64
	name string
	err  error // the first write error
}

func (s *streamTarget) WriteAt(p []byte, off int64) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	if off != s.pos {
		s.err = fmt.Errorf("install: %s takes the image in order: write at %d, want %d", s.name, off, s.pos)
		return 0, s.err
	}
	n, err := s.w.Write(p)
	s.pos += int64(n)
	if err == nil && n < len(p) {
		err = io.ErrShortWrite
	}
	if err != nil {
		s.err = flashError(s.name, err)
	}
	return n, s.err
}

func (s *streamTarget) ZeroRange(off, n int64) error { return handlers.WriteZeros(s, off, n) }

func (s *streamTarget) ReadAt(p []byte, off int64) (int, error) {
	return 0, fmt.Errorf("%w: reading back %s", handlers.ErrNotSupported, s.name)
}

func (s *streamTarget) Size() int64                  { return s.end }
func (s *streamTarget) Discard(off, n int64) error   { return handlers.ErrNotSupported }
func (s *streamTarget) DropCache(off, n int64) error { return nil }
func (s *streamTarget) Sync() error                  { return nil }
func (s *streamTarget) Close() error                 { return nil }
func (s *streamTarget) String() string               { return s.name }

// runStream runs image step ps's pipeline into w, which takes the image
// front to back. Every byte w gets has verified; a chunk that fails stops
// the step with w holding only the bytes before it.
func (p *Plan) runStream(ctx context.Context, ps *planned, tr *tracker, w io.Writer) (counts, error) {
	off := int64(ps.step.Offset)
	st := &streamTarget{w: w, pos: off, end: off + int64(ps.image.Size), name: ps.path}
	pl, err := p.newPipeline(ps, st, false, tr)
	if err != nil {
		return counts{}, err
	}
	return pl.run(ctx)
}

// runFlash runs an image step to raw flash.
func (p *Plan) runFlash(ctx context.Context, ps *planned) (*StepStats, error) {
	fp := ps.flash
	fl := p.flash()
	size := int64(ps.image.Size)
	name := fmt.Sprintf("%s (%s)", ps.step.Target, ps.path)
	switch fp.kind {
	case boards.KindMTD:
		d, err := fl.OpenMTD(fp.mtd, true)
		if err != nil {
			return nil, flashError(ps.step.Target, err)
		}
		defer d.Close()
		w, err := mtd.NewWriter(d, mtd.Options{Offset: int64(ps.step.Offset), Size: size, MaxBad: fp.maxBad, Rewrite: p.cfg.NoSkip})
		if err != nil {
			return nil, flashError(ps.step.Target, err)
		}
		tr := p.startStep(ps, size)
		cnt, err := p.runStream(ctx, ps, tr, w)
		if err != nil {
			// Not Close: it would write the partial block, whose
			// rest did not verify.
			return nil, err
		}
		if err := w.Close(); err != nil {
			return nil, flashError(name, err)
		}
		ws := w.Stats()
		return tr.finish(flashCounts(cnt, size, int64(ws.Unchanged)*fp.es), true,
			fmt.Sprintf("%d erase blocks written, %d unchanged, %d bad passed over, %d marked bad", ws.Written, ws.Unchanged, ws.BadSkipped, ws.MarkedBad)), nil

	case boards.KindUBIImage:
		d, err := fl.OpenMTD(fp.mtd, true)
		if err != nil {
			return nil, flashError(ps.step.Target, err)
		}
		defer d.Close()
		u, err := fl.AttachedUBI(d)
		if err != nil {
			return nil, flashError(ps.step.Target, err)
		}
		if u != nil {
			// The format rewrites what UBI owns.
			if err := fl.DetachUBI(u); err != nil {
				return nil, flashError(ps.step.Target, err)
			}
		}
		tr := p.startStep(ps, size)
		w, err := ubi.NewFormatWriter(d, size, ubi.FormatOptions{MaxBad: fp.maxBad})
		if err != nil {
			return nil, flashError(name, err)
		}
		cnt, err := p.runStream(ctx, ps, tr, w)
		if err != nil {
			// Not Close: nothing more is written of an image that
			// did not arrive whole.
			return nil, err
		}
		if err := w.Close(); err != nil {
			return nil, flashError(name, err)
		}
		fs := w.Stats()
		return tr.finish(flashCounts(cnt, size, 0), true,
			fmt.Sprintf("UBI image: %d eraseblocks written, %d formatted, %d bad passed over, %d marked bad, mean erase counter %d",
				fs.Image.Written, fs.Formatted, fs.Image.BadSkipped+fs.Bad, fs.Image.MarkedBad, fs.MeanEC)), nil

	case boards.KindUBI:
		return p.runVolume(ctx, ps, fl, name)
	}
	return nil, fmt.Errorf("install: unknown flash target kind %q", fp.kind)
}

func (p *Plan) runVolume(ctx context.Context, ps *planned, fl flash.Flash, name string) (*StepStats, error) {
	fp := ps.flash
	size := int64(ps.image.Size)
	d, err := fl.OpenMTD(fp.mtd, false)
	if err != nil {
		return nil, flashError(ps.step.Target, err)
	}
	u, err := fl.AttachedUBI(d)
	if err == nil && u == nil {
		u, err = fl.AttachUBI(d)
	}
	d.Close()
	if err != nil {
		return nil, flashError(ps.step.Target, err)
	}
	defer u.Close()
	var notes []string
	if fp.layout != nil {
		ops, err := ubi.ApplyLayout(u, fp.layout)
		if err != nil {
			return nil, flashError(ps.step.Target, err)
		}
		if len(ops) > 0 {
			notes = append(notes, "layout: "+strings.Join(opStrings(ops), ", "))
		}
	}
	vol, spare := fp.ubi.Volume, fp.ubi.Spare
	var id int
	if spare == "" {
		v, err := ubi.FindVolume(u, vol)
		if err != nil {
			return nil, flashError(ps.step.Target, err)
		}
		if v.Size() < size {
			return nil, fmt.Errorf("%w: image %q of %d bytes, UBI volume %q holds %d", ErrTargetTooSmall, ps.image.Name, size, vol, v.Size())
		}
		id = v.ID
	}
	// The volume is read back (a CRC of what was written against one of
	// what reads back) when the step or the command asks, as block
	// devices are: it costs a third of the update's time on flash.
	verify := ps.step.Verify || p.cfg.Verify
	vopt := ubi.VolumeOptions{NoVerify: !verify}
	tr := p.startStep(ps, size)
	var w io.WriteCloser
	if spare != "" {
		w, err = ubi.NewSwapWriter(u, vol, spare, size, vopt)
	} else {
		w, err = ubi.NewVolumeWriter(u, id, size, vopt)
	}
	if err != nil {
		return nil, flashError(name, err)
	}
	cnt, err := p.runStream(ctx, ps, tr, w)
	// Close also after a failed step: it ends the update short, which
	// leaves the volume marked as interrupted, and renames nothing.
	cerr := w.Close()
	if err != nil {
		return nil, err
	}
	if cerr != nil {
		return nil, flashError(name, cerr)
	}
	if spare != "" {
		notes = append(notes, fmt.Sprintf("written to %q, then swapped with %q", spare, vol))
	} else {
		notes = append(notes, fmt.Sprintf("volume %q updated in place", vol))
	}
	return tr.finish(flashCounts(cnt, size, 0), verify, strings.Join(notes, "; ")), nil
}

// flashCounts is what a flash step did: raw flash takes zero chunks as
// data, and skips whole erase blocks, not chunks.
func flashCounts(c counts, size, skipped int64) counts {
	skipped = min(skipped, size)
	return counts{written: size - skipped, skipped: skipped, nWritten: c.nWritten + c.nZeroed}
}

// verifyFlash compares a flash step's target with its image: the good
// blocks of raw flash in order, or the UBI volume. A whole UBI image is
// not compared: its erase counters differ from the bundle's by design.
func (p *Plan) verifyFlash(ctx context.Context, ps *planned, chunks []bundle.Chunk, tr *tracker) (bad []int, note string, err error) {
	fp := ps.flash
	fl := p.flash()
	progress := func(done int64) { tr.update(counts{skipped: done}) }
	switch fp.kind {
	case boards.KindUBIImage:
		return nil, "not compared: a UBI image's erase counters change as it is written", nil
	case boards.KindMTD:
		d, err := fl.OpenMTD(fp.mtd, false)
		if err != nil {
			return nil, "", flashError(ps.step.Target, err)
		}
		defer d.Close()
		r, err := mtd.NewReader(d, int64(ps.step.Offset), 0)
		if err != nil {
			return nil, "", flashError(ps.step.Target, err)
		}
		t := handlers.NewReaderTarget(r, r.Size(), r.String())
		bad, err = compare(ctx, t, 0, chunks, p.cfg.Workers, p.br.Manifest().ChunkSize, nil, progress)
		return bad, "", err
	}
	d, err := fl.OpenMTD(fp.mtd, false)
	if err != nil {
		return nil, "", flashError(ps.step.Target, err)
	}
	u, err := fl.AttachedUBI(d)
	d.Close()
	if err != nil {
		return nil, "", flashError(ps.step.Target, err)
	}
	if u == nil {
		return nil, "", fmt.Errorf("%w: %s: UBI is not attached to %s", ErrTargetMissing, ps.step.Target, ps.path)
	}
	defer u.Close()
	v, err := ubi.FindVolume(u, fp.ubi.Volume)
	if err != nil {
		return nil, "", flashError(ps.step.Target, err)
	}
	r, err := u.OpenVolume(v.ID)
	if err != nil {
		return nil, "", flashError(ps.step.Target, err)
	}
	defer r.Close()
	t := handlers.NewReaderTarget(r, v.Size(), fmt.Sprintf("UBI volume %q", v.Name))
	bad, err = compare(ctx, t, 0, chunks, p.cfg.Workers, p.br.Manifest().ChunkSize, nil, progress)
	if err == nil && v.Corrupted {
		note = "the volume is marked corrupted"
		if len(bad) == 0 {
			bad = []int{0}
		}
	}
	return bad, note, err
}
